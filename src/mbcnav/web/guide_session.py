"""The unsaved guide lives in the session cookie, compactly, until the user saves it.

A question taken from the knowledge base is kept as its id only (the text comes back from the
knowledge base), so only the user's own words take cookie space. `store` refuses a guide that
would not fit in a cookie instead of letting the browser drop the cookie silently.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from mbcnav.guide.model import Guide, GuideError, GuideItem
from mbcnav.knowledge.loader import knowledge
from mbcnav.web.sessions import SessionCodec

KEY = "guide"
OPTIONS_KEY = "guide_options"
OWN = "own"


@lru_cache(maxsize=2)
def _question_texts(knowledge_version: str) -> dict[str, str]:
    return {q.id: q.text for q in knowledge().questions}


def question_texts() -> dict[str, str]:
    """Question id -> text in the loaded knowledge base (built once per knowledge version)."""
    return _question_texts(knowledge().version)


def load(session: dict[str, Any]) -> Guide:
    questions = question_texts()
    items: list[GuideItem] = []
    for row in session.get(KEY, []):
        try:
            item_id, kind, origin, text = row
            if origin != OWN:
                text = questions.get(origin)
                if text is None:   # the knowledge base no longer has it: drop it quietly
                    continue
            items.append(GuideItem(id=item_id, kind=kind, origin=origin, text=text))
        except (ValueError, TypeError):
            continue          # a row from an older layout: skip rather than fail the page
    try:
        return Guide(items=items, knowledge_version=knowledge().version)
    except ValueError:
        return Guide(knowledge_version=knowledge().version)


def store(session: dict[str, Any], guide: Guide, codec: SessionCodec) -> bool:
    """Put the guide in the session; False (session unchanged) when it would not fit in a cookie."""
    rows = [[i.id, i.kind, i.origin or OWN, i.text if (i.origin or OWN) == OWN else None] for i in guide.items]
    candidate = {**session, KEY: rows}
    if not codec.fits(candidate):
        return False
    session[KEY] = rows
    return True


def origins(guide: Guide) -> frozenset[str]:
    return frozenset(i.origin for i in guide.items if i.origin and i.origin != OWN)


def chosen_options(session: dict[str, Any]) -> list[str]:
    value = session.get(OPTIONS_KEY, [])
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def toggle_option(session: dict[str, Any], option_id: str, codec: SessionCodec) -> bool:
    chosen = chosen_options(session)
    chosen = [c for c in chosen if c != option_id] if option_id in chosen else [*chosen, option_id]
    candidate = {**session, OPTIONS_KEY: chosen}
    if not codec.fits(candidate):
        return False
    session[OPTIONS_KEY] = chosen
    return True


def add_question(guide: Guide, question_id: str) -> None:
    text = question_texts().get(question_id)
    if text is None:
        raise GuideError(["question: unknown question"])
    if guide.find_origin(question_id) is None:
        guide.add("question", text, question_id)


def remove_question(guide: Guide, question_id: str) -> None:
    item = guide.find_origin(question_id)
    if item is not None:
        guide.remove(item.id)
