"""Web speed: the options page and `POST /api/v1/recommend`, next to a bare FastAPI JSON endpoint.

Starts real uvicorn servers on 127.0.0.1 (subprocesses, one worker each, access log off) and
drives them with an httpx async client at 1 and 32 concurrent clients, a bounded number of
requests per run. Prints p50 / p99 latency and requests per second. The bare endpoint runs in
its own server with no middleware, in the same run, as the yardstick for the machine and the
client. Options and API are measured twice: "warm" repeats one profile (served from the
per-profile caches), "cold" gives every request a profile not seen before (full engine run).

Goals (2-core machine): options page p99 <= 50 ms at 32 clients; API throughput within 2x of
the bare endpoint's.

    .venv/bin/python benchmarks/web.py [--requests 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hr_positive_second_line_esr1_pik3ca.json"


def bare_app() -> Any:
    """The yardstick: FastAPI returning a small JSON object, nothing else."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return app


def mbcnav_app() -> Any:
    from mbcnav.web.app import create_app
    from mbcnav.web.settings import Settings

    return create_app(Settings(data_dir=Path(os.environ["MBCNAV_BENCH_DIR"]), sender_enabled=False,
                               _env_file=None))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(factory: str, data_dir: str, workers: int = 1) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "MBCNAV_BENCH_DIR": data_dir, "PYTHONPATH": str(ROOT / "benchmarks"),
           "SECRET_KEY": "benchmark-only"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning", "--workers", str(workers)],
        env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code in (200, 404):
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{factory} did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def variant(i: int) -> dict[str, Any]:
    """A distinct valid profile per i (age and months vary), so nothing is cached."""
    profile: dict[str, Any] = json.loads(EXAMPLE.read_text())
    profile["age"] = 30 + i % 70
    profile["history"]["metastatic"][0]["months"] = 1 + (i // 70) % 500 + (i % 7) / 8
    return profile


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams.

    httpx spends about 2 ms of CPU per request, which on a 2-core machine shared with the server
    makes every endpoint look alike. This client sends prepared bytes and reads Content-Length
    bodies, so the figures describe the server. `--client httpx` measures with httpx instead.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


def raw_request(method: str, path: str, body: bytes = b"", cookie: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_raw(base: str, make: Callable[[int, int], bytes], concurrency: int, total: int,
                  start: int = 0) -> tuple[list[float], float]:
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    counter = iter(range(start, start + total))
    connections = [RawConnection(host, int(port)) for _ in range(concurrency)]

    async def worker(k: int, conn: RawConnection) -> None:
        for i in counter:
            raw = make(i, k)
            t0 = time.perf_counter()
            status = await conn.request(raw)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, c) for k, c in enumerate(connections)))
        elapsed = time.perf_counter() - t0
    finally:
        for conn in connections:
            await conn.close()
    return latencies, elapsed


async def run(base: str, request: Request, concurrency: int, total: int,
              cookies: list[httpx.Cookies] | None = None, start: int = 0) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(start, start + total))
    # One client (one keep-alive connection) per simulated user: a single shared httpx pool
    # serialises on its own lock under concurrency and would measure itself, not the server.
    clients = [httpx.AsyncClient(base_url=base, cookies=cookies[k % len(cookies)] if cookies else None, timeout=30,
                                 limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
               for k in range(concurrency)]

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            t0 = time.perf_counter()
            response = await request(client, i)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code} from {response.request.url}")

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.perf_counter() - t0
    finally:
        for client in clients:
            await client.aclose()
    return latencies, elapsed


def options_session(base: str) -> httpx.Cookies:
    """A session holding the example profile and two guide questions, as a real visitor's would.

    Each simulated visitor gets a session of their own (own CSRF token, so own cookie): the page
    is measured as many visitors with the same answers see it, not as one cookie replayed.
    """
    with httpx.Client(base_url=base) as client:
        page = client.get("/").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post("/about-your-cancer/example", data={"csrf_token": token,
                                                        "name": "hr_positive_second_line_esr1_pik3ca"})
        for question in ("general_goal", "general_options"):
            client.post("/guide/questions/add", data={"csrf_token": token, "question_id": question})
        assert client.get("/options").status_code == 200
        return client.cookies


