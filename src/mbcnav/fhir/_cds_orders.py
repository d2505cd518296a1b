"""order-select / order-sign: does a draft breast cancer drug order fit the patient's profile?

A drug fits when some offered option contains it. It does not fit when no option offers it; the
card then gives the engine's own reasons (safety blocks, exclusions, unmet or unknown biomarker
requirements) and suggests the preferred options instead. A drug that fits only together with
ovarian suppression, for a patient without it on record or on order, gets a warning with a
suggestion to add it. Orders for medicines that are not cancer drugs get no card.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mbcnav.engine import Evaluation, _interactions, _medication_ids
from mbcnav.fhir._cds_cards import OVERRIDE_REASONS, short_citation, source_for
from mbcnav.fhir._cds_models import Action, Card, Link, Source, Suggestion
from mbcnav.fhir._codes import codes
from mbcnav.fhir._collect import Collector
from mbcnav.fhir._medications import match_drug
from mbcnav.knowledge.loader import knowledge

GNRH = ("goserelin", "leuprolide", "triptorelin")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _drafts(context: dict[str, Any], hook: str) -> list[dict[str, Any]]:
    bundle = context.get("draftOrders") or {}
    entries = bundle.get("entry") or [] if isinstance(bundle, dict) else []
    orders: list[dict[str, Any]] = [e["resource"] for e in entries if isinstance(e, dict)
                                    and isinstance(e.get("resource"), dict)
                                    and e["resource"].get("resourceType") == "MedicationRequest"]
    if hook == "order-select" and context.get("selections"):
        chosen = set(context["selections"])
        orders = [o for o in orders if f"MedicationRequest/{o.get('id')}" in chosen]
    return orders


def _drugs_of(order: dict[str, Any]) -> tuple[str, ...]:
    from fhir.resources.R4B.codeableconcept import CodeableConcept

    concept = order.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return ()
    try:
        parsed = CodeableConcept.model_validate(concept)
    except ValueError:
        return ()
    drugs, _ = match_drug(Collector(codes()), parsed)
    return drugs


def _name(drug: str) -> str:
    entry = knowledge().drugs.get(drug)
    return entry.name if entry else drug.replace("_", " ")


def _entries_with(rec: dict[str, Any], drug: str) -> list[dict[str, Any]]:
    return [e for e in rec["options"] + rec["local_and_supportive"] if any(drug in c for c in e["drugs"])]


def reasons_not_offered(ev: Evaluation, drug: str) -> list[str]:
    """The engine's own reasons, from the trace, why no option offers this drug."""
    kb = knowledge()
    rec = ev.recommendation
    out = [f"{e['title']}: {' '.join(e['why'])}" for e in rec["not_recommended"]
           if any(drug in c for c in e["drugs"])]
    for result in ev.results:
        rule = result.rule
        if rule.kind == "not_recommended" or not any(drug in c for c in rule.drugs):
            continue
        if result.applies is not True:
            # Not this decision point; still say which requirements would fail or are unknown.
            gaps = []
            for clause in rule.requires:
                value = ev.truths[kb.index[clause.when]]
                if value is False:
                    gaps.append(clause.because_not or f"requires {clause.when}")
                elif value is None:
                    gaps.append(f"not known yet ({', '.join(sorted(kb.condition(clause.when).columns))})")
            out.append(f"{rule.title}: not for this decision point ({rule.applies_when})"
                       + (f"; also {'; '.join(gaps)}" if gaps else ""))
            continue
        if result.status == "unknown":
            unknown = sorted({col for c in result.clauses for col in c.unknown_columns})
            tests = sorted({kb.tests[kb.resolvers[col]].test for col in unknown if col in kb.resolvers
                            and kb.resolvers[col] in kb.tests})
            out.append(f"{rule.title}: not known yet ({', '.join(unknown)})"
                       + (f"; test: {'; '.join(tests)}" if tests else ""))
        elif result.status == "not_met":
            failed = [c for c in rule.requires if any(r.id == c.id and r.value is False for r in result.clauses)]
            out.append(f"{rule.title}: " + "; ".join(c.because_not or f"requires {c.when}" for c in failed))
    return list(dict.fromkeys(out))[:6] or [
        f"No mbcnav option for this decision point ({rec['decision_point']}) contains {_name(drug)}."]


def _rx_coding(drug: str) -> dict[str, Any]:
    """An ingredient-level RxNorm coding when the code list has one, else text only."""
    book = codes()
    name = _name(drug)
    match = next((c for c in book.rxnorm.values() if c.drug == drug and c.display.lower() == name.lower()), None)
    concept: dict[str, Any] = {"text": name}
    if match is not None:
        concept["coding"] = [{"system": RXNORM, "code": match.code, "display": match.display}]
    return concept


