"""The pipeline: validate -> derive facts -> evaluate rules -> rank -> explain -> Recommendation.

Precedence (docs/engine.md): a safety block beats every rule; an exclusion that holds beats a
rule whose requirements hold; a requirement that is unknown never counts as met, it becomes a
test to consider. Everything said to the reader comes from the knowledge files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mbcnav import facts as facts_mod
from mbcnav.knowledge import schema as s
from mbcnav.knowledge.loader import Knowledge, knowledge
from mbcnav.profile import Profile, parse_profile
from mbcnav.vocabulary import key

CONTRACT_VERSION = "1"
TIER_ORDER = {"preferred": 0, "alternative": 1, "selected_cases": 2}
Truth = bool | None


@dataclass
class ClauseResult:
    id: str
    kind: str  # requires | excludes
    when: str
    value: Truth
    unknown_columns: list[str]


@dataclass
class RuleResult:
    """One rule's evaluation: the trace row the `explain` command prints."""

    rule: s.Rule
    applies: Truth
    clauses: list[ClauseResult] = field(default_factory=list)
    status: str = "not_applicable"  # offered | excluded | not_met | unknown | not_applicable | blocked
    blocked_by: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "kind": self.rule.kind,
            "applies_when": self.rule.applies_when,
            "applies": self.applies,
            "status": self.status,
            "clauses": [
                {"id": c.id, "kind": c.kind, "when": c.when, "value": c.value,
                 **({"unknown": c.unknown_columns} if c.unknown_columns else {})}
                for c in self.clauses
            ],
            **({"blocked_by": self.blocked_by} if self.blocked_by else {}),
        }


@dataclass
class Evaluation:
    profile: Profile
    facts: dict[str, Any]
    truths: tuple[Truth, ...]
    results: list[RuleResult]
    recommendation: dict[str, Any]


def _truth(kb: Knowledge, truths: Sequence[Truth], text: str) -> Truth:
    return truths[kb.index[text]]


def _medication_ids(kb: Knowledge, names: Sequence[str]) -> tuple[set[str], list[str]]:
    lookup = kb.medication_names
    found: set[str] = set()
    unmatched: list[str] = []
    for name in names:
        match = lookup.get(key(name))
        if match is None:
            unmatched.append(name)
        else:
            found.add(match)
    return found, unmatched


def qt_medications(kb: Knowledge) -> frozenset[str]:
    group = kb.medication_groups.get("qt_prolonging")
    return frozenset(group.members) if group else frozenset()


def evaluate(data: Mapping[str, Any] | Profile, kb: Knowledge | None = None) -> Evaluation:
    kb = kb or knowledge()
    profile = data if isinstance(data, Profile) else parse_profile(dict(data))
    meds, unmatched = _medication_ids(kb, profile.current_medications)
    facts = facts_mod.derive(profile, kb.drug_classes, frozenset(meds), qt_medications(kb))
    truths = kb.evaluate(facts)
    results = [_rule_result(kb, rule, facts, truths) for rule in kb.rules]
    rec = _assemble(kb, profile, facts, truths, results, meds, unmatched)
    return Evaluation(profile, facts, truths, results, rec)


def _rule_result(kb: Knowledge, rule: s.Rule, facts: Mapping[str, Any], truths: Sequence[Truth]) -> RuleResult:
    result = RuleResult(rule, _truth(kb, truths, rule.applies_when))
    if result.applies is not True:
        return result
    for kind, clauses in (("requires", rule.requires), ("excludes", rule.excludes)):
        for clause in clauses:
            value = _truth(kb, truths, clause.when)
            unknown = (
                [c for c in sorted(kb.condition(clause.when).columns) if facts.get(c) is None] if value is None else []
            )
            result.clauses.append(ClauseResult(clause.id, kind, clause.when, value, unknown))
    requires = [c.value for c in result.clauses if c.kind == "requires"]
    excluded = any(c.value is True for c in result.clauses if c.kind == "excludes")
    if any(v is False for v in requires):
        result.status = "not_met"
    elif excluded:
        result.status = "excluded"
    elif any(v is None for v in requires):
        result.status = "unknown"
    else:
        result.status = "offered"
    return result


