"""A saved guide behind its unguessable link: view, print, PDF, email, delete; and email status.

The link token is the only key, so whoever has the link can read and delete the guide (the page
says so). Tokens and message ids appear in paths, which is why access logs are redacted
(see cli.py) and every page sends `Referrer-Policy: no-referrer`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mbcnav.guide import InvalidRecipient, normalise_address
from mbcnav.guide.model import Guide
from mbcnav.guide.outbox import MessageStatus
from mbcnav.web.routes.guide import SAVED_TOKEN, pdf_response
from mbcnav.web.security import require_csrf
from mbcnav.web.services import Services, services
from mbcnav.web.templating import is_htmx

router = APIRouter(dependencies=[Depends(require_csrf)])
Svc = Annotated[Services, Depends(services)]
LIMITED = ("You have asked for several emails in a short time. Please try again in an hour, "
           "or download the PDF instead.")


async def _load(svc: Services, token: str) -> tuple[Guide, object]:
    if svc.store is None:
        raise HTTPException(status_code=500)
    store = svc.store

    def both() -> tuple[Guide | None, object]:
        return store.load(token), store.expires_at(token)

    guide, expires = await run_in_threadpool(both)
    if guide is None:
        raise HTTPException(status_code=404)
    return guide, expires


def _saved_page(request: Request, svc: Services, token: str, guide: Guide, expires: object,
                status_code: int = 200, email_error: str | None = None, email: str = "") -> HTMLResponse:
    return svc.renderer.page(request, "saved.html", status_code=status_code, guide=guide, token=token,
                             expires=expires, email_error=email_error, email=email,
                             just_saved=request.query_params.get("saved") == "1",
                             updated=request.query_params.get("updated") == "1")


@router.get("/g/{token}", response_class=HTMLResponse, name="saved_guide")
async def saved_guide(token: str, request: Request, svc: Svc) -> HTMLResponse:
    guide, expires = await _load(svc, token)
    return _saved_page(request, svc, token, guide, expires)


@router.get("/g/{token}/pdf", response_model=None)
async def saved_pdf(token: str, svc: Svc) -> Response:
    guide, _ = await _load(svc, token)
    return await pdf_response(guide)


@router.post("/g/{token}/delete", response_model=None)
async def delete_saved(token: str, request: Request, svc: Svc) -> Response:
    if svc.store is None:
        raise HTTPException(status_code=500)
    await run_in_threadpool(svc.store.delete, token)
    if request.session.get(SAVED_TOKEN) == token:
        request.session.pop(SAVED_TOKEN, None)
    return RedirectResponse("/guide/deleted", status_code=303)


@router.get("/guide/deleted", response_class=HTMLResponse)
async def deleted(request: Request, svc: Svc) -> HTMLResponse:
    return svc.renderer.page(request, "deleted.html")


@router.post("/g/{token}/edit", response_model=None)
async def edit_saved(token: str, request: Request, svc: Svc) -> Response:
    """Open a saved guide in the editor (e.g. on another device); saving updates the same link."""
    from mbcnav.web import guide_session

    guide, _ = await _load(svc, token)
    if not guide_session.store(request.session, guide, svc.codec):
        raise HTTPException(status_code=400)
    request.session[SAVED_TOKEN] = token
    return RedirectResponse("/guide", status_code=303)


@router.post("/g/{token}/email", response_model=None)
async def email_guide(token: str, request: Request, svc: Svc, email: Annotated[str, Form()] = "") -> Response:
    guide, expires = await _load(svc, token)
    outbox = svc.outbox
    if outbox is None:
        raise HTTPException(status_code=500)
    try:
        address = normalise_address(email)
    except InvalidRecipient:
        return _saved_page(request, svc, token, guide, expires, 422, email=email[:320],
                           email_error="Please enter one email address, like name@example.com.")
    settings = svc.settings
    client = request.client.host if request.client else "unknown"
    window = settings.email_limit_window_seconds

    def allowed() -> bool:
        # Per client first, so one client cannot use up an address's allowance for someone else.
        return (outbox.allow(f"client:{client}", settings.email_limit_per_client, window)
                and outbox.allow(f"addr:{address}", settings.email_limit_per_address, window))

    if not await run_in_threadpool(allowed):
        return _saved_page(request, svc, token, guide, expires, 429, email=email[:320], email_error=LIMITED)
    link = str(request.url_for("saved_guide", token=token))
    message_id = await run_in_threadpool(outbox.enqueue, address, guide, link)
    svc.wake_sender()
    return RedirectResponse(f"/email/{message_id}", status_code=303)


async def _status(svc: Services, message_id: str) -> MessageStatus:
    if svc.outbox is None or len(message_id) > 64:
        raise HTTPException(status_code=404)
    status = await run_in_threadpool(svc.outbox.status, message_id)
    if status is None:
        raise HTTPException(status_code=404)
    return status


@router.get("/email/{message_id}", response_model=None)
async def email_status(message_id: str, request: Request, svc: Svc, shown: str | None = None) -> Response:
    status = await _status(svc, message_id)
    state = "struggling" if status.struggling else status.status
    if is_htmx(request) and shown == state:
        # Nothing new: 204 leaves the box (and what a screen reader last announced) as it is.
        return Response(status_code=204)
    template = "_email_status.html" if is_htmx(request) else "email_status.html"
    token = request.session.get(SAVED_TOKEN)
    return svc.renderer.page(request, template, s=status, guide_token=token if isinstance(token, str) else None)


@router.post("/email/{message_id}/retry", response_model=None)
async def email_retry(message_id: str, request: Request, svc: Svc) -> Response:
    await _status(svc, message_id)
    assert svc.outbox is not None
    await run_in_threadpool(svc.outbox.retry, message_id)
    svc.wake_sender()
    if is_htmx(request):
        return await email_status(message_id, request, svc)
    return RedirectResponse(f"/email/{message_id}", status_code=303)
