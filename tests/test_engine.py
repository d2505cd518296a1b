"""The pipeline's precedence: safety net > exclusion > requirements; unknown -> tests to consider."""

from __future__ import annotations

from typing import Any

from mbcnav import recommend
from mbcnav.engine import evaluate

POST_HR_POS = {"sex": "female", "age": 64, "menopausal_status": "post",
               "tumor": {"er": "positive", "pr": "positive", "her2": {"ihc": "1+"}}, "disease": {"sites": ["bone"]}}
CONTRACT_KEYS = {"contract", "knowledge_version", "subtype", "her2_category", "decision_point", "options",
                 "local_and_supportive", "not_recommended", "tests_to_consider", "interactions",
                 "questions_for_doctor", "warnings"}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base}
    for key, value in changes.items():
        out[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def option(rec: dict[str, Any], rule_id: str) -> dict[str, Any] | None:
    return next((o for o in rec["options"] if o["id"] == rule_id), None)


def not_recommended(rec: dict[str, Any], rule_id: str) -> dict[str, Any] | None:
    return next((o for o in rec["not_recommended"] if o["id"] == rule_id), None)


def test_recommendation_has_every_contract_field() -> None:
    rec = recommend(POST_HR_POS)
    assert set(rec) >= CONTRACT_KEYS
    assert rec["contract"] == "1"
    assert rec["subtype"] == "hr_positive_her2_negative" and rec["her2_category"] == "low"
    assert rec["decision_point"] == "first-line systemic therapy"


def test_options_are_ranked_by_tier_then_rank() -> None:
    order = {"preferred": 0, "alternative": 1, "selected_cases": 2}
    tiers = [order[o["tier"]] for o in recommend(POST_HR_POS)["options"]]
    assert tiers == sorted(tiers)


def test_option_fires_with_why_from_its_requirements() -> None:
    entry = option(recommend(POST_HR_POS), "cdk46_inhibitor_plus_ai")
    assert entry is not None and entry["tier"] == "preferred"
    assert any("hormone receptors" in w for w in entry["why"])
    assert ["ovarian_suppression"] not in entry["drugs"]


def test_premenopausal_woman_gets_ovarian_suppression_in_the_same_option() -> None:
    rec = recommend(with_(POST_HR_POS, age=40, menopausal_status="pre"))
    entry = option(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and ["ovarian_suppression"] in entry["drugs"]
    assert any("ovaries" in w for w in entry["why"])


def test_unknown_menopause_under_60_adds_ovarian_suppression_with_a_caution_and_a_test() -> None:
    rec = recommend(with_(POST_HR_POS, age=52, menopausal_status="unknown"))
    entry = option(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and ["ovarian_suppression"] in entry["drugs"]
    assert any("past menopause" in c for c in entry["cautions"])
    assert "menopausal_status" in {t["id"] for t in rec["tests_to_consider"]}


def test_man_on_an_aromatase_inhibitor_gets_a_gnrh_agonist() -> None:
    rec = recommend({"sex": "male", "age": 66, "tumor": {"er": "positive", "her2": {"ihc": "0"}}})
    entry = option(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and ["goserelin", "leuprolide"] in entry["drugs"]


def test_exclusion_moves_the_option_to_not_recommended_with_its_reason() -> None:
    rec = recommend(with_(POST_HR_POS, disease={"sites": ["liver"], "visceral_crisis": True}))
    assert option(rec, "cdk46_inhibitor_plus_ai") is None
    entry = not_recommended(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and any("faster treatment" in w for w in entry["why"])


def test_failed_requirement_with_because_not_is_explained() -> None:
    rec = recommend(with_(POST_HR_POS, history={"early": [{"drugs": ["letrozole"], "months_since_end": 3}]}))
    entry = not_recommended(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and any("fulvestrant" in w.lower() for w in entry["why"])


def test_safety_net_beats_a_rule_and_says_why() -> None:
    rec = recommend(with_(POST_HR_POS, age=35, menopausal_status="pre", health={"conditions": ["pregnancy"]}))
    assert option(rec, "cdk46_inhibitor_plus_ai") is None
    entry = not_recommended(rec, "cdk46_inhibitor_plus_ai")
    assert entry is not None and any("unborn baby" in w for w in entry["why"])
    trace = next(r for r in evaluate(with_(POST_HR_POS, health={"conditions": ["pregnancy"]})).results
                 if r.rule.id == "cdk46_inhibitor_plus_ai")
    assert trace.status == "blocked" and "pregnancy_contraindicated_drugs" in trace.blocked_by


def test_unknown_receptors_offer_no_targeted_drug_and_ask_for_tests() -> None:
    rec = recommend({"sex": "female", "age": 70})
    assert rec["subtype"] == "unknown" and rec["her2_category"] == "unknown"
    tests = {t["id"] for t in rec["tests_to_consider"]}
    assert "receptors" in tests
    offered = {d for o in rec["options"] for c in o["drugs"] for d in c}
    assert not offered & {"trastuzumab", "pertuzumab", "palbociclib", "ribociclib", "abemaciclib"}


def test_trace_lists_every_rule_and_clause_values() -> None:
    ev = evaluate(POST_HR_POS)
    assert {r.rule.id for r in ev.results} == {r.rule.id for r in ev.results if r.rule}  # every rule present
    row = next(r for r in ev.results if r.rule.id == "cdk46_inhibitor_plus_ai").as_dict()
    assert row["status"] == "offered" and row["applies"] is True
    assert {c["id"]: c["value"] for c in row["clauses"]}["visceral_crisis"] is None


def test_the_same_profile_gives_the_same_answer() -> None:
    assert recommend(POST_HR_POS) == recommend(POST_HR_POS)


def test_disclaimer_is_always_present() -> None:
    assert "not medical advice" in recommend(POST_HR_POS)["disclaimer"]
