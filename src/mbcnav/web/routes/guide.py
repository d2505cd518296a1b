"""The Doctor Discussion Guide while it is being put together (kept in the session until saved).

Every change is a small POST form. Without JavaScript the browser follows a 303 back to the page
it came from (to the same question, by its anchor). With htmx the response is the updated panel
or editor, plus the toggled button and a short announcement for screen readers (out-of-band).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mbcnav.guide import GuideError, guide_pdf, option_summaries
from mbcnav.guide.model import Guide
from mbcnav.web import guide_session
from mbcnav.web.routes.options import session_profile
from mbcnav.web.security import require_csrf
from mbcnav.web.services import Services, services
from mbcnav.web.templating import is_htmx

router = APIRouter(prefix="/guide", dependencies=[Depends(require_csrf)])
Svc = Annotated[Services, Depends(services)]
SAVED_TOKEN = "saved_token"
FULL = "Your guide is full. Please save it first, or remove a question or note."
Ui = Literal["panel", "editor"]


def safe_next(value: str | None, default: str = "/guide") -> str:
    """Only a path on this site (no scheme, no '//host', no backslash): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def _anchored(next_url: str | None, question_id: str) -> str:
    # Back to the same question after a plain (no JavaScript) form post.
    return safe_next(next_url).split("#", 1)[0] + f"#qc-{question_id}"


def suggestions(request: Request, svc: Services) -> list[tuple[str, list[object]]]:
    profile, _ = session_profile(request)
    if profile is None:
        return []
    view = svc.views.get(profile)
    groups: list[tuple[str, list[object]]] = []
    if view.personal_questions:
        groups.append(("Questions about your situation", list(view.personal_questions)))
    groups.extend((heading, list(items)) for heading, items in view.general_questions)
    return groups


def editor(request: Request, svc: Services, guide: Guide, status_code: int = 200, **extra: object) -> HTMLResponse:
    token = request.session.get(SAVED_TOKEN)
    template = "_guide_editor.html" if is_htmx(request) else "guide.html"
    context: dict[str, object] = {
        "guide": guide, "in_guide": guide_session.origins(guide), "suggestions": suggestions(request, svc),
        "saved_token": token if isinstance(token, str) else None, "own_error": None, "own_text": "",
        "own_kind": "question", "message": None, "announce": "",
    }
    context.update(extra)
    return svc.renderer.page(request, template, status_code=status_code, **context)


def changed(request: Request, svc: Services, guide: Guide, ui: Ui, next_url: str | None,
            question_id: str | None = None, announce: str = "") -> Response:
    if not is_htmx(request):
        return RedirectResponse(safe_next(next_url), status_code=303)
    if ui == "editor":
        return editor(request, svc, guide, announce=announce)
    return svc.renderer.page(request, "_guide_changed.html", guide=guide, in_guide=guide_session.origins(guide),
                             question_id=question_id, next_url=safe_next(next_url), announce=announce)


@router.get("", response_class=HTMLResponse)
async def guide_page(request: Request, svc: Svc) -> HTMLResponse:
    return editor(request, svc, guide_session.load(request.session))


@router.post("/questions/add", response_model=None)
async def add_question(request: Request, svc: Svc, question_id: Annotated[str, Form()],
                       next: Annotated[str | None, Form()] = None, ui: Annotated[Ui, Form()] = "panel") -> Response:
    guide = guide_session.load(request.session)
    try:
        guide_session.add_question(guide, question_id)
    except GuideError:
        raise HTTPException(status_code=404) from None
    if not guide_session.store(request.session, guide, svc.codec):
        return editor(request, svc, guide_session.load(request.session), status_code=413 if not is_htmx(request)
                      else 200, message=FULL)
    return changed(request, svc, guide, ui, _anchored(next, question_id), question_id, "Added to your guide.")


@router.post("/questions/remove", response_model=None)
async def remove_question(request: Request, svc: Svc, question_id: Annotated[str, Form()],
                          next: Annotated[str | None, Form()] = None, ui: Annotated[Ui, Form()] = "panel") -> Response:
    guide = guide_session.load(request.session)
    guide_session.remove_question(guide, question_id)
    guide_session.store(request.session, guide, svc.codec)
    return changed(request, svc, guide, ui, _anchored(next, question_id), question_id, "Removed from your guide.")