def _entry(kb: Knowledge, rule: s.Rule, truths: Sequence[Truth]) -> dict[str, Any]:
    why = [c.because for c in rule.requires if c.because]
    cautions = [c.text for c in rule.cautions if _truth(kb, truths, c.when) is True]
    out: dict[str, Any] = {
        "id": rule.id,
        "title": rule.title,
        "plain_title": rule.plain_title,
        "category": rule.category,
        "tier": rule.tier,
        "drugs": [list(component) for component in rule.drugs],
        "why": why,
        "cautions": cautions,
        "evidence": [
            {"source": kb.sources[e.source].citation, "source_id": e.source, "level": e.level,
             "summary": e.summary, **({"url": kb.sources[e.source].url} if kb.sources[e.source].url else {})}
            for e in rule.evidence
        ],
    }
    if rule.urgent:
        out["urgent"] = True
    return out


def _apply_adjuncts(kb: Knowledge, entry: dict[str, Any], truths: Sequence[Truth]) -> None:
    drugs = {d for component in entry["drugs"] for d in component}
    classes = kb.drug_classes.classes_of(drugs)
    for adjunct in kb.adjuncts:
        value = _truth(kb, truths, adjunct.when)
        if value is False or not classes & set(adjunct.for_classes):
            continue
        if not any(set(component) & set(adjunct.add) for component in entry["drugs"]):
            entry["drugs"].append(list(adjunct.add))
        entry["why"].append(adjunct.because)
        if value is None and adjunct.caution:
            entry["cautions"].append(adjunct.caution)


def _apply_safety(
    kb: Knowledge, entry: dict[str, Any], truths: Sequence[Truth]
) -> tuple[list[str], list[str]]:
    """Remove blocked drugs from an entry; return (blocking ids, reasons) for anything removed."""
    blocked_ids: list[str] = []
    reasons: list[str] = []
    for block in kb.safety:
        if _truth(kb, truths, block.when) is not True:
            continue
        removed = False
        new_components: list[list[str]] = []
        for component in entry["drugs"]:
            keep = [d for d in component if not _blocked(kb, block, d)]
            removed = removed or len(keep) != len(component)
            new_components.append(keep)
        if removed:
            entry["drugs"] = new_components
            blocked_ids.append(block.id)
            reasons.append(block.because)
    return blocked_ids, reasons


def _blocked(kb: Knowledge, block: s.SafetyBlock, drug: str) -> bool:
    if drug in block.except_drugs:
        return False
    if drug in block.block_drugs:
        return True
    info = kb.drugs.get(drug)
    if info is None:
        return False
    return bool(set(info.classes) & set(block.block_classes)) or info.pregnancy in block.block_pregnancy


def _decision_point(kb: Knowledge, truths: Sequence[Truth]) -> str:
    for point in kb.decision_points:
        if _truth(kb, truths, point["when"]) is True:
            return point["text"]
    return "systemic therapy for metastatic breast cancer"


def _assemble(
    kb: Knowledge,
    profile: Profile,
    facts: Mapping[str, Any],
    truths: Sequence[Truth],
    results: list[RuleResult],
    meds: set[str],
    unmatched_meds: list[str],
) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    local: list[dict[str, Any]] = []
    not_recommended: list[dict[str, Any]] = []
    test_reasons: dict[str, list[str]] = {}
    resolvers = kb.resolvers

    for result in results:
        rule = result.rule
        if result.applies is not True:
            continue
        if rule.kind == "not_recommended":
            if result.status == "offered":
                not_recommended.append(_not_recommended(rule, [c.because for c in rule.requires if c.because]))
            continue
        if result.status == "offered":
            entry = _entry(kb, rule, truths)
            _apply_adjuncts(kb, entry, truths)
            blocked, reasons = _apply_safety(kb, entry, truths)
            if any(not component for component in entry["drugs"]) or (blocked and not entry["drugs"]):
                result.status, result.blocked_by = "blocked", blocked
                not_recommended.append(_not_recommended(rule, reasons))
                continue
            result.blocked_by = blocked
            (options if rule.kind == "option" else local).append(entry)
        elif result.status == "excluded" and all(c.value is True for c in result.clauses if c.kind == "requires"):
            reasons = [c.because or "" for c in rule.excludes if _truth(kb, truths, c.when) is True]
            not_recommended.append(_not_recommended(rule, [r for r in reasons if r]))
        elif result.status == "not_met":
            reasons = [c.because_not for c in rule.requires
                       if c.because_not and _truth(kb, truths, c.when) is False]
            if reasons:
                not_recommended.append(_not_recommended(rule, reasons))
        if result.status == "unknown":
            for clause in result.clauses:
                for column in clause.unknown_columns:
                    if column in resolvers:
                        test_reasons.setdefault(resolvers[column], []).append(rule.id)

    ranks = {r.id: r.rank for r in kb.rules}

    def key_order(e: dict[str, Any]) -> tuple[int, int, str]:
        return TIER_ORDER[e["tier"]], ranks[e["id"]], e["id"]

    options.sort(key=key_order)
    local.sort(key=lambda e: (not e.get("urgent", False), *key_order(e)))
    offered = {d for e in options + local for component in e["drugs"] for d in component}
    not_recommended = _dedupe_not_recommended(not_recommended)

    tests = _tests(kb, truths, test_reasons, offered)
    return {
        "contract": CONTRACT_VERSION,
        "knowledge_version": kb.version,
        "subtype": facts["subtype"] or "unknown",
        "her2_category": facts["her2"] or "unknown",
        "decision_point": _decision_point(kb, truths),
        "options": options,
        "local_and_supportive": local,
        "not_recommended": not_recommended,
        "tests_to_consider": tests,
        "interactions": _interactions(kb, offered | _current_cancer_drugs(profile) | (meds & set(kb.drugs)), meds),
        "questions_for_doctor": _questions(kb, truths, options + local, bool(tests)),
        "warnings": _warnings(kb, truths, unmatched_meds),
        "disclaimer": DISCLAIMER,
    }


