"""Conditions -> metastatic sites (and their onset dates), the primary diagnosis, menopause.

A SecondaryCancerCondition is recognised by its mCODE profile (any version) or by its code. Its
site comes from the code (e.g. SNOMED 94222008, secondary neoplasm of bone), else from bodySite
(needed for the generic 128462008), else from the words of an uncoded text. An unknown code is
reported with its display; a site is never inferred from the primary cancer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mbcnav.fhir._bundle import Resource
from mbcnav.fhir._collect import Candidate, Collector
from mbcnav.fhir._values import Moment, answer_meanings, codings, concept_text, describe, first_moment, lookup

SITE_WORDS = {
    "bone": r"\bbones?\b|osseous|skelet|vertebra", "liver": r"\bliver\b|hepatic", "lung": r"\blungs?\b|pulmonary",
    "pleura": r"pleura", "leptomeninges": r"leptomening|meninge", "brain": r"\bbrain\b|cerebr|intracranial",
    "lymph_nodes": r"lymph node|\bnodal\b", "skin": r"\bskin\b|cutaneous", "soft_tissue": r"soft tissue",
    "chest_wall": r"chest wall", "breast": r"\bbreast\b", "peritoneum": r"peritone",
}
ASSERTED = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"


@dataclass
class ConditionFacts:
    sites: dict[str, list[str]] = field(default_factory=dict)         # site -> resources
    secondary_onsets: list[tuple[Moment, str]] = field(default_factory=list)
    secondary_undated: list[str] = field(default_factory=list)
    secondary_count: int = 0


def _kind(col: Collector, resource: Resource) -> str | None:
    book, cond = col.book, resource.model
    for url in resource.profiles:
        found = book.profile(url)
        if found and found[1].kind in ("secondary_cancer_condition", "primary_cancer_condition"):
            return "secondary" if found[1].kind.startswith("secondary") else "primary"
    coded = lookup(book, cond.code, book.conditions)
    if coded is not None:
        return "secondary" if coded[0].kind == "secondary" else "primary"
    if lookup(book, cond.code, book.sites) is not None:
        return "secondary"
    if re.search(r"\b(secondary|metasta)", concept_text(cond.code), re.I):
        return "secondary"
    return None


def _onset(cond: Any) -> Moment | None:
    period = cond.onsetPeriod
    asserted = next((e.valueDateTime for e in cond.extension or [] if e.url == ASSERTED), None)
    return first_moment(cond.onsetDateTime, period.start if period else None, cond.onsetString, asserted)


def _sites(col: Collector, cond: Any) -> tuple[set[str], str]:
    book = col.book
    for concept, where in [(cond.code, "code"), *[(b, "bodySite") for b in cond.bodySite or []]]:
        for coded in codings(book, concept):
            if coded.system and coded.code:
                entry = book.site(coded.system, coded.code)
                if entry is not None:
                    return {entry.site}, f"{where} {coded.label()}"
    coded_generic = lookup(book, cond.code, book.conditions)
    texts = [concept_text(b) for b in cond.bodySite or []]
    if coded_generic is None and not any(c.code for c in codings(book, cond.code)):
        texts.append(concept_text(cond.code))   # an uncoded condition: its words are all there is
    for text in texts:
        found = {site for site, pattern in SITE_WORDS.items() if re.search(pattern, text or "", re.I)}
        if found:
            return found, f"text {text!r}"
    shown = "; ".join([describe(book, cond.code), *[f"bodySite {describe(book, b)}" for b in cond.bodySite or []]])
    return set(), shown


def read(col: Collector, resource: Resource, facts: ConditionFacts) -> None:
    cond, ref = resource.model, resource.ref
    verification = {c.code or "" for c in codings(col.book, cond.verificationStatus)}
    if verification & {"refuted", "entered-in-error"}:
        col.ignored("Condition", ref, f"verification status {', '.join(sorted(verification))}")
        return
    if _menopause(col, resource):
        return
    kind = _kind(col, resource)
    if kind is None:
        col.ignored("Condition", ref, f"not a cancer condition mbcnav reads ({describe(col.book, cond.code)})")
        return
    onset = _onset(cond)
    if kind == "primary":
        col.report.sections["Condition"].found.append(
            _found("diagnosis", concept_text(cond.code) or describe(col.book, cond.code), ref, onset,
                   f"primary cancer: {describe(col.book, cond.code)}"))
        return
    clinical = {c.code for c in codings(col.book, cond.clinicalStatus)}
    if clinical & {"resolved"}:
        col.ignored("Condition", ref, "secondary cancer recorded as resolved")
        return
    facts.secondary_count += 1
    if onset is not None:
        facts.secondary_onsets.append((onset, ref))
    else:
        facts.secondary_undated.append(ref)
    sites, how = _sites(col, cond)
    if not sites:
        col.unreadable("Condition", ref, f"secondary cancer whose site could not be read ({how})")
        return
    for site in sorted(sites):
        facts.sites.setdefault(site, []).append(ref)
        col.report.sections["Condition"].found.append(
            _found("disease.sites", site, ref, onset, f"secondary cancer: {how}"))


def _found(field_name: str, value: Any, ref: str, onset: Moment | None, detail: str) -> Any:
    from mbcnav.fhir.report import Found

    return Found(field=field_name, value=value, resource=ref, detail=detail, date=onset.text if onset else None)


def _menopause(col: Collector, resource: Resource) -> bool:
    cond = resource.model
    meanings = {m for m, _ in answer_meanings(col.book, [cond.code]) if m.startswith("menopause_")}
    if not meanings:
        return False
    col.offer(Candidate("menopausal_status", meanings.pop().removeprefix("menopause_"), _onset(cond),
                        resource.ref, f"condition {describe(col.book, cond.code)}", "Condition"))
    return True
