"""What the guide page offers to add, taken from one Recommendation (contract v1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mbcnav.guide.model import OptionSummary
from mbcnav.knowledge.loader import knowledge
from mbcnav.render.text import drug_line


@dataclass(frozen=True)
class SuggestedQuestion:
    id: str          # knowledge-base question id; becomes GuideItem.origin when added
    text: str
    personal: bool   # asked because of this person's facts (not a general question)


def suggested_questions(rec: Mapping[str, Any]) -> list[SuggestedQuestion]:
    """The recommendation's questions with their ids, in the recommendation's order.

    The contract lists question texts only; the ids come from the knowledge base that answered.
    """
    by_text = {q.text: q for q in knowledge().questions}
    out: list[SuggestedQuestion] = []
    for text in rec.get("questions_for_doctor", []):
        q = by_text.get(text)
        if q is not None:
            out.append(SuggestedQuestion(id=q.id, text=q.text, personal=q.when is not None))
    return out


def option_summaries(rec: Mapping[str, Any], chosen: Iterable[str] | None = None) -> list[OptionSummary]:
    """Summaries of the options the user chose (all options when `chosen` is None), best first."""
    wanted = None if chosen is None else set(chosen)
    return [
        OptionSummary(title=o.get("plain_title") or o["title"], tier=o["tier"], drugs=drug_line(o["drugs"]))
        for o in rec.get("options", [])
        if wanted is None or o["id"] in wanted
    ]
