"""The patient web app: `create_app(settings) -> FastAPI`.

Server-rendered pages that work with JavaScript off; htmx only makes some forms swap in place.
Lifespan: migrate the database, start the email sender thread; on shutdown, stop it cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import mbcnav.api
from mbcnav.api.problems import Problem
from mbcnav.fhir import _cds_auth as cds_auth
from mbcnav.fhir._cds_store import DatabaseExplanations, DatabaseTokenLedger
from mbcnav.fhir.cds_hooks import router as cds_hooks_router
from mbcnav.web.routes import guide, options, pages, profile, saved
from mbcnav.web.security import HEADERS, CsrfError, SecurityHeadersMiddleware
from mbcnav.web.services import Services
from mbcnav.web.sessions import SessionCodec, SessionMiddleware
from mbcnav.web.settings import Settings
from mbcnav.web.templating import STATIC

log = logging.getLogger("mbcnav.web")

ERROR_TEXT = {
    400: ("Something was missing", "The form was sent without everything it needs. Please go back and try again."),
    403: ("This form has expired", "For your safety, forms stop working after a while or in another tab. "
                                   "Please go back, reload the page and try again."),
    404: ("Page not found", "We could not find that page. It may have moved, or a saved guide may have "
                            "been deleted or expired."),
    405: ("That did not work", "This page cannot be used that way. Please go back and try again."),
    429: ("Please wait a little", "You have sent several emails in a short time. Please try again in an hour, "
                                  "or download the PDF instead."),
    500: ("Something went wrong on our side", "Please try again in a moment. Your answers are still saved "
                                              "in your browser."),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    cds_auth.policy()   # a broken MBCNAV_CDS_CLIENTS file stops the start, with the reason
    secret = settings.resolved_secret()
    codec = SessionCodec(secret, settings.session_max_age_days * 86400)
    svc = Services(settings=settings, codec=codec)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        assert svc.engine is not None
        # CDS card links and used JWT ids in the database: every worker process sees them.
        app.state.cds_explanations = DatabaseExplanations(svc.engine, secret)
        app.state.cds_token_ledger = DatabaseTokenLedger(svc.engine)
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(title="mbcnav", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = svc
    for router in (pages.router, profile.router, options.router, guide.router, saved.router):
        app.include_router(router)
    # The versioned JSON API (issue #4) and the CDS Hooks service share the app and its engine.
    app.include_router(mbcnav.api.router)
    app.include_router(cds_hooks_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # Outermost first: headers on every response, including error pages; then the session.
    app.add_middleware(SessionMiddleware, codec=codec, secure=settings.cookie_secure)
    app.add_middleware(SecurityHeadersMiddleware)
    _error_handlers(app, svc)
    return app


def _error_handlers(app: FastAPI, svc: Services) -> None:
    def page(request: Request, status: int) -> HTMLResponse:
        title, text = ERROR_TEXT.get(status, ERROR_TEXT[500])
        return svc.renderer.page(request, "error.html", status_code=status, title=title, text=text, status=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page(request, exc.status_code if exc.status_code in ERROR_TEXT else 500)

    @app.exception_handler(CsrfError)
    async def csrf_error(request: Request, exc: CsrfError) -> Response:
        return page(request, 403)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(("/api/", "/cds-services")):
            # API routes turn their own validation errors into problem details (ProblemRoute);
            # anything that still lands here gets the same RFC 9457 shape.
            problem = Problem("invalid-request", "The request is not valid.",
                              [(".".join(str(p) for p in e["loc"][1:]), str(e["msg"])) for e in exc.errors()])
            return problem.response()
        return page(request, 400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        # This handler runs outside the middleware stack, so it sets the security headers itself.
        # The log line names the error type only: a message could carry the person's answers.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        response = page(request, 500)
        response.headers.update(HEADERS)
        response.headers["Cache-Control"] = "no-store"
        return response
