"""Jinja2 set-up: autoescape everywhere, the footer's knowledge version, and one render helper."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from mbcnav.engine import DISCLAIMER
from mbcnav.knowledge.loader import knowledge
from mbcnav.render.text import drug_line
from mbcnav.web import guide_session
from mbcnav.web.content import categories, trial_finder
from mbcnav.web.security import csrf_token
from mbcnav.web.slots import Lru, Slotted, slot

TEMPLATES = Path(str(resources.files("mbcnav.web") / "templates"))
STATIC = Path(str(resources.files("mbcnav.web") / "static"))
CSRF_SLOT = slot("csrf")
BODY_SLOT = slot("body")


def _date(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value:%B %Y}"


def _drug_name(drug_id: str) -> str:
    drug = knowledge().drugs.get(drug_id)
    if drug is not None:
        return drug.name
    name = drug_id.replace("_", " ").capitalize()
    medication = knowledge().medications.get(drug_id)
    return f"{name} ({medication.names[0]})" if medication and medication.names else name


def _static_version() -> str:
    # Cache-busting query for static files: changes whenever one of them changes.
    newest = max((p.stat().st_mtime_ns for p in STATIC.rglob("*") if p.is_file()), default=0)
    return format(newest % 10**10, "x")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,            # every template, whatever its extension
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
    )
    kb = knowledge()
    env.globals.update(
        kb_version=kb.version,
        kb_reviewed=_date(kb.last_reviewed()),
        disclaimer=DISCLAIMER,
        categories=categories(),
        trial_finder=trial_finder(),
        static_v=_static_version(),
    )
    env.globals["drug_name"] = _drug_name
    env.filters["date"] = _date
    env.filters["drug_line"] = drug_line
    return env


class Renderer:
    def __init__(self) -> None:
        self.env = environment()
        self._frames: Lru[tuple[str, str, bool, int, bool], Slotted] = Lru(512)

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.text(request, name, **context), status_code=status_code)

    def text(self, request: Request, name: str, **context: Any) -> str:
        session = request.session
        base = {
            "request": request,
            "path": request.url.path,
            "csrf": csrf_token(request),
            "has_profile": "answers" in session,
            "guide_count": len(session.get(guide_session.KEY, [])),
            "htmx": is_htmx(request),
        }
        return self.env.get_template(name).render({**base, **context})


    def framed(self, request: Request, name: str, body: str | bytes) -> HTMLResponse:
        """Page `name`, whose only content is `body`, in a layout rendered once per layout state.

        The layout depends on the path, whether there is a profile, the guide's size and htmx; it
        is cached per combination with a slot for the CSRF token, so a request only joins strings.
        `name` must use no other context (the tests compare with `page`).
        """
        session = request.session
        csrf = csrf_token(request)
        key = (name, request.scope["path"], "answers" in session, len(session.get(guide_session.KEY, [])),
               is_htmx(request))

        def render() -> Slotted:
            _, path, has_profile, guide_count, htmx = key
            return Slotted(self.env.get_template(name).render(
                request=None, path=path, csrf=CSRF_SLOT, has_profile=has_profile, guide_count=guide_count,
                htmx=htmx, body=Markup(BODY_SLOT)))

        return HTMLResponse(self._frames.get(key, render).fill({CSRF_SLOT: csrf, BODY_SLOT: body}))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
