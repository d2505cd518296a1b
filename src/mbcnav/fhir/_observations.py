"""Observations -> candidates: receptors, HER2, biomarkers, ECOG, stage, menopausal status.

An Observation is recognised by its code (codes/observations.yaml), never by its profile URL,
so STU1 tumour markers and records without meta.profile are read the same way.
"""

from __future__ import annotations

import re
from typing import Any

from mbcnav.fhir import _genomics, _results
from mbcnav.fhir._bundle import Resource
from mbcnav.fhir._codes import ObservationCode
from mbcnav.fhir._collect import Candidate, Collector
from mbcnav.fhir._results import Unclear, result_text
from mbcnav.fhir._values import Moment, answer_meanings, concept_text, describe, first_moment, lookup

USABLE_STATUS = {"final", "amended", "corrected"}
ROMAN = {"0": 0, "I": 1, "II": 2, "III": 3, "IV": 4, "1": 1, "2": 2, "3": 3, "4": 4}


def when(obs: Any) -> Moment | None:
    period = obs.effectivePeriod
    return first_moment(obs.effectiveDateTime, period.start if period else None, obs.effectiveInstant, obs.issued)


def read(col: Collector, resource: Resource) -> None:
    obs, ref, book = resource.model, resource.ref, col.book
    found = lookup(book, obs.code, book.observations)
    if found is None:
        if not _menopause(col, resource):
            col.ignored("Observation", ref, f"code not used by mbcnav ({describe(book, obs.code)})")
        return
    entry: ObservationCode = found[0]
    status = str(obs.status)
    if status not in USABLE_STATUS:
        col.ignored("Observation", ref, f"status {status!r}: only final, amended or corrected results are used")
        return
    absent = _results.absent_reason(book, obs)
    if absent and entry.reads not in ("variant",):
        col.unreadable("Observation", ref, absent)
        return
    moment = when(obs)
    label = f"{'LOINC' if entry.system == 'loinc' else 'SNOMED CT'} {entry.code} {entry.display}"
    try:
        _dispatch(col, ref, obs, entry, moment, label)
    except Unclear as err:
        col.unreadable("Observation", ref, f"{label}: {err}")


def _dispatch(col: Collector, ref: str, obs: Any, entry: ObservationCode, moment: Moment | None, label: str) -> None:
    book = col.book
    reads = entry.reads

    def offer(name: str, value: Any, how: str) -> None:
        col.offer(Candidate(name, value, moment, ref, f"{label}: {how}"))

    if reads in ("er", "pr"):
        offer(f"tumor.{reads}", *_results.receptor(book, obs, entry.kind, reads == "er"))
    elif reads == "her2_ihc":
        offer("her2.ihc", *_results.her2_ihc(book, obs))
    elif reads == "her2_overall":
        offer("her2.overall", *_results.her2_overall(book, obs))
    elif reads == "her2_ish":
        name = {"ratio": "her2.ish_ratio", "copies": "her2.ish_copies"}.get(entry.kind, "her2.ish")
        offer(name, *_results.her2_ish(book, obs, entry.kind))
    elif reads == "pdl1":
        if entry.kind == "tps":
            raise Unclear("a tumour proportion score (TPS), not the 22C3 combined positive score the profile needs")
        if entry.kind == "other_clone":
            raise Unclear("not the 22C3 assay; the profile's PD-L1 value is the 22C3 combined positive score")
        offer("tumor.pdl1_cps", *_results.pdl1_cps(obs))
    elif reads == "msi":
        offer("tumor.msi", *_results.msi(book, obs))
    elif reads == "tmb":
        offer("tumor.tmb", *_results.tmb(book, obs, entry.kind))
    elif reads == "ecog":
        offer("health.ecog", *_results.ecog(book, obs))
    elif reads == "karnofsky":
        value = obs.valueInteger if obs.valueInteger is not None else result_text(obs)
        col.ignored("Observation", ref, f"Karnofsky {value}: mbcnav uses ECOG and does not convert Karnofsky")
    elif reads in ("variant", "gene_test"):
        _genomics.read(col, ref, obs, entry, moment)
    elif reads == "stage_group":
        offer("stage_group", *_stage(book, obs))
    elif reads == "m_category":
        offer("m_category", *_m_category(book, obs))
    else:
        col.ignored("Observation", ref, f"{label}: a component code, not a result")


def _stage(book: Any, obs: Any) -> tuple[int, str]:
    texts = [concept_text(obs.valueCodeableConcept), result_text(obs)]
    for coded in (obs.valueCodeableConcept.coding if obs.valueCodeableConcept else None) or []:
        code = (coded.code or "").strip()
        match = re.fullmatch(r"[cpy]*(IV|III|II|I|0|[0-4])[A-C]?\d?", code, re.I)
        if match and book.system(coded.system) == "ajcc":
            return ROMAN[match.group(1).upper()], f"AJCC stage {code}"
        texts.append(coded.display or "")
    for text in texts:
        match = re.search(r"\bstage\s*(IV|III|II|I|0|[0-4])(?:[A-C]\d?)?\b", text or "", re.I)
        if match:
            return ROMAN[match.group(1).upper()], f"text {text!r}"
    raise Unclear(f"no stage group could be read ({describe(book, obs.valueCodeableConcept)})")


def _m_category(book: Any, obs: Any) -> tuple[str, str]:
    texts = [concept_text(obs.valueCodeableConcept)]
    texts += [c.display or c.code or "" for c in (obs.valueCodeableConcept.coding if obs.valueCodeableConcept else [])]
    for text in texts:
        match = re.search(r"\b[cpy]{0,2}M([01])[a-d]?(?:\(\w+\))?\b", text or "")
        if match:
            return f"M{match.group(1)}", f"{text!r}"
    raise Unclear(f"no M category could be read ({describe(book, obs.valueCodeableConcept)})")


MENOPAUSE_TEXT = {"pre": r"\bpre-?menopaus", "peri": r"\bperi-?menopaus", "post": r"\bpost-?menopaus"}


def _menopause(col: Collector, resource: Resource) -> bool:
    """Menopausal status from a coded value (SNOMED state) or the text of a menopause observation."""
    obs, book = resource.model, col.book
    concepts = [obs.valueCodeableConcept] if obs.valueCodeableConcept is not None else []
    meanings = {m for m, _ in answer_meanings(book, concepts) if m.startswith("menopause_")}
    code_text = concept_text(obs.code)
    value_text = result_text(obs)
    if not meanings and not re.search(r"menopaus", code_text, re.I):
        return False
    if str(obs.status) not in USABLE_STATUS:
        col.ignored("Observation", resource.ref, f"menopausal status with status {obs.status!r} is not used")
        return True
    statuses = {m.removeprefix("menopause_") for m in meanings}
    if not statuses:
        statuses = {s for s, pattern in MENOPAUSE_TEXT.items() if re.search(pattern, value_text, re.I)}
    if len(statuses) != 1:
        col.unreadable("Observation", resource.ref, f"menopausal status could not be read ({value_text or 'no value'})")
        return True
    status = statuses.pop()
    shown = describe(book, obs.valueCodeableConcept) if concepts else value_text
    col.offer(Candidate("menopausal_status", status, when(obs), resource.ref, f"{describe(book, obs.code)}: {shown}"))
    return True
