"""Errors as RFC 9457 problem details (application/problem+json), each naming the field.

    {"type": "/api/v1/problems/invalid-profile", "title": "The profile is not valid",
     "status": 422, "detail": "...", "errors": [{"field": "tumor.er", "message": "..."}]}

An APIRouter cannot install exception handlers on the app it is mounted in, so the router's
routes use ProblemRoute, which turns validation errors into problems itself. That keeps the
error format the same wherever the lead mounts the router.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from mbcnav.knowledge.loader import knowledge
from mbcnav.profile import Profile, ProfileError, parse_profile, profile_json

MEDIA_TYPE = "application/problem+json"
PREFIX = "/api/v1/problems/"

#: Problem types this API returns: name -> (status, title, what it means).
TYPES: dict[str, tuple[int, str, str]] = {
    "invalid-json": (400, "The request body is not valid JSON",
                     "Send a JSON object with Content-Type application/json."),
    "invalid-profile": (422, "The profile is not valid",
                        "A field has a value the contract does not allow, or two fields contradict each other. "
                        "Each error names the field and lists the allowed values."),
    "invalid-request": (422, "The request is not valid", "A field of the request is missing or has the wrong type."),
    "unknown-drug": (422, "A drug name is not known",
                     "The name is not a generic or brand name in the drug catalogue; the message lists the "
                     "closest known names."),
    "drug-not-found": (404, "No such drug", "The name is not a drug in the catalogue."),
    "unusable-bundle": (422, "The FHIR bundle does not give a usable profile",
                        "The bundle was read, but the profile built from it is not valid (for example, no sex "
                        "is recorded). The import_report member says what was found, missing and unreadable."),
}

#: JSON Schema of a problem body, written out flat so it can sit under application/problem+json
#: in the OpenAPI document. Extension members (e.g. import_report) are allowed, as RFC 9457 says.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string", "description": "URI reference naming the problem type"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": True,
}


def responses(*names: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problem types a route can return."""
    out: dict[int | str, dict[str, Any]] = {}
    for name in names:
        status, title, _ = TYPES[name]
        entry = out.setdefault(status, {"description": "", "content": {MEDIA_TYPE: {"schema": SCHEMA}}})
        entry["description"] = "; ".join(filter(None, [entry["description"], title]))
    return out


class Problem(Exception):
    """Raise inside a route to answer with a problem document."""

    def __init__(self, name: str, detail: str, errors: Sequence[tuple[str, str]] = (), **extra: Any) -> None:
        super().__init__(detail)
        self.name, self.detail, self.errors, self.extra = name, detail, list(errors), extra

    def response(self) -> JSONResponse:
        status, title, _ = TYPES[self.name]
        body = {"type": PREFIX + self.name, "title": title, "status": status, "detail": self.detail,
                "errors": [{"field": f, "message": m} for f, m in self.errors], **self.extra}
        return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def field_errors(problems: Sequence[str]) -> list[tuple[str, str]]:
    """'tumor.er: 'x' is not allowed; ...' -> ('tumor.er', "'x' is not allowed; ...")."""
    out = []
    for problem in problems:
        field, sep, message = problem.partition(": ")
        out.append((field, message) if sep and " " not in field else ("", problem))
    return out


def profile_problem(err: ProfileError) -> Problem:
    return Problem("invalid-profile", "; ".join(err.problems), field_errors(err.problems))


def _invalid_json() -> Problem:
    return Problem("invalid-json", "The request body could not be parsed as JSON.", [("body", "not valid JSON")])


async def _from_validation(request: Request, exc: RequestValidationError, profile_body: bool) -> Problem:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _invalid_json()
    if profile_body and all(e["loc"][:1] == ("body",) for e in errors):
        # Re-validate the raw body with the engine's own parser, so the messages are exactly the
        # ones the CLI and mbcnav.recommend() give (field named, allowed values listed).
        _, problem = _engine_parse(await request.body())
        if problem is not None:
            return problem
    pairs = [(".".join(str(p) for p in e["loc"][1:] if p != "body") or str(e["loc"][0]), str(e["msg"]))
             for e in errors]
    return Problem("invalid-request", "; ".join(f"{f}: {m}" for f, m in pairs), pairs)


def _engine_parse(body: bytes) -> tuple[Any, Problem | None]:
    """The JSON body and, if the engine's own parser rejects it, the problem to answer with."""
    try:
        raw = profile_json(body or b"null")
    except ProfileError as err:   # a key given twice
        return None, profile_problem(err)
    except ValueError:
        return None, _invalid_json()
    try:
        parse_profile(raw)
    except ProfileError as err:
        return raw, profile_problem(err)
    return raw, None


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _check_profile(request: Request) -> Problem | None:
    """A Profile body is read as JSON strictly: `false` or "5" is not a number here.

    The engine's own parser runs first, so its messages (allowed values, impossible combinations)
    are what a client sees; the strict pass then holds the API to its OpenAPI document.
    """
    body = await request.body()
    raw, problem = _engine_parse(body)
    if problem is not None:
        return problem
    ihc = ((raw.get("tumor") or {}).get("her2") or {}).get("ihc", "0")
    if not isinstance(ihc, str):
        message = f"{ihc!r} must be text, one of '0', 'ultralow', '1+', '2+', '3+' or 'unknown'"
        return Problem("invalid-profile", f"tumor.her2.ihc: {message}", [("tumor.her2.ihc", message)])
    try:
        Profile.model_validate_json(body, strict=True)
    except ValidationError as err:
        pairs = [(_where(e["loc"]), str(e["msg"])) for e in err.errors()]
        return Problem("invalid-profile", "; ".join(f"{f}: {m}" for f, m in pairs), pairs)
    return None


class _Responses:
    """Recent successful JSON answers keyed by the exact request body (bounded LRU).

    The engine is deterministic for a given knowledge base, so the same bytes always get the same
    answer; an EHR asking again for the same patient skips validation and evaluation. The key
    includes the knowledge version, so a new knowledge base never serves an old answer.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()

    def get(self, key: tuple[str, bytes]) -> bytes | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: tuple[str, bytes], value: bytes) -> None:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)


#: Route names whose 200 answers depend only on the request body.
CACHEABLE = frozenset({"recommend", "explain", "what_if_route"})


class ProblemRoute(APIRoute):
    """An APIRoute whose request-validation errors and Problems become problem+json responses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        profile_body = any(getattr(getattr(f, "field_info", None), "annotation", None) is Profile
                           for f in self.dependant.body_params)
        cache = _Responses() if self.name in CACHEABLE else None

        async def handler(request: Request) -> Response:
            key = (knowledge().version, await request.body()) if cache is not None else None
            if cache is not None and key is not None:
                hit = cache.get(key)
                if hit is not None:
                    return Response(hit, media_type="application/json")
            response = await answer(request)
            if cache is not None and key is not None and response.status_code == 200:
                cache.put(key, bytes(response.body))
            return response

        async def answer(request: Request) -> Response:
            if profile_body:
                problem = await _check_profile(request)
                if problem is not None:
                    return problem.response()
            try:
                return await original(request)
            except RequestValidationError as exc:
                return (await _from_validation(request, exc, profile_body)).response()
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                return _invalid_json().response()    # FastAPI's "error parsing the body"
            except Problem as problem:
                return problem.response()

        return handler
