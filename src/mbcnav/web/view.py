"""The options page's view model: one Recommendation, grouped by heading and joined with the catalogue.

Built once per distinct profile and kept in a small LRU cache: the engine is deterministic for a
given profile and knowledge version, and recomputing it on every page view would dominate the
response time. Nothing here depends on the user's guide or session, so one entry serves every
request for the same profile.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mbcnav.engine import evaluate
from mbcnav.knowledge import schema as s
from mbcnav.knowledge.loader import knowledge
from mbcnav.render.labels import SUBTYPE_LABEL, TIER_LABEL
from mbcnav.web.content import Category, categories, category_of, trial_finder
from mbcnav.web.path import PathStep, treatment_path
from mbcnav.web.slots import Lru
from mbcnav.whatif import what_if

HER2_LABEL = {"positive": "HER2-positive", "low": "HER2-low", "ultralow": "HER2-ultralow", "zero": "HER2-zero",
              "unknown": "HER2 result not known"}
# Strength of evidence in plain words, strongest first; the professional view shows the raw level.
EVIDENCE = {
    "phase3_rct": (1, "Strong", "large randomised trials"),
    "randomised_phase2": (2, "Moderate", "smaller randomised trials"),
    "label": (3, "Approved use", "approved by the FDA for this use"),
    "guideline": (3, "Expert guideline", "recommended in guidelines"),
    "single_arm": (4, "Early", "studies without a comparison group"),
    "expert_opinion": (5, "Limited", "expert opinion"),
    "historical": (6, "Historical", "no longer current"),
}
LEVEL_LABEL = {
    "phase3_rct": "Phase 3 randomised trial", "randomised_phase2": "Randomised phase 2 trial",
    "single_arm": "Single-arm or basket trial", "guideline": "Guideline", "label": "FDA label",
    "expert_opinion": "Expert opinion", "historical": "Historical",
}


@dataclass(frozen=True)
class DrugInfo:
    id: str
    name: str
    brands: tuple[str, ...]
    drug: s.Drug | None          # None for non-drug treatments (radiation, surgery, ...)


@dataclass
class Entry:
    """An option or a local/supportive measure, with what the reader needs to judge it."""

    raw: dict[str, Any]
    components: list[list[DrugInfo]]
    tier_label: str
    strength: tuple[str, str]    # ("Strong", "large randomised trials")

    @property
    def drugs(self) -> list[DrugInfo]:
        seen: dict[str, DrugInfo] = {}
        for component in self.components:
            for info in component:
                seen.setdefault(info.id, info)
        return [d for d in seen.values() if d.drug is not None]


@dataclass
class Group:
    category: Category
    entries: list[Entry] = field(default_factory=list)


@dataclass
class QuestionView:
    id: str
    text: str
    personal: bool
    category: str


@dataclass
class OptionsView:
    rec: dict[str, Any]
    subtype_label: str
    her2_label: str
    urgent: list[str]
    warnings: list[str]
    groups: list[Group]
    first_option_id: str | None
    option_ids: frozenset[str]
    trials_url: str                  # recruiting trials for this subtype on ClinicalTrials.gov
    not_recommended: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    interactions: list[dict[str, Any]]
    personal_questions: list[QuestionView]
    general_questions: list[tuple[str, list[QuestionView]]]
    path: list[PathStep]


def drug_info(drug_id: str) -> DrugInfo:
    drug = knowledge().drugs.get(drug_id)
    if drug is None:
        return DrugInfo(drug_id, drug_id.replace("_", " ").capitalize(), (), None)
    return DrugInfo(drug_id, drug.name, tuple(drug.brands), drug)


def _entry(raw: dict[str, Any]) -> Entry:
    levels = [e["level"] for e in raw.get("evidence", [])]
    best = min(levels, key=lambda level: EVIDENCE[level][0]) if levels else "expert_opinion"
    _, word, meaning = EVIDENCE[best]
    return Entry(raw, [[drug_info(d) for d in component] for component in raw["drugs"]],
                 TIER_LABEL.get(raw.get("tier") or "", ""), (word, meaning))


def _groups(rec: Mapping[str, Any]) -> list[Group]:
    groups = {c.slug: Group(c) for c in categories()}
    for raw in [*rec["options"], *rec["local_and_supportive"]]:
        groups[category_of(raw["category"]).slug].entries.append(_entry(raw))
    return [g for g in groups.values() if g.entries]


def _questions(rec: Mapping[str, Any]) -> tuple[list[QuestionView], list[tuple[str, list[QuestionView]]]]:
    by_text = {q.text: q for q in knowledge().questions}
    personal: list[QuestionView] = []
    general: dict[str, list[QuestionView]] = {}
    for text in rec["questions_for_doctor"]:
        q = by_text.get(text)
        if q is None:
            continue
        view = QuestionView(q.id, q.text, q.when is not None, q.category)
        if view.personal:
            personal.append(view)
        else:
            general.setdefault(question_heading(q.category), []).append(view)
    return personal, list(general.items())


def question_heading(category: str) -> str:
    special = {"general": "About treatment in general", "tests": "About tests", "side_effects": "About side effects"}
    return special.get(category) or f"About {category_of(category).title.lower()}"


def _warnings(rec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    urgent_texts = {w.text for w in knowledge().warnings if w.urgent}
    urgent = [w for w in rec["warnings"] if w in urgent_texts]
    return urgent, [w for w in rec["warnings"] if w not in urgent_texts]


def build(profile: Mapping[str, Any]) -> OptionsView:
    evaluation = evaluate(profile)
    rec = evaluation.recommendation
    urgent, warnings = _warnings(rec)
    personal, general = _questions(rec)
    possible = what_if(profile, rec)
    tests = [{**t, "professional": getattr(knowledge().tests.get(t.get("id", "")), "professional", None),
              "outcomes": possible.get(t.get("id", ""), [])}
             for t in rec["tests_to_consider"]]
    return OptionsView(
        rec=rec,
        subtype_label=SUBTYPE_LABEL.get(rec["subtype"], rec["subtype"]),
        her2_label=HER2_LABEL.get(rec["her2_category"], rec["her2_category"]),
        urgent=urgent,
        warnings=warnings,
        groups=_groups(rec),
        first_option_id=rec["options"][0]["id"] if rec["options"] else None,
        option_ids=frozenset(o["id"] for o in rec["options"]),
        trials_url=trial_finder().search_url(rec["subtype"]),
        not_recommended=rec["not_recommended"],
        tests=tests,
        interactions=rec["interactions"],
        personal_questions=personal,
        general_questions=general,
        path=treatment_path(evaluation.profile, rec),
    )


class ViewCache:
    """A bounded LRU of OptionsView by canonical profile JSON (thread-safe; views are read-only)."""

    def __init__(self, size: int = 512) -> None:
        self._items: Lru[str, OptionsView] = Lru(size)

    def get(self, profile: Mapping[str, Any], key: str | None = None) -> OptionsView:
        """The view of `profile`; `key` is its canonical JSON when the caller already has it."""
        if key is None:
            key = json.dumps(profile, sort_keys=True, separators=(",", ":"))
        return self._items.get(key, lambda: build(profile))
