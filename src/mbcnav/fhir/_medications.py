"""MedicationRequest / MedicationAdministration / MedicationStatement -> medication courses.

A medicine is matched by its RxNorm code (codes/rxnorm.yaml), else by its text through the drug
catalogue's names (brand or generic, e.g. 'PACLitaxel 100 MG Injection' -> paclitaxel). Records
that say the medicine was not given (cancelled, not-taken, entered-in-error, a plan or a
proposal) are listed as ignored, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mbcnav.fhir._bundle import Parsed, Resource
from mbcnav.fhir._collect import Collector
from mbcnav.fhir._values import Moment, answer_meanings, codings, concept_text, describe, first_moment
from mbcnav.knowledge.loader import knowledge
from mbcnav.vocabulary import UnknownDrugError, key, normalise_drug

NOT_GIVEN = {
    "MedicationStatement": {"not-taken", "entered-in-error", "intended"},
    "MedicationRequest": {"cancelled", "entered-in-error", "draft"},
    "MedicationAdministration": {"not-done", "entered-in-error"},
}
ACTIVE = {"MedicationStatement": {"active"}, "MedicationRequest": {"active"},
          "MedicationAdministration": {"in-progress"}}
PLANNED_INTENTS = {"proposal", "plan", "option", "directive"}


@dataclass(frozen=True)
class Course:
    """One recorded use of one medicine."""

    drugs: tuple[str, ...]       # catalogue ids; empty for a non-cancer medicine
    name: str                    # as written
    medication: str | None       # non-cancer medicine id (knowledge medications) when matched
    start: Moment | None
    end: Moment | None
    active: bool
    stop: str | None             # progressed | intolerant | stopped (from status / statusReason)
    ref: str
    how: str
    kind: str                    # resource type


def match_drug(col: Collector, concept: Any) -> tuple[tuple[str, ...], str]:
    """(catalogue ids, how) for a medication concept; empty ids when it is not a catalogue drug."""
    for coded in codings(col.book, concept):
        if coded.system == "rxnorm" and coded.code in col.book.rxnorm:
            return (col.book.rxnorm[coded.code].drug,), coded.label()
    for text in _texts(concept):
        for candidate in _prefixes(text):
            try:
                return normalise_drug(candidate), f"text {text!r}"
            except UnknownDrugError:
                continue
    return (), describe(col.book, concept)


def match_medication(concept: Any) -> str | None:
    """A non-cancer medicine id from the knowledge base's medication names (for interactions)."""
    lookup = knowledge().medication_names
    for text in _texts(concept):
        for candidate in _prefixes(text):
            found = lookup.get(key(candidate))
            if found is not None:
                return found
    return None


def _texts(concept: Any) -> list[str]:
    if concept is None:
        return []
    texts = [str(concept.text)] if concept.text else []
    texts += [str(c.display) for c in concept.coding or [] if c.display]
    brands = [b for t in texts for b in re.findall(r"\[([^\]]+)\]", t)]
    return brands + texts


def _prefixes(text: str) -> list[str]:
    """'Palbociclib 125 MG Oral Capsule' -> the whole text, then shorter word prefixes."""
    words = [w for w in re.split(r"\s+", re.sub(r"\[[^\]]*\]", " ", text).strip()) if w]
    return [" ".join(words[:n]) for n in range(len(words), 0, -1)]


def _concept(parsed: Parsed, resource: Resource) -> Any:
    model = resource.model
    if model.medicationCodeableConcept is not None:
        return model.medicationCodeableConcept
    ref = model.medicationReference.reference if model.medicationReference is not None else None
    if ref and ref.startswith("#"):
        for contained in model.contained or []:
            if f"#{contained.id}" == ref and contained.get_resource_type() == "Medication":
                return contained.code
    target = parsed.by_key.get(ref or "")
    if target is not None and target.type == "Medication":
        return target.model.code
    display = model.medicationReference.display if model.medicationReference is not None else None
    if display:
        from fhir.resources.R4B.codeableconcept import CodeableConcept

        return CodeableConcept(text=display)
    return None


def _dates(resource: Resource) -> tuple[Moment | None, Moment | None]:
    model = resource.model
    if resource.type == "MedicationRequest":
        bounds = [d.timing.repeat.boundsPeriod for d in model.dosageInstruction or []
                  if d.timing and d.timing.repeat and d.timing.repeat.boundsPeriod]
        start = first_moment(*(b.start for b in bounds), model.authoredOn)
        end = first_moment(*(b.end for b in bounds))
        return start, end
    period = model.effectivePeriod
    start = first_moment(model.effectiveDateTime, period.start if period else None)
    end = first_moment(period.end if period else None)
    return start, end


def _stop(col: Collector, resource: Resource) -> str | None:
    model = resource.model
    reasons = model.statusReason if isinstance(model.statusReason, list) else (
        [model.statusReason] if model.statusReason is not None else [])
    meanings = {m for m, _ in answer_meanings(col.book, reasons)}
    if "stop_progressed" in meanings:
        return "progressed"
    if "stop_intolerant" in meanings:
        return "intolerant"
    text = " ".join(concept_text(r) for r in reasons)
    if re.search(r"progress", text, re.I):
        return "progressed"
    if re.search(r"toxicit|intoleran|side effect|adverse", text, re.I):
        return "intolerant"
    return "stopped" if str(model.status) == "stopped" or meanings else None


def read(col: Collector, parsed: Parsed, resource: Resource) -> Course | None:
    model, ref, kind = resource.model, resource.ref, resource.type
    status = str(model.status)
    if status in NOT_GIVEN[kind]:
        col.ignored("Medication", ref, f"status {status!r}: not given")
        return None
    intent = str(getattr(model, "intent", "") or "")
    if kind == "MedicationRequest" and intent in PLANNED_INTENTS:
        col.ignored("Medication", ref, f"intent {intent!r}: planned, not given")
        return None
    concept = _concept(parsed, resource)
    if concept is None:
        col.unreadable("Medication", ref, "no medication code, text or readable reference")
        return None
    drugs, how = match_drug(col, concept)
    start, end = _dates(resource)
    name = concept_text(concept) or describe(col.book, concept)
    medication = None if drugs else match_medication(concept)
    return Course(drugs, name, medication, start, end, status in ACTIVE[kind], _stop(col, resource), ref, how, kind)
