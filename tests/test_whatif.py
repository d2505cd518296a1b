"""What-if: the options a pending test's result would add, apart from the recommendation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from mbcnav.cli import main
from mbcnav.engine import recommend
from mbcnav.knowledge import lint
from mbcnav.knowledge.loader import knowledge
from mbcnav.whatif import what_if, with_values
from tests.properties.strategies import profiles

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HER2_EQUIVOCAL: dict[str, Any] = {
    "sex": "female", "age": 60, "menopausal_status": "post",
    "tumor": {"er": "positive", "pr": "positive", "her2": {"ihc": "2+", "ish": "not_done"}},
    "disease": {"sites": ["bone"]}, "health": {"ecog": 1},
}


def test_her2_2plus_without_ish_shows_what_each_ish_result_would_open() -> None:
    rec = recommend(HER2_EQUIVOCAL)
    assert rec["options"] == []                 # nothing is offered while HER2 is unknown
    outcomes = {o["label"]: {x["id"] for x in o["options"]} for o in what_if(HER2_EQUIVOCAL, rec)["her2_ish"]}
    positive, low = outcomes["If ISH finds extra copies of HER2 (HER2-positive)"], outcomes[
        "If ISH finds no extra copies (HER2-low)"]
    amplified = recommend(with_values(HER2_EQUIVOCAL, {"tumor.her2.ish": "amplified"}))
    not_amplified = recommend(with_values(HER2_EQUIVOCAL, {"tumor.her2.ish": "not_amplified"}))
    assert positive == {o["id"] for o in amplified["options"]} and amplified["subtype"] == "hr_positive_her2_positive"
    assert low == {o["id"] for o in not_amplified["options"]}
    assert any(o.startswith("cdk46") for o in low) and not positive & low


def test_esr1_and_gene_tests_name_the_drugs_they_could_open() -> None:
    profile = json.loads((EXAMPLES / "er_low_her2_ultralow.json").read_text())
    found = what_if(profile)
    assert {x["id"] for o in found["esr1_ctdna"] for x in o["options"]} == {"oral_er_degrader_esr1_mutated"}
    pik3ca = {o["label"]: {x["id"] for x in o["options"]} for o in found["pik3ca_akt1_pten"]}
    assert "alpelisib_plus_fulvestrant" in pik3ca["If a PIK3CA change is found"]
    assert "alpelisib_plus_fulvestrant" not in pik3ca["If an AKT1 change is found"]
    assert "receptors" not in found              # a retest has no single result to spell out


def test_with_values_builds_missing_parents_and_leaves_the_input_alone() -> None:
    profile = {"sex": "female"}
    assert with_values(profile, {"tumor.her2.ish": "amplified"}) == {"sex": "female",
                                                                     "tumor": {"her2": {"ish": "amplified"}}}
    assert profile == {"sex": "female"}


def test_every_outcome_names_real_fields_and_reads_plainly() -> None:
    kb = knowledge()
    assert lint.outcome_problems(kb) == []
    assert sum(len(t.outcomes) for t in kb.tests.values()) >= 12


def test_text_output_shows_what_results_could_add(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(HER2_EQUIVOCAL))
    result = CliRunner().invoke(main, ["recommend", "--format", "text", str(path)])
    assert result.exit_code == 0
    tests = result.output.split("TESTS THAT COULD OPEN MORE OPTIONS", 1)[1]
    assert "If ISH finds extra copies of HER2 (HER2-positive), these could be added:" in tests
    assert "OPTIONS THAT FIT" not in tests


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_what_if_never_changes_or_joins_the_recommendation(profile: dict[str, Any]) -> None:
    """Safety: a possible result is never presented as an option, and asking changes nothing."""
    before = recommend(profile)
    snapshot = copy.deepcopy(profile)
    found = what_if(profile, before)
    assert profile == snapshot and recommend(profile) == before
    offered = {o["id"] for o in before["options"]}
    suggested = {t["id"] for t in before["tests_to_consider"]}
    for test_id, outcomes in found.items():
        assert test_id in suggested
        for outcome in outcomes:
            assert outcome["options"] and not {o["id"] for o in outcome["options"]} & offered
