"""The options page body, rendered once per (profile, view) and personalised per request.

Rendering the full page takes several milliseconds (it is long: every option with its medicines),
while everything session-specific in it is small: the CSRF token in each form, the guide panel,
and which "Add to guide" buttons show as already added. So the body is rendered once with slots
in those places (see `slots.py`), and a request fills in its token, panel and controls.
`tests/web/test_options.py` checks the result is byte-identical to rendering from scratch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from mbcnav.web.slots import Lru, Slotted, slot
from mbcnav.web.templating import CSRF_SLOT, Renderer
from mbcnav.web.view import LEVEL_LABEL, OptionsView

PANEL_SLOT = slot("panel")


@dataclass(frozen=True)
class _Body:
    text: Slotted
    controls: dict[str, tuple[str, str]]   # slot marker -> ("q" question | "o" option, id)


class OptionsPage:
    def __init__(self, renderer: Renderer, size: int = 256) -> None:
        self.renderer = renderer
        self.cache: Lru[tuple[str, bool], _Body] = Lru(size)
        macros: Any = renderer.env.get_template("_macros.html").make_module({"csrf": CSRF_SLOT})
        option_template = renderer.env.get_template("_option_control.html")

        @lru_cache(maxsize=4096)
        def question(question_id: str, added: bool, next_url: str) -> bytes:
            return str(macros.question_control(question_id, "", added, next_url)).encode()

        @lru_cache(maxsize=4096)
        def option(option_id: str, chosen: bool, next_url: str) -> Slotted:
            return Slotted(option_template.render(option_id=option_id, chosen=chosen, next_url=next_url,
                                                  csrf=CSRF_SLOT))

        self._question, self._option = question, option

    def body(self, key: str, view: OptionsView, pro: bool, *, csrf: str, guide_panel: str,
             in_guide: Collection[str], chosen: Collection[str]) -> bytes:
        """The body (UTF-8) for `view` (cached under `key`, the canonical profile JSON) for one visitor."""
        cached = self.cache.get((key, pro), lambda: self._slotted(view, pro))
        next_url = next_url_for(pro)
        values: dict[str, str | bytes] = {CSRF_SLOT: csrf, PANEL_SLOT: guide_panel}

        def control(marker: str) -> bytes:
            kind, item_id = cached.controls[marker]
            if kind == "q":
                return self._question(item_id, item_id in in_guide, next_url)
            return self._option(item_id, item_id in chosen, next_url).fill({CSRF_SLOT: csrf})

        return cached.text.fill(values, control)

    def render(self, view: OptionsView, pro: bool, csrf: str, guide_panel: Markup, in_guide: Iterable[str],
               chosen: Iterable[str]) -> str:
        """The body from scratch (used to fill the cache, and by the test that checks the cache)."""
        template = self.renderer.env.get_template("_options_body.html")
        return template.render(v=view, pro=pro, csrf=csrf, guide_panel=guide_panel, in_guide=frozenset(in_guide),
                               chosen=frozenset(chosen), level_label=LEVEL_LABEL)

    def _slotted(self, view: OptionsView, pro: bool) -> _Body:
        html = self.render(view, pro, CSRF_SLOT, Markup(PANEL_SLOT), (), ())
        next_url = next_url_for(pro)
        controls: dict[str, tuple[str, str]] = {}
        question_ids = {q.id for q in view.personal_questions} | {
            q.id for _, items in view.general_questions for q in items}
        # Each control, as rendered in its "not added" state, is swapped for its own slot.
        plain = [("q", i, self._question(i, False, next_url).decode()) for i in sorted(question_ids)] + [
            ("o", i, self._option(i, False, next_url).fill({CSRF_SLOT: CSRF_SLOT}).decode())
            for i in sorted(view.option_ids)]
        for kind, item_id, control in plain:
            if control in html:
                marker = slot(f"{kind}:{item_id}")
                html = html.replace(control, marker)
                controls[marker] = (kind, item_id)
        return _Body(Slotted(html), controls)


def next_url_for(pro: bool) -> str:
    return "/options?view=pro" if pro else "/options"
