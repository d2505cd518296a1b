"""The "About your cancer" form. Answers are kept in the signed session cookie, never on the server."""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mbcnav.web import form as form_mod
from mbcnav.web.content import form_steps
from mbcnav.web.routes.pages import EXAMPLES
from mbcnav.web.security import require_csrf
from mbcnav.web.services import Services, services

router = APIRouter(dependencies=[Depends(require_csrf)])
Svc = Annotated[Services, Depends(services)]
ANSWERS = "answers"


def render_form(request: Request, svc: Services, answers: form_mod.Answers, errors: dict[str, list[str]],
                status_code: int = 200) -> HTMLResponse:
    summary = [(form_mod.error_target(key), form_mod.error_label(key), message)
               for key, messages in errors.items() for message in messages]
    return svc.renderer.page(request, "form.html", status_code=status_code, steps=form_steps(), answers=answers,
                             errors=errors, error_summary=summary, drug_choices=form_mod.drug_choices(),
                             outcomes=form_mod.OUTCOMES, settings_choices=form_mod.SETTINGS,
                             drugs_per_row=form_mod.DRUGS_PER_ROW)


@router.get("/about-your-cancer", response_class=HTMLResponse)
async def show_form(request: Request, svc: Svc) -> HTMLResponse:
    answers = request.session.get(ANSWERS)
    return render_form(request, svc, answers if isinstance(answers, dict) else {}, {})


@router.post("/about-your-cancer", response_model=None)
async def submit_form(request: Request, svc: Svc) -> Response:
    answers = form_mod.answers_from_form(await request.form())
    parsed = form_mod.parse_answers(answers)
    if parsed.profile is None:
        # 422 for a plain form post; htmx only swaps 2xx responses, so it gets 200 with the errors.
        status = 200 if request.headers.get("hx-request") == "true" else 422
        return render_form(request, svc, answers, parsed.errors, status_code=status)
    if not svc.codec.fits({**request.session, ANSWERS: answers}):
        return render_form(request, svc, answers, {"": [
            "Your answers are too long to keep. Please shorten the list of medicines or treatments."]},
            status_code=422)
    request.session[ANSWERS] = answers
    return RedirectResponse("/options", status_code=303)


@router.post("/about-your-cancer/example", response_model=None)
async def load_example(request: Request, name: Annotated[str, Form()]) -> Response:
    if name not in EXAMPLES:
        raise HTTPException(status_code=404)
    text = (resources.files("mbcnav") / "examples" / f"{name}.json").read_text(encoding="utf-8")
    request.session[ANSWERS] = form_mod.answers_from_profile(json.loads(text))
    return RedirectResponse("/options", status_code=303)


@router.post("/forget", response_model=None)
async def forget(request: Request) -> Response:
    """Clear everything this site keeps in the browser: answers and the unsaved guide."""
    request.session.clear()
    return RedirectResponse("/?forgotten=1", status_code=303)
