"""Profile validation: contract fields only, field-named messages, brand names normalised."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbcnav.profile import ProfileError, parse_profile, profile_json
from mbcnav.vocabulary import UnknownDrugError, normalise_drug


def problems(data: Any) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        parse_profile(data)
    return caught.value.problems


def test_minimal_profile_is_valid_and_unknown_is_the_default() -> None:
    profile = parse_profile({"sex": "female"})
    assert profile.tumor.er == "unknown"
    assert profile.tumor.her2.ihc == "unknown"
    assert profile.history.metastatic == []


def test_sex_is_required() -> None:
    assert problems({}) == ["sex: required"]


def test_enumeration_error_names_field_and_allowed_values() -> None:
    (message,) = problems({"sex": "female", "tumor": {"er": "pos"}})
    assert message.startswith("tumor.er: 'pos' is not allowed")
    assert "'positive', 'low', 'negative' or 'unknown'" in message


def test_unknown_field_is_rejected_by_name() -> None:
    assert problems({"sex": "female", "tumour": {}}) == [
        "tumour: unknown field; see the contract (CONTRACT.md) for the allowed fields"
    ]


def test_her2_3_plus_with_ish_not_amplified_is_impossible() -> None:
    (message,) = problems({"sex": "female", "tumor": {"her2": {"ihc": "3+", "ish": "not_amplified"}}})
    assert message.startswith("tumor.her2: IHC 3+ with ISH not amplified")


def test_menopausal_status_for_a_man_is_rejected() -> None:
    (message,) = problems({"sex": "male", "menopausal_status": "post"})
    assert message.startswith("menopausal_status: applies to women only")


def test_pregnancy_for_a_man_is_rejected() -> None:
    assert problems({"sex": "male", "health": {"conditions": ["pregnancy"]}}) == [
        "health.conditions: 'pregnancy' cannot be recorded for a man"
    ]


def test_negative_months_are_rejected() -> None:
    (message,) = problems({"sex": "female", "history": {"early": [{"drugs": ["tamoxifen"], "months_since_end": -1}]}})
    assert message.startswith("history.early[0].months_since_end:")
    assert "greater than or equal to 0" in message


def test_only_the_newest_metastatic_treatment_can_be_ongoing() -> None:
    (message,) = problems({
        "sex": "female",
        "history": {"metastatic": [{"drugs": ["letrozole"], "outcome": "ongoing"}, {"drugs": ["fulvestrant"]}]},
    })
    assert message.startswith("history.metastatic: only the last")


@pytest.mark.parametrize(
    ("typed", "generic"),
    [
        ("Kisqali", ("ribociclib",)),
        ("ENHERTU", ("trastuzumab_deruxtecan",)),
        ("fam-trastuzumab deruxtecan-nxki", ("trastuzumab_deruxtecan",)),
        ("Phesgo", ("pertuzumab_trastuzumab_hyaluronidase",)),
        ("Lupron Depot", ("leuprolide",)),
        ("nab-paclitaxel", ("nab_paclitaxel",)),
        ("Keytruda Qlex", ("pembrolizumab",)),
        ("radiation", ("radiation",)),
    ],
)
def test_brand_and_spelling_variants_normalise_to_generic_ids(typed: str, generic: tuple[str, ...]) -> None:
    assert normalise_drug(typed) == generic


def test_every_brand_in_the_contract_list_normalises(contract_names: dict[str, dict[str, list[str]]]) -> None:
    for group in contract_names.values():
        for generic, brands in group.items():
            for name in [generic, *brands]:
                assert normalise_drug(name) == (generic,), name


def test_unknown_drug_suggests_the_closest_names() -> None:
    with pytest.raises(UnknownDrugError) as caught:
        normalise_drug("tamoxifn")
    assert "tamoxifen" in caught.value.suggestions
    (message,) = problems({"sex": "female", "history": {"metastatic": [{"drugs": ["Kisquali"]}]}})
    assert message.startswith("history.metastatic[0].drugs: unknown drug name 'Kisquali'; closest known names:")
    assert "Kisqali" in message


def test_history_drugs_are_stored_as_generic_ids() -> None:
    profile = parse_profile({"sex": "female", "history": {"metastatic": [{"drugs": ["Femara", "Ibrance"]}]}})
    assert profile.history.metastatic[0].drugs == ["letrozole", "palbociclib"]


def test_her2_ihc_zero_as_a_number_means_ihc_0() -> None:
    assert parse_profile({"sex": "female", "tumor": {"her2": {"ihc": 0}}}).tumor.her2.ihc == "0"


def test_not_a_mapping_is_a_clear_error() -> None:
    assert problems([1, 2]) == ["profile: must be a JSON object with at least 'sex'"]


_KEYS = st.sampled_from(["sex", "tumor", "er", "drugs", "outcome", "sites", "a", "b"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(_KEYS, _JSON, max_size=4))
def test_profile_json_reads_what_json_reads_when_no_key_repeats(data: dict[str, Any]) -> None:
    assert profile_json(json.dumps(data)) == data


@given(st.dictionaries(_KEYS, _JSON, min_size=1, max_size=4), st.data())
def test_a_repeated_key_is_named_by_its_path(data: dict[str, Any], draw: st.DataObject) -> None:
    key = draw.draw(st.sampled_from(sorted(data)))
    text = json.dumps(data)
    twice = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(data[key]) + "}"   # same value, still refused
    with pytest.raises(ProfileError) as caught:
        profile_json(twice)
    assert caught.value.problems == [f"{key}: given more than once; give each field only once"]


def test_repeated_keys_inside_lists_and_objects_are_each_named() -> None:
    text = ('{"sex": "female", "sex": "female", "tumor": {"er": "positive", "pr": "negative", "er": "negative"}, '
            '"history": {"metastatic": [{"drugs": []}, {"outcome": "ongoing", "outcome": "progressed"}]}}')
    with pytest.raises(ProfileError) as caught:
        profile_json(text)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "sex", "tumor.er", "history.metastatic[1].outcome"]
    with pytest.raises(ValueError):
        profile_json("{not json")