@router.post("/items/remove", response_model=None)
async def remove_item(request: Request, svc: Svc, item_id: Annotated[str, Form()]) -> Response:
    guide = guide_session.load(request.session)
    guide.remove(item_id)
    guide_session.store(request.session, guide, svc.codec)
    return changed(request, svc, guide, "editor", "/guide", announce="Removed.")


@router.post("/items/move", response_model=None)
async def move_item(request: Request, svc: Svc, item_id: Annotated[str, Form()],
                    direction: Annotated[Literal["up", "down"], Form()]) -> Response:
    guide = guide_session.load(request.session)
    try:
        moved = guide.move_up(item_id) if direction == "up" else guide.move_down(item_id)
    except GuideError:
        raise HTTPException(status_code=404) from None
    guide_session.store(request.session, guide, svc.codec)
    if moved:
        announce = f"Moved {direction}."
    else:
        announce = "It is already at the top." if direction == "up" else "It is already at the end."
    return changed(request, svc, guide, "editor", f"/guide#item-{item_id}", announce=announce)


@router.post("/items/add", response_model=None)
async def add_own(request: Request, svc: Svc, text: Annotated[str, Form()] = "",
                  kind: Annotated[Literal["question", "note"], Form()] = "question") -> Response:
    guide = guide_session.load(request.session)
    problem = None
    if not text.strip():
        problem = "Please write your question or note first."
    else:
        try:
            guide.add(kind, text, guide_session.OWN)
        except GuideError as err:
            problem = _plain_guide_error(err)
    if problem is None and not guide_session.store(request.session, guide, svc.codec):
        problem = FULL
        guide = guide_session.load(request.session)
    if problem is not None:
        status = 200 if is_htmx(request) else 422
        return editor(request, svc, guide, status_code=status, own_error=problem, own_text=text, own_kind=kind)
    return changed(request, svc, guide, "editor", "/guide#own", announce="Added to your guide.")


def _plain_guide_error(err: GuideError) -> str:
    text = "; ".join(err.problems)
    if "characters" in text:
        return "That is too long. Please keep it under 1,000 characters, or split it in two."
    if "not allowed" in text:
        return "Some characters in that text cannot be used. Please type it again."
    return "That could not be added. Please check the text and try again."


@router.post("/options/toggle", response_model=None)
async def toggle_option(request: Request, svc: Svc, option_id: Annotated[str, Form()],
                        next: Annotated[str | None, Form()] = None) -> Response:
    guide_session.toggle_option(request.session, option_id[:100], svc.codec)
    if is_htmx(request):
        chosen = option_id in guide_session.chosen_options(request.session)
        return svc.renderer.page(request, "_option_toggle.html", option_id=option_id, chosen=chosen,
                                 next_url=safe_next(next, "/options"),
                                 announce="Added to your guide." if chosen else "Removed from your guide.")
    return RedirectResponse(safe_next(next, "/options"), status_code=303)


def guide_to_save(request: Request, svc: Services) -> Guide:
    guide = guide_session.load(request.session)
    profile, _ = session_profile(request)
    chosen = guide_session.chosen_options(request.session)
    if profile is not None and chosen:
        guide.options_summary = option_summaries(svc.views.get(profile).rec, chosen) or None
    return guide


@router.post("/save", response_model=None)
async def save(request: Request, svc: Svc) -> Response:
    if svc.store is None:
        raise HTTPException(status_code=500)
    guide = guide_to_save(request, svc)
    token = request.session.get(SAVED_TOKEN)
    # Database calls run in the thread pool: a commit waits for the disk, the event loop must not.
    if isinstance(token, str) and await run_in_threadpool(svc.store.replace, token, guide):
        return RedirectResponse(f"/g/{token}?updated=1", status_code=303)
    token, _ = await run_in_threadpool(svc.store.save, guide, svc.settings.guide_ttl_days)
    request.session[SAVED_TOKEN] = token
    return RedirectResponse(f"/g/{token}?saved=1", status_code=303)


@router.post("/save-new", response_model=None)
async def save_new(request: Request, svc: Svc) -> Response:
    request.session.pop(SAVED_TOKEN, None)
    return await save(request, svc)


@router.get("/pdf", response_model=None)
async def pdf(request: Request, svc: Svc) -> Response:
    return await pdf_response(guide_to_save(request, svc))


async def pdf_response(guide: Guide) -> Response:
    # Building a PDF takes tens of milliseconds of CPU: off the event loop.
    content = await run_in_threadpool(guide_pdf, guide)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="doctor-discussion-guide.pdf"'})