DISCLAIMER = (
    "This is information to discuss with your care team, not medical advice. It cannot replace "
    "your doctor's judgment. If you think you have an emergency, call your doctor or 911."
)


def _not_recommended(rule: s.Rule, why: list[str]) -> dict[str, Any]:
    return {"id": rule.id, "title": rule.title, "plain_title": rule.plain_title,
            "drugs": [list(c) for c in rule.drugs], "why": why}


def _dedupe_not_recommended(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for entry in entries:
        if entry["id"] in seen or not entry["why"]:
            continue
        seen.add(entry["id"])
        out.append(entry)
    return out


def _current_cancer_drugs(profile: Profile) -> set[str]:
    metastatic = profile.history.metastatic
    return set(metastatic[-1].drugs) if metastatic and metastatic[-1].outcome == "ongoing" else set()


def _tests(
    kb: Knowledge, truths: Sequence[Truth], opened_by: dict[str, list[str]], offered: set[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    titles = {r.id: r.plain_title for r in kb.rules}
    for test in kb.tests.values():
        explicit = test.when is not None and _truth(kb, truths, test.when) is True
        opens = sorted(set(opened_by.get(test.id, [])))
        if not explicit and not opens:
            continue
        entry: dict[str, Any] = {"id": test.id, "test": test.test, "why": test.why}
        if opens:
            entry["could_open"] = [titles[r] for r in opens]
        out.append(entry)
    return out


def _interactions(kb: Knowledge, drugs: set[str], meds: set[str]) -> list[dict[str, Any]]:
    """Interactions between cancer drugs (offered, ongoing or listed) and the listed medicines."""
    out: list[dict[str, Any]] = []
    if not meds:
        return out
    for inter, inter_drugs, inter_meds in kb.interaction_sets:
        side_a = sorted(drugs & inter_drugs)
        side_b = sorted(meds & inter_meds)
        for a in side_a:
            for b in side_b:
                if a == b:
                    continue
                out.append({"id": inter.id, "drugs": [a, b], "severity": inter.severity,
                            "advice": inter.advice, "professional": inter.professional,
                            "sources": [kb.sources[x].citation for x in inter.sources]})
    severity = {"major": 0, "moderate": 1, "minor": 2}
    out.sort(key=lambda e: (severity[e["severity"]], e["drugs"]))
    return out


def _questions(
    kb: Knowledge, truths: Sequence[Truth], entries: list[dict[str, Any]], has_tests: bool
) -> list[str]:
    categories = {e["category"] for e in entries}
    if any(e["drugs"] for e in entries):
        categories.add("side_effects")
    if has_tests:
        categories.add("tests")
    personal = [q.text for q in kb.questions if q.when and _truth(kb, truths, q.when) is True]
    general = [q.text for q in kb.questions if not q.when and (q.category in categories or q.category == "general")]
    out: list[str] = []
    for text in personal + general:
        if text not in out:
            out.append(text)
    return out


def _warnings(kb: Knowledge, truths: Sequence[Truth], unmatched_meds: list[str]) -> list[str]:
    fired = [w for w in kb.warnings if _truth(kb, truths, w.when) is True]
    fired.sort(key=lambda w: not w.urgent)
    out = [w.text for w in fired]
    if unmatched_meds:
        out.append(
            "We could not match these medicines, so we did not check them for interactions: "
            + ", ".join(unmatched_meds) + ". Ask your pharmacist about them."
        )
    return out


def recommend(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Profile (contract JSON as a dict) -> Recommendation (contract JSON as a dict)."""
    return evaluate(profile).recommendation