def _draft(drug: str, patient_id: str) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"}, "medicationCodeableConcept": _rx_coding(drug)}


def _first_drugs(entry: dict[str, Any]) -> list[str]:
    kb = knowledge()
    picks = []
    for component in entry["drugs"]:
        if component == ["ovarian_suppression"]:
            picks.append("goserelin")
        else:
            choice = next((d for d in component if d in kb.drugs), None)
            if choice:
                picks.append(choice)
    return picks


def _alternatives(rec: dict[str, Any], order: dict[str, Any], patient_id: str) -> list[Suggestion]:
    preferred = [o for o in rec["options"] if o["tier"] == "preferred"] or rec["options"][:2]
    out = []
    for i, entry in enumerate(preferred[:3]):
        picks = _first_drugs(entry)
        actions = [Action(type="delete", description=f"Remove this draft order ({order.get('id')})",
                          resourceId=f"MedicationRequest/{order.get('id')}")] if order.get("id") else []
        actions += [Action(type="create", description=f"Draft an order for {_name(d)}", resource=_draft(d, patient_id))
                    for d in picks]
        out.append(Suggestion(label=f"Instead: {entry['title']}", isRecommended=i == 0, actions=actions))
    return out


def check(ev: Evaluation, context: dict[str, Any], hook: str, link: Link) -> list[Card]:
    rec = ev.recommendation
    profile = ev.profile
    patient_id = str(context.get("patientId") or "")
    drafts = _drafts(context, hook)
    all_ordered = {d for o in _drafts(context, "order-sign") for d in _drugs_of(o)}
    current = set(profile.current_medications) | (set(profile.history.metastatic[-1].drugs)
                                                   if profile.history.metastatic else set())
    suppressed = bool(profile.ovarian_function_suppressed) or bool((all_ordered | current) & set(GNRH))
    cards: list[Card] = []
    for order in drafts:
        for drug in _drugs_of(order):
            entries = _entries_with(rec, drug)
            if not entries:
                reasons = reasons_not_offered(ev, drug)
                suggestions = _alternatives(rec, order, patient_id)
                cards.append(Card(
                    summary=f"{_name(drug)} does not fit this patient's profile in mbcnav",
                    indicator="warning", detail="**Why not:**\n" + "\n".join(f"- {r}" for r in reasons),
                    source=source_for(rec), suggestions=suggestions or None,
                    selectionBehavior="at-most-one" if suggestions else None,
                    overrideReasons=OVERRIDE_REASONS, links=[link]))
                continue
            if not suppressed and all(_needs_suppression(e) for e in entries):
                cards.append(Card(
                    summary=f"{_name(drug)} needs ovarian suppression for this patient; none is on record or ordered",
                    indicator="warning",
                    detail="Every option with this drug gives it together with ovarian suppression (goserelin, "
                           "leuprolide or triptorelin, or oophorectomy), because the ovaries may still make estrogen."
                           "\n\n" + "\n".join(f"- {e['title']}: {' '.join(e['why'][-1:])}" for e in entries[:3]),
                    source=source_for(rec, entries[0]),
                    suggestions=[Suggestion(label="Add goserelin", isRecommended=True, actions=[
                        Action(type="create", description="Draft an order for goserelin",
                               resource=_draft("goserelin", patient_id))])],
                    selectionBehavior="at-most-one", overrideReasons=OVERRIDE_REASONS, links=[link]))
            cards += _interaction_cards(rec, drug, current, link)
    return cards


def _needs_suppression(entry: dict[str, Any]) -> bool:
    return any(c == ["ovarian_suppression"] or set(c) <= {"ovarian_suppression", *GNRH} for c in entry["drugs"])


def _interaction_cards(rec: dict[str, Any], drug: str, current: Iterable[str], link: Link) -> list[Card]:
    kb = knowledge()
    meds, _ = _medication_ids(kb, list(current))
    out = []
    for inter in _interactions(kb, {drug}, meds):
        out.append(Card(summary=f"Interaction: {' + '.join(inter['drugs'])} ({inter['severity']})",
                        indicator="warning" if inter["severity"] != "minor" else "info",
                        detail=f"{inter['professional']}\n\n*For the patient:* {inter['advice']}",
                        source=Source(label=short_citation(inter["sources"][0]) if inter["sources"] else
                                      f"mbcnav knowledge {rec['knowledge_version']}"),
                        overrideReasons=OVERRIDE_REASONS, links=[link]))
    return out
