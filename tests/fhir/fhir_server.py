"""A small, real FHIR REST server for tests: http.server on 127.0.0.1, in a thread.

It answers the reads and searches the CDS service makes (Patient/{id}, {Type}?patient={id}),
with searchset Bundles paged by `page_size` and `next` links, and records every request's
Authorization header so tests can check the bearer token was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse


class FhirStub:
    def __init__(self, resources: list[dict[str, Any]], page_size: int = 100) -> None:
        self.resources = resources
        self.page_size = page_size
        self.requests: list[tuple[str, str | None]] = []      # (path?query, Authorization)
        self.base = ""

    def _patient_of(self, resource: dict[str, Any]) -> str | None:
        ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
        return str(ref).rsplit("/", 1)[-1].rsplit(":", 1)[-1] if ref else None

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["fhir"]:
            parts = parts[1:]
        if len(parts) == 2:
            kind, rid = parts
            found = next((r for r in self.resources if r["resourceType"] == kind and r.get("id") == rid), None)
            return (200, found) if found else (404, {"resourceType": "OperationOutcome", "issue": []})
        if len(parts) != 1:
            return 400, {"resourceType": "OperationOutcome", "issue": []}
        kind = parts[0]
        patient = query.get("patient", [""])[0]
        matches = [r for r in self.resources if r["resourceType"] == kind and self._patient_of(r) == patient]
        offset = int(query.get("_offset", ["0"])[0])
        page = matches[offset: offset + self.page_size]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                                  "entry": [{"resource": r, "search": {"mode": "match"}} for r in page], "link": []}
        if offset + self.page_size < len(matches):
            nxt = urlencode({"patient": patient, "_offset": offset + self.page_size})
            bundle["link"].append({"relation": "next", "url": f"{self.base}/{kind}?{nxt}"})
        return 200, bundle


@contextmanager
def serve_json(answer: Callable[[str, str | None], tuple[int, Any]], content_type: str = "application/json",
               path: str = "") -> Iterator[str]:
    """A JSON server on 127.0.0.1 in a thread: `answer(path, Authorization)` -> (status, body).

    Yields the base URL (`path` appended to the server's address).
    """
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve(stub: FhirStub) -> Iterator[str]:
    def answer(path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        stub.requests.append((path, authorization))
        url = urlparse(path)
        return stub.answer(url.path, parse_qs(url.query))

    with serve_json(answer, "application/fhir+json", "/fhir") as base:
        stub.base = base
        yield base


def closed_port_url() -> str:
    """A URL on which nothing listens (the port was just bound and released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"
