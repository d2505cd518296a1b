"""The session: a signed, compressed cookie that holds the profile and the unsaved guide.

Why not Starlette's SessionMiddleware: it rewrites the cookie on every response and does not
compress, and a guide with the user's own notes soon outgrows a browser's 4 KB cookie limit.
Here the payload is zlib-compressed by itsdangerous, the cookie is only sent when the session
changed, and callers can ask `fits()` before storing more. Nothing in the session is logged.
"""

from __future__ import annotations

import json
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "mbcnav_session"
# Browsers drop cookies over 4096 bytes (name, value and attributes). Keep a margin.
MAX_COOKIE_VALUE = 3800


class SessionCodec:
    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="mbcnav.session")
        self.max_age = max_age_seconds

    def dumps(self, data: dict[str, Any]) -> str:
        value = self._serializer.dumps(data)
        return value if isinstance(value, str) else value.decode("ascii")

    def loads(self, value: str) -> dict[str, Any]:
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except (BadSignature, ValueError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def fits(self, data: dict[str, Any]) -> bool:
        return len(self.dumps(data)) <= MAX_COOKIE_VALUE


class SessionMiddleware:
    def __init__(self, app: ASGIApp, codec: SessionCodec, secure: bool | None) -> None:
        self.app = app
        self.codec = codec
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = _cookie(scope, COOKIE_NAME)
        session = self.codec.loads(raw) if raw else {}
        before = json.dumps(session, sort_keys=True)
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                after = scope["session"]
                if json.dumps(after, sort_keys=True) != before:
                    headers = MutableHeaders(scope=message)
                    headers.append("Set-Cookie", self._set_cookie(scope, after))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _set_cookie(self, scope: Scope, data: dict[str, Any]) -> str:
        secure = self.secure if self.secure is not None else scope.get("scheme") == "https"
        flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not data:
            return f"{COOKIE_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{flags}"
        return f"{COOKIE_NAME}={self.codec.dumps(data)}; Max-Age={self.codec.max_age}{flags}"


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(name)
            if found:
                return found
    return None
