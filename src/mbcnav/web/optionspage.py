"""The options page body, rendered once per (profile, view) and personalised per request.

Rendering the full page takes several milliseconds (it is long: every option with its medicines),
while everything session-specific in it is small: the CSRF token in each form, the guide panel,
and which "Add to guide" buttons show as already added. So the body is rendered with
placeholders and cached; a request swaps in its token and panel and flips the few added
controls by exact string replacement. `tests/web/test_optionspage.py` checks the result is
byte-identical to rendering the page from scratch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from threading import Lock
from typing import Any

from markupsafe import Markup

from mbcnav.web.templating import Renderer
from mbcnav.web.view import LEVEL_LABEL, OptionsView

CSRF_SLOT = "@@mbcnav-csrf@@"
PANEL_SLOT = "@@mbcnav-guide-panel@@"


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, bool], str] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[str, bool], make: Callable[[], str]) -> str:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class OptionsPage:
    def __init__(self, renderer: Renderer, size: int = 256) -> None:
        self.renderer = renderer
        self.cache = _Lru(size)
        self._macros = renderer.env.get_template("_macros.html").make_module({"csrf": CSRF_SLOT})

    def body(self, profile: Mapping[str, Any], view: OptionsView, pro: bool, *, csrf: str, guide_panel: str,
             in_guide: Iterable[str], chosen: Iterable[str]) -> Markup:
        key = (json.dumps(profile, sort_keys=True, separators=(",", ":")), pro)
        html = self.cache.get(key, lambda: self.render(view, pro, CSRF_SLOT, Markup(PANEL_SLOT), (), ()))
        next_url = next_url_for(pro)
        page_questions = {q.id for q in view.personal_questions} | {
            q.id for _, items in view.general_questions for q in items}
        for question_id in sorted(set(in_guide) & page_questions):
            html = html.replace(self._question(question_id, False, next_url),
                                self._question(question_id, True, next_url), 1)
        for option_id in sorted(set(chosen) & view.option_ids):
            html = html.replace(self._option(option_id, False, next_url), self._option(option_id, True, next_url), 1)
        return Markup(html.replace(CSRF_SLOT, csrf).replace(PANEL_SLOT, guide_panel))

    def render(self, view: OptionsView, pro: bool, csrf: str, guide_panel: Markup, in_guide: Iterable[str],
               chosen: Iterable[str]) -> str:
        """The body from scratch (used to fill the cache, and by the test that checks the cache)."""
        template = self.renderer.env.get_template("_options_body.html")
        return template.render(v=view, pro=pro, csrf=csrf, guide_panel=guide_panel, in_guide=frozenset(in_guide),
                               chosen=frozenset(chosen), level_label=LEVEL_LABEL)

    def _question(self, question_id: str, added: bool, next_url: str) -> str:
        control: Any = self._macros.question_control  # type: ignore[attr-defined]  # a Jinja macro
        return str(control(question_id, "", added, next_url))

    def _option(self, option_id: str, chosen: bool, next_url: str) -> str:
        template = self.renderer.env.get_template("_option_control.html")
        return template.render(option_id=option_id, chosen=chosen, next_url=next_url, csrf=CSRF_SLOT)


def next_url_for(pro: bool) -> str:
    return "/options?view=pro" if pro else "/options"
