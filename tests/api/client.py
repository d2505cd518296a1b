"""The API under test: mbcnav's routers in a plain FastAPI app, called in-process over ASGI.

httpx's ASGI transport runs the real app (routing, validation, serialisation); only the
network socket is skipped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

import mbcnav.api
from mbcnav.fhir.cds_hooks import router as cds_router


def make_app() -> FastAPI:
    app = FastAPI(title="mbcnav", version="0.1.0")
    app.include_router(mbcnav.api.router)
    app.include_router(cds_router)
    return app


APP = make_app()


def call(method: str, url: str, app: FastAPI = APP, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())
