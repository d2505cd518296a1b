"""`POST /api/v1/recommend`: body = Profile (contract v1), response = Recommendation (contract v1).

An invalid profile gets 422 with one problem per field, in a small problem-details body:
`{"title": ..., "status": 422, "problems": [{"field": "tumor.er", "message": "..."}]}`.
Responses are cached by canonical profile, like the options page: the engine is deterministic.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from threading import Lock
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from mbcnav.engine import recommend
from mbcnav.profile import ProfileError

router = APIRouter(prefix="/api/v1", tags=["api"])
PROBLEM_TYPE = "application/problem+json"
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): (.*)$", re.S)


class _ResponseCache:
    """Canonical profile JSON -> serialized Recommendation; bounded, thread-safe."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_cache = _ResponseCache()


def problem(title: str, problems: list[str], status: int = 422) -> JSONResponse:
    items = []
    for text in problems:
        match = _FIELD.match(text)
        items.append({"field": match.group(1), "message": match.group(2)} if match else {"field": "", "message": text})
    body = {"type": "about:blank", "title": title, "status": status, "problems": items}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE)


@router.post("/recommend", summary="Recommendation for a profile (contract v1)")
async def recommend_endpoint(request: Request) -> Response:
    # The body is read by hand: the contract's own validator (parse_profile) words the errors,
    # so FastAPI's generic 422 format never reaches a client.
    raw = await request.body()
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return problem("The body is not valid JSON", [f"body: {err}"], status=400)
    if not isinstance(data, dict):
        return problem("The profile is not valid", ["profile: must be a JSON object with at least 'sex'"])
    key = json.dumps(data, sort_keys=True, separators=(",", ":"))
    cached = _cache.get(key)
    if cached is None:
        try:
            rec = recommend(data)
        except ProfileError as err:
            return problem("The profile is not valid", err.problems)
        cached = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        _cache.put(key, cached)
    return Response(cached, media_type="application/json")


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    return problem("The request is not valid",
                   [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()])
