"""Your options: the Recommendation for the profile in the session, grouped and explained."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mbcnav.web import form as form_mod
from mbcnav.web import guide_session
from mbcnav.web.routes.profile import ANSWERS, render_form
from mbcnav.web.security import csrf_token, require_csrf
from mbcnav.web.services import Services, services

router = APIRouter(dependencies=[Depends(require_csrf)])
Svc = Annotated[Services, Depends(services)]


def session_profile(request: Request) -> tuple[dict[str, Any] | None, form_mod.Parsed | None]:
    answers = request.session.get(ANSWERS)
    if not isinstance(answers, dict):
        return None, None
    parsed = form_mod.parse_answers_cached(answers)
    return parsed.profile, parsed


@router.get("/options", response_class=HTMLResponse)
async def options_page(request: Request, svc: Svc, view: str = "patient") -> HTMLResponse:
    profile, parsed = session_profile(request)
    if parsed is None:
        return svc.renderer.page(request, "options_start.html")
    if profile is None:
        # Answers that were valid once but not now (the knowledge base changed): ask again.
        return render_form(request, svc, request.session[ANSWERS], parsed.errors, status_code=422)
    panel, in_guide = svc.guide_panel(request)
    body = svc.options_page.body(parsed.key, svc.views.get(profile, parsed.key), view == "pro",
                                 csrf=csrf_token(request), guide_panel=panel, in_guide=in_guide,
                                 chosen=frozenset(guide_session.chosen_options(request.session)))
    return svc.renderer.framed(request, "options.html", body)
