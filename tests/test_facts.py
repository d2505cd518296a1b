"""Derived facts: pure functions over a profile; unknown stays unknown (None)."""

from __future__ import annotations

from typing import Any

import pytest

from mbcnav.facts import derive, her2_category, hormone_receptor, subtype
from mbcnav.knowledge.loader import knowledge
from mbcnav.profile import parse_profile


def facts(data: dict[str, Any]) -> dict[str, Any]:
    return derive(parse_profile({"sex": "female", **data}), knowledge().drug_classes)


def test_every_declared_column_is_derived_and_nothing_else() -> None:
    assert set(facts({})) == set(knowledge().columns)


@pytest.mark.parametrize(
    ("ihc", "ish", "category"),
    [
        ("3+", "not_done", "positive"),
        ("2+", "amplified", "positive"),
        ("2+", "not_amplified", "low"),
        ("2+", "not_done", None),
        ("1+", "not_done", "low"),
        ("ultralow", "not_done", "ultralow"),
        ("0", "not_done", "zero"),
        ("unknown", "amplified", "positive"),
        ("unknown", "not_done", None),
    ],
)
def test_her2_category(ihc: str, ish: str, category: str | None) -> None:
    assert her2_category(ihc, ish) == category


def test_her2_negative_without_a_score_is_negative_with_unknown_category() -> None:
    f = facts({"tumor": {"her2": {"ish": "not_amplified"}}})
    assert f["her2_negative"] is True
    assert f["her2"] is None


@pytest.mark.parametrize(
    ("er", "pr", "hr"),
    [("positive", None, "positive"), ("low", "negative", "positive"), (None, "positive", "positive"),
     ("negative", "negative", "negative"), ("negative", None, None), (None, None, None)],
)
def test_hormone_receptor_status(er: str | None, pr: str | None, hr: str | None) -> None:
    assert hormone_receptor(er, pr) == hr


def test_subtype_needs_both_receptor_and_her2() -> None:
    assert subtype("positive", False) == "hr_positive_her2_negative"
    assert subtype("negative", True) == "hr_negative_her2_positive"
    assert subtype(None, True) is None
    assert subtype("negative", None) is None


@pytest.mark.parametrize(
    ("months", "sensitivity"),
    [(0, "resistant"), (12, "resistant"), (12.5, "sensitive"), (13, "sensitive"), (None, None)],
)
def test_endocrine_sensitivity_boundary_after_adjuvant_therapy(months: float | None, sensitivity: str | None) -> None:
    f = facts({"history": {"early": [{"drugs": ["anastrozole"], "months_since_end": months}]}})
    assert f["endocrine_sensitivity"] == sensitivity


def test_no_prior_endocrine_therapy_is_sensitive_and_progression_in_metastatic_setting_is_resistant() -> None:
    assert facts({})["endocrine_sensitivity"] == "sensitive"
    f = facts({"history": {"metastatic": [{"drugs": ["letrozole", "palbociclib"], "outcome": "progressed"}]}})
    assert f["endocrine_sensitivity"] == "resistant"
    assert f["progressed_on_et_met"] is True
    assert f["met_cdk46_inhibitor"] is True
    assert f["prior_aromatase_inhibitor"] is True
    assert f["line"] == 2


def test_stopping_for_side_effects_is_not_progression() -> None:
    f = facts({"history": {"metastatic": [{"drugs": ["letrozole"], "outcome": "intolerant"}]}})
    assert f["progressed_on_et_met"] is False
    assert f["endocrine_sensitivity"] == "sensitive"


@pytest.mark.parametrize(
    ("data", "post", "needs_ofs"),
    [
        ({"menopausal_status": "post"}, True, False),
        ({"menopausal_status": "pre"}, False, True),
        ({"menopausal_status": "peri"}, False, True),
        ({"menopausal_status": "pre", "ovarian_function_suppressed": True}, True, False),
        ({"age": 60}, True, False),
        ({"age": 59}, None, None),
        ({}, None, None),
    ],
)
def test_effective_menopausal_status(data: dict[str, Any], post: bool | None, needs_ofs: bool | None) -> None:
    f = facts(data)
    assert f["postmenopausal"] is post
    assert f["needs_ovarian_suppression"] is needs_ofs


def test_men_are_never_postmenopausal_and_never_need_ovarian_suppression() -> None:
    f = derive(parse_profile({"sex": "male"}), knowledge().drug_classes)
    assert (f["menopause"], f["postmenopausal"], f["needs_ovarian_suppression"]) == ("not_applicable", False, False)


def test_sites_unknown_versus_listed() -> None:
    unknown = facts({})
    assert unknown["site_bone"] is None and unknown["visceral"] is None and unknown["bone_only"] is None
    listed = facts({"disease": {"sites": ["bone"]}})
    assert listed["site_bone"] is True and listed["site_liver"] is False
    assert listed["bone_only"] is True and listed["visceral"] is False and listed["brain_mets"] is False
    assert facts({"disease": {"sites": ["pleura", "bone"]}})["visceral"] is True


def test_brain_metastases_detail_adds_the_brain_site() -> None:
    f = facts({"disease": {"sites": ["bone"], "brain_metastases": {"active": True, "count": 2}}})
    assert f["site_brain"] is True and f["brain_mets"] is True and f["brain_active"] is True
    assert f["brain_symptomatic"] is None


def test_phesgo_counts_as_pertuzumab_and_trastuzumab() -> None:
    f = facts({"history": {"metastatic": [{"drugs": ["docetaxel", "Phesgo"], "outcome": "progressed"}]}})
    assert f["met_trastuzumab"] and f["met_pertuzumab"] and f["met_taxane"]
    assert f["met_antiher2_lines"] == 1 and f["met_chemo_lines"] == 1


def test_early_relapse_windows() -> None:
    f = facts({"history": {"early": [{"drugs": ["trastuzumab", "paclitaxel"], "months_since_end": 6}]}})
    assert f["antiher2_relapse_6m"] is True and f["chemo_relapse_6m"] is True and f["dfi_months"] == 6
    f = facts({"history": {"early": [{"drugs": ["trastuzumab", "paclitaxel"], "months_since_end": 7}]}})
    assert f["antiher2_relapse_6m"] is False
    f = facts({"history": {"early": [{"drugs": ["paclitaxel"]}]}})
    assert f["chemo_relapse_6m"] is None and f["dfi_months"] is None
