"""What the single-patient engine says, in the shape of one row of cohort results.

Everything here goes through `mbcnav.engine.evaluate`, patient by patient; it is the yardstick the
set-wise engines are held to, not a second implementation of the rules. Concordance is the one
output the engine does not produce itself, so it is computed here from the engine's own option
entries (after adjuncts and the safety net), by the definition in docs/cohort.md.
"""

from __future__ import annotations

from typing import Any

from mbcnav import engine
from mbcnav.cohort.plan import NOT_SYSTEMIC_CLASSES, NOT_SYSTEMIC_ITEMS, SUPPRESSION, TRIAL
from mbcnav.knowledge.loader import Knowledge
from mbcnav.vocabulary import normalise_drug

TIERS = ("preferred", "alternative", "selected_cases")


def strip_nulls(value: Any) -> Any:
    """A columnar row as the contract JSON a person would write: null fields left out."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def expected(record: dict[str, Any], kb: Knowledge) -> dict[str, Any]:
    """One input record (Profile + patient_id + given_drugs) -> the engine's answer as a results row."""
    given = record.get("given_drugs")
    profile = strip_nulls({k: v for k, v in record.items() if k not in ("patient_id", "given_drugs")})
    ev = engine.evaluate(profile, kb)
    rec = ev.recommendation
    blocked = {b for r in ev.results for b in r.blocked_by}
    urgent = {w.text: w.id for w in kb.warnings if w.urgent}
    fired = {urgent[t] for t in rec["warnings"] if t in urgent}
    return {
        "subtype": rec["subtype"],
        "her2_category": rec["her2_category"],
        "decision_point": rec["decision_point"],
        "line": int(ev.facts["line"]),
        **{f"options_{t}": [o["id"] for o in rec["options"] if o["tier"] == t] for t in TIERS},
        "local_and_supportive": [e["id"] for e in rec["local_and_supportive"]],
        "tests_to_consider": [t["id"] for t in rec["tests_to_consider"]],
        "safety_flags": [b.id for b in kb.safety if b.id in blocked] + [w.id for w in kb.warnings if w.id in fired],
        "given_drugs": None if given is None else list(dict.fromkeys(i for n in given for i in normalise_drug(n))),
        "concordance": concordance(ev, kb, given),
    }


def _expand(kb: Knowledge, component: list[str]) -> set[str]:
    out = set(component)
    if SUPPRESSION in component:
        out |= {d.id for d in kb.drugs.values() if SUPPRESSION in d.classes}
    return out


def _allowed(kb: Knowledge, rule: Any) -> set[str]:
    out: set[str] = set()
    for component in rule.drugs:
        out |= _expand(kb, list(component))
    classes = kb.drug_classes.classes_of({d for c in rule.drugs for d in c})
    for adjunct in kb.adjuncts:
        if classes & set(adjunct.for_classes):
            out |= _expand(kb, list(adjunct.add))
    return out


def _covers(kb: Knowledge, components: list[list[str]], allowed: set[str], given: set[str]) -> bool:
    return all(given & _expand(kb, c) for c in components) and given <= allowed


def concordance(ev: engine.Evaluation, kb: Knowledge, given_names: list[str] | None) -> str:
    """Was the systemic treatment given one of the options offered (or one a missing test could open)?"""
    if given_names is None:
        return "unknown"
    given: set[str] = set()
    for name in given_names:
        for drug in normalise_drug(name):  # a fixed-dose combination counts as its parts
            given.update(kb.drug_classes.counts_as.get(drug, (drug,)))
    not_systemic = {d.id for d in kb.drugs.values() if set(d.classes) & NOT_SYSTEMIC_CLASSES} | NOT_SYSTEMIC_ITEMS
    systemic = {d for d in given if d not in not_systemic or d in _universe(kb)}
    if not systemic or TRIAL in systemic:
        return "unknown"
    rules = {r.id: r for r in kb.rules}
    for entry in ev.recommendation["options"]:
        if _covers(kb, entry["drugs"], _allowed(kb, rules[entry["id"]]), systemic):
            return "concordant"
    # Unknown: it matches an offered option once components added only because a fact is unknown
    # are left out, or it matches (either way) an option a missing test could open.
    offered = [rules[entry["id"]] for entry in ev.recommendation["options"]]
    undetermined = [r.rule for r in ev.results if r.rule.kind == "option" and r.status == "unknown"]
    for rule in offered:
        if _covers(kb, _option(kb, rule, ev, certain=True), _allowed(kb, rule), systemic):
            return "unknown"
    for rule in undetermined:
        if any(_covers(kb, _option(kb, rule, ev, certain), _allowed(kb, rule), systemic) for certain in (False, True)):
            return "unknown"
    return "discordant"


def _option(kb: Knowledge, rule: Any, ev: engine.Evaluation, certain: bool) -> list[list[str]]:
    """The option's components as the engine builds them (adjuncts, then the safety net).

    `certain`: an adjunct is added only when its condition is known to be true, not when unknown.
    """
    entry = engine._entry(kb, rule, ev.truths)
    if certain:
        classes = kb.drug_classes.classes_of({d for component in entry["drugs"] for d in component})
        for adjunct in kb.adjuncts:
            if engine._truth(kb, ev.truths, adjunct.when) is not True or not classes & set(adjunct.for_classes):
                continue
            if not any(set(component) & set(adjunct.add) for component in entry["drugs"]):
                entry["drugs"].append(list(adjunct.add))
    else:
        engine._apply_adjuncts(kb, entry, ev.truths)
    engine._apply_safety(kb, entry, ev.truths)
    drugs: list[list[str]] = entry["drugs"]
    return drugs


def _universe(kb: Knowledge) -> set[str]:
    out: set[str] = set()
    for rule in kb.rules:
        if rule.kind == "option":
            out |= _allowed(kb, rule)
    return out
