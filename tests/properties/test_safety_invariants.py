"""DESIGN.md safety invariants as properties over generated valid profiles (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from mbcnav import recommend
from mbcnav.knowledge.loader import knowledge
from tests.properties.strategies import profiles

GNRH = {"ovarian_suppression", "goserelin", "leuprolide", "triptorelin", "oophorectomy"}
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def entries(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return rec["options"] + rec["local_and_supportive"]


def offered(rec: dict[str, Any]) -> set[str]:
    return {d for e in entries(rec) for c in e["drugs"] for d in c}


def classes(drug: str) -> set[str]:
    info = knowledge().drugs.get(drug)
    return set(info.classes) if info else set()


def with_class(rec: dict[str, Any], cls: str) -> set[str]:
    return {d for d in offered(rec) if cls in classes(d)}


@SETTINGS
@given(profiles())
def test_no_endocrine_therapy_when_er_and_pr_are_negative(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    if profile["tumor"].get("er") == "negative" and profile["tumor"].get("pr") == "negative":
        assert with_class(rec, "endocrine") == set()


@SETTINGS
@given(profiles())
def test_ovarian_suppression_or_gnrh_agonist_travels_with_the_option(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    premenopausal = (
        profile["sex"] == "female"
        and profile.get("menopausal_status") in ("pre", "peri")
        and not profile.get("ovarian_function_suppressed")
    )
    for entry in entries(rec):
        drugs = {d for c in entry["drugs"] for d in c}
        has_gnrh = any(set(c) & GNRH for c in entry["drugs"])
        needs = set().union(*(classes(d) for d in drugs)) & {"aromatase_inhibitor", "cdk46_inhibitor", "serd"}
        if premenopausal and needs:
            assert has_gnrh, entry
        if profile["sex"] == "male" and any("aromatase_inhibitor" in classes(d) for d in drugs):
            assert has_gnrh, entry


@SETTINGS
@given(profiles())
def test_her2_directed_drugs_only_for_her2_positive_and_tdxd_alone_for_low(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    her2 = profile["tumor"]["her2"]
    anti_her2 = with_class(rec, "anti_her2")
    category = rec["her2_category"]
    if her2["ish"] != "amplified" and her2["ihc"] in ("0", "ultralow", "1+"):
        assert category != "positive"
    if category in ("zero", "unknown"):
        assert anti_her2 == set()
    if category in ("low", "ultralow"):
        assert anti_her2 <= {"trastuzumab_deruxtecan"}


@SETTINGS
@given(profiles())
def test_no_biomarker_gated_drug_without_its_biomarker(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    t = profile["tumor"]
    given_drugs = offered(rec)
    if given_drugs & {"alpelisib", "inavolisib"}:
        assert t.get("pik3ca") == "mutated"
    if "capivasertib" in given_drugs:
        assert "mutated" in (t.get("pik3ca"), t.get("akt1")) or t.get("pten") == "altered"
    if given_drugs & {"elacestrant", "imlunestrant", "vepdegestrant"}:
        assert t.get("esr1") == "mutated"
    if given_drugs & {"olaparib", "talazoparib"}:
        assert t.get("germline_brca") in ("brca1", "brca2")
    if given_drugs & {"larotrectinib", "entrectinib", "repotrectinib"}:
        assert t.get("ntrk_fusion") == "present"
    if "dostarlimab" in given_drugs:
        assert t.get("msi") == "high"
    if "pembrolizumab" in given_drugs:
        cps = t.get("pdl1_cps")
        tmb = t.get("tmb")
        assert (cps is not None and cps >= 10 and rec["subtype"] == "triple_negative") or t.get("msi") == "high" or (
            tmb is not None and tmb >= 10
        )


@SETTINGS
@given(profiles())
def test_pregnancy_excludes_drugs_that_harm_the_baby(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    if "pregnancy" not in profile.get("health", {}).get("conditions", []):
        return
    kb = knowledge()
    for drug in offered(rec):
        info = kb.drugs.get(drug)
        if info is None:
            continue
        assert info.pregnancy == "caution_specialist", drug
        assert not set(info.classes) & {"endocrine", "anti_her2", "cdk46_inhibitor", "parp_inhibitor"}, drug


@SETTINGS
@given(profiles())
def test_every_offered_option_cites_a_source_and_explains_itself(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    for entry in entries(rec):
        assert entry["evidence"] and all(e["source"] for e in entry["evidence"]), entry["id"]
        assert entry["why"] and all(isinstance(w, str) and w for w in entry["why"]), entry["id"]
    assert rec["contract"] == "1" and rec["knowledge_version"]


@SETTINGS
@given(profiles())
def test_unknown_biomarkers_never_count_as_positive_and_produce_tests(profile: dict[str, Any]) -> None:
    t = profile["tumor"]
    rec = recommend(profile)
    if t.get("er", "unknown") == "unknown" and t.get("pr", "unknown") == "unknown":
        assert rec["subtype"] == "unknown"
    if rec["subtype"] == "unknown" or rec["her2_category"] == "unknown":
        assert rec["tests_to_consider"], "unknown receptor or HER2 status must suggest a test"