def report(name: str, concurrency: int, latencies: list[float], elapsed: float) -> float:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rps = len(latencies) / elapsed
    print(f"{name:<34} {concurrency:>3}  {p50:8.2f}  {p99:8.2f}  {rps:9.0f}")
    return rps


class Endpoint:
    """One measured endpoint, as raw bytes (raw client) and as an httpx call (httpx client)."""

    def __init__(self, name: str, method: str, path: str, body: Callable[[int], bytes] | None = None) -> None:
        self.name, self.method, self.path, self.body = name, method, path, body
        self.cookies: list[str] = []

    def raw(self, i: int, k: int) -> bytes:
        """Request i, sent by simulated client k (with that client's cookie, if any)."""
        cookie = self.cookies[k % len(self.cookies)] if self.cookies else ""
        return raw_request(self.method, self.path, self.body(i) if self.body else b"", cookie)

    async def call(self, client: httpx.AsyncClient, i: int) -> httpx.Response:
        if self.method == "GET":
            return await client.get(self.path)
        return await client.post(self.path, content=self.body(i) if self.body else b"",
                                 headers={"Content-Type": "application/json"})


def measure(base: str, endpoint: Endpoint, concurrency: int, total: int, use_httpx: bool,
            cookies: list[httpx.Cookies] | None = None, start: int = 0) -> tuple[list[float], float]:
    if use_httpx:
        return asyncio.run(run(base, endpoint.call, concurrency, total, cookies, start))
    return asyncio.run(run_raw(base, endpoint.raw, concurrency, total, start))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers for both servers")
    args = parser.parse_args()
    use_httpx = args.client == "httpx"
    body = json.dumps(json.loads(EXAMPLE.read_text())).encode()
    bare = Endpoint("bare FastAPI JSON (POST)", "POST", "/bare", lambda i: body)
    api = Endpoint("POST /api/v1/recommend (warm)", "POST", "/api/v1/recommend", lambda i: body)
    api_cold = Endpoint("POST /api/v1/recommend (cold)", "POST", "/api/v1/recommend",
                        lambda i: json.dumps(variant(i)).encode())
    options = Endpoint("GET /options (warm)", "GET", "/options")

    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, client: {args.client}, workers: {args.workers}, "
          f"{args.requests} requests per row (cold rows: a tenth)")
    print(f"{'endpoint':<34} {'cl':>3}  {'p50 ms':>8}  {'p99 ms':>8}  {'req/s':>9}")
    figures: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        from mbcnav.guide import make_engine, migrate

        engine = make_engine(f"sqlite:///{Path(data_dir) / 'mbcnav.sqlite3'}")
        migrate(engine)  # once, before several workers start (as `mbcnav serve --workers` does)
        engine.dispose()
        with server("web:bare_app", data_dir, args.workers) as base:
            for c in (1, 32):
                measure(base, bare, c, args.warmup, use_httpx)
                figures["bare", c] = report(bare.name, c, *measure(base, bare, c, args.requests, use_httpx))
        with server("web:mbcnav_app", data_dir, args.workers) as base:
            cookies = [options_session(base) for _ in range(32)]
            options.cookies = ["; ".join(f"{k}={v}" for k, v in jar.items()) for jar in cookies]
            assert len(set(options.cookies)) == len(cookies)
            offset = 0
            for c in (1, 32):
                measure(base, api, c, args.warmup, use_httpx)
                figures["api", c] = report(api.name, c, *measure(base, api, c, args.requests, use_httpx))
                cold_n = max(args.requests // 10, 64)
                report(api_cold.name, c, *measure(base, api_cold, c, cold_n, use_httpx, start=offset))
                offset += cold_n
                measure(base, options, c, args.warmup, use_httpx, cookies)
                report(options.name, c, *measure(base, options, c, args.requests, use_httpx, cookies))
    for c in (1, 32):
        print(f"API / bare throughput at {c:>2} clients: {figures['api', c] / figures['bare', c]:.2f}")


if __name__ == "__main__":
    main()
