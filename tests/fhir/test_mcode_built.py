"""Bundles built to the mCODE profiles, clean and messy: bundle -> Profile -> recommend()."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mbcnav.fhir import import_bundle, recommend_bundle
from mbcnav.fhir.report import ImportReport
from tests.fhir.bundles import (
    HGNC,
    LA_NEGATIVE,
    LA_POSITIVE,
    LOINC,
    MCODE,
    NEGATIVE,
    POSITIVE,
    RXNORM,
    SNOMED,
    bundle,
    coding,
    concept,
    ecog,
    er,
    her2_ihc,
    her2_ish,
    marker,
    medication,
    observation,
    patient,
    pr,
    secondary,
    stage_group,
    variant,
)

AS_OF = dt.date(2026, 11, 23)


def imported(*resources: dict[str, Any]) -> ImportReport:
    return import_bundle(bundle(*resources), as_of=AS_OF)


def texts(report: ImportReport, section: str, kind: str = "unreadable") -> str:
    items = getattr(report.sections[section], kind)
    return " | ".join(f"{i.resource}: {i.reason}" for i in items)


# --- a clean, complete patient ----------------------------------------------------------------

def clean_triple_negative() -> dict[str, Any]:
    return bundle(
        patient(birth="1975-02-10"),
        er(LA_NEGATIVE), pr(LA_NEGATIVE), her2_ihc(valueString="1+"),
        marker("83052-1", "PD-L1 by clone 22C3 [Presence] in Tissue by Immune stain",
               valueQuantity={"value": 12, "unit": "CPS"}),
        variant("HGNC:1100", "BRCA1", source="germline"),
        variant("HGNC:1101", "BRCA2", found=False, source="germline"),
        ecog(1),
        observation(concept(coding(LOINC, "8678-5", "Menstrual status"), text="Menopausal status"),
                    profile="mcode-cancer-patient", valueCodeableConcept=concept(
                        coding(SNOMED, "22636003", "Premenopausal state (finding)"))),
        stage_group("2", date="2021-01-15"),
        secondary("94391008", "Secondary malignant neoplasm of lung", onset="2024-02-20"),
        secondary(None, "Metastasis to liver", onset="2024-02-20"),
        medication("MedicationAdministration", "3639", "DOXOrubicin", start="2021-02-01"),
        medication("MedicationAdministration", "3639", "DOXOrubicin", start="2021-02-22"),
        medication("MedicationAdministration", "3002", "Cyclophosphamide", start="2021-02-01", end="2021-04-12"),
        medication("MedicationRequest", None, "Sertraline 50 MG Oral Tablet", start="2024-01-01", status="active"),
    )


def test_clean_triple_negative_with_germline_brca1_and_pdl1() -> None:
    report, rec = recommend_bundle(clean_triple_negative(), as_of=AS_OF)
    p = report.profile
    assert p["age"] == 51 and p["menopausal_status"] == "pre"
    assert p["tumor"] == {"er": "negative", "pr": "negative", "pdl1_cps": 12.0, "germline_brca": "brca1",
                          "her2": {"ihc": "1+", "ish": "not_done"}}
    assert p["disease"] == {"presentation": "recurrent", "sites": ["liver", "lung"]}
    # Two doxorubicin doses are one course ending with the last recorded dose.
    assert p["history"] == {"early": [{"drugs": ["cyclophosphamide"], "months_since_end": 34.3},
                                      {"drugs": ["doxorubicin"], "months_since_end": 35.9}]}
    assert p["current_medications"] == ["sertraline"]
    assert rec is not None
    assert rec["subtype"] == "triple_negative" and rec["her2_category"] == "low"
    offered = {d for o in rec["options"] for c in o["drugs"] for d in c}
    assert "pembrolizumab" in offered
    assert report.usable and not texts(report, "Observation")


# --- messy results ---------------------------------------------------------------------------

def test_text_only_results_are_read_from_their_words() -> None:
    report = imported(
        patient(),
        marker("16112-5", "Estrogen receptor [Interpretation] in Tissue", valueString="Positive, 95% of cells"),
        marker("16113-3", "Progesterone receptor [Interpretation] in Tissue",
               valueCodeableConcept=concept(text="negative (<1%)")),
        marker("48676-1", "HER2 [Interpretation] in Tissue", valueCodeableConcept=concept(text="HER2 IHC 2+")),
        her2_ish(concept(text="Not amplified (ratio 1.3)")),
    )
    tumor = report.profile["tumor"]
    assert tumor["er"] == "positive" and tumor["pr"] == "negative"
    assert tumor["her2"] == {"ihc": "unknown", "ish": "not_amplified"}


def test_er_low_and_a_bound_that_straddles_the_threshold() -> None:
    report = imported(patient(), marker("85329-1", "Cells.estrogen receptor/100 cells in Breast cancer specimen",
                                        valueQuantity={"value": 5, "unit": "%"}))
    assert report.profile["tumor"]["er"] == "low"
    report = imported(patient(), marker("85329-1", "Cells.estrogen receptor/100 cells in Breast cancer specimen",
                                        valueQuantity={"value": 10, "comparator": ">=", "unit": "%"}))
    assert "tumor" not in report.profile
    assert "spans more than one category" in texts(report, "Observation")


def test_snomed_and_loinc_answers_read_alike() -> None:
    snomed = imported(patient(), er(POSITIVE), pr(NEGATIVE)).profile["tumor"]
    loinc = imported(patient(), er(LA_POSITIVE), pr(LA_NEGATIVE)).profile["tumor"]
    assert snomed == loinc == {"er": "positive", "pr": "negative"}


def test_missing_and_unknown_codes_are_reported_not_guessed() -> None:
    report = imported(
        patient(),
        er(concept(coding(SNOMED, "999999", "Weird answer"))),                     # unknown answer code
        observation(concept(text="ER status")),
        observation(concept(coding(LOINC, "12345-6", "Something else")), valueString="positive"),
        pr(concept(coding(SNOMED, "82334004", "Indeterminate (qualifier value)"))),
    )
    assert "tumor" not in report.profile
    unread = texts(report, "Observation")
    assert "no positive/negative result or percentage could be read" in unread
    ignored = texts(report, "Observation", "ignored")
    assert "code not used by mbcnav (text 'ER status')" in ignored and "LOINC 12345-6" in ignored
    assert {"tumor.er", "tumor.pr"} <= {m.field for m in report.sections["Observation"].missing}


def test_conflicting_duplicates_newest_wins_and_same_day_conflict_stays_unknown() -> None:
    report = imported(patient(), er(POSITIVE, date="2023-01-05"), er(NEGATIVE, date="2024-03-02", loinc="16112-5"))
    assert report.profile["tumor"]["er"] == "negative"
    assert "2 ER results; used the newest (2024-03-02): negative. Older: positive (2023-01-05)." in report.notes
    report = imported(patient(), er(POSITIVE, date="2024-03-02"), er(NEGATIVE, date="2024-03-02"))
    assert "tumor" not in report.profile
    assert any("newest cannot be told" in n and "ER left unknown" in n for n in report.notes)
    # A month-only date overlaps a day in that month: not newer, so not used to break the tie.
    report = imported(patient(), er(POSITIVE, date="2024-03"), er(NEGATIVE, date="2024-03-15"))
    assert "tumor" not in report.profile
    report = imported(patient(), er(POSITIVE, date=None), er(NEGATIVE, date="2024-03-15"))
    assert "tumor" not in report.profile


def test_stu1_profile_urls_are_read_by_code() -> None:
    old = er(POSITIVE)
    old["meta"] = {"profile": [MCODE + "mcode-tumor-marker"]}
    report = imported(patient(), old)
    assert report.profile["tumor"]["er"] == "positive"
    assert any("mcode-tumor-marker (now mcode-tumor-marker-test)" in n for n in report.notes)


def test_her2_combinations() -> None:
    assert imported(patient(), her2_ihc(valueString="2+"), her2_ish(POSITIVE)).profile["tumor"]["her2"] == {
        "ihc": "2+", "ish": "amplified"}
    assert imported(patient(), her2_ihc(valueInteger=0)).profile["tumor"]["her2"] == {"ihc": "0", "ish": "not_done"}
    assert imported(patient(), her2_ihc(valueString="0 (ultralow)")).profile["tumor"]["her2"]["ihc"] == "ultralow"
    assert imported(patient(), her2_ihc(valueCodeableConcept=POSITIVE)).profile["tumor"]["her2"]["ihc"] == "3+"
    conflict = imported(patient(), her2_ihc(valueString="3+"),
                        marker("48676-1", "HER2 [Interpretation] in Tissue", valueCodeableConcept=NEGATIVE))
    assert "tumor" not in conflict.profile
    assert any("HER2 results disagree" in n for n in conflict.notes)


def test_pdl1_needs_a_combined_positive_score() -> None:
    tps = imported(patient(), marker("83052-1", "PD-L1 by clone 22C3 [Presence] in Tissue by Immune stain",
                                     valueQuantity={"value": 40, "unit": "%"}))
    assert "tumor" not in tps.profile and "tumour proportion score" in texts(tps, "Observation")
    cps = imported(patient(), marker("85147-7", "PD-L1 by clone 22C3 in Tissue by Immune stain Report",
                                     valueString="CPS: 15"))
    assert cps.profile["tumor"]["pdl1_cps"] == 15.0
    sp142 = imported(patient(), marker("83057-0", "PD-L1 by clone SP142 [Presence] in Tissue by Immune stain",
                                       valueCodeableConcept=POSITIVE))
    assert "not the 22C3 assay" in texts(sp142, "Observation")


def test_germline_rules_for_brca_and_palb2() -> None:
    somatic = imported(patient(), variant("HGNC:1101", "BRCA2", source="somatic"))
    assert "tumor" not in somatic.profile and "is somatic" in texts(somatic, "Observation")
    unlabelled = imported(patient(), variant("HGNC:1100", "BRCA1", source=None))
    assert "does not say whether it is germline or somatic" in texts(unlabelled, "Observation")
    one_gene = imported(patient(), variant("HGNC:1100", "BRCA1", found=False, source="germline"))
    assert "tumor" not in one_gene.profile
    assert any("no germline BRCA2 result" in n for n in one_gene.notes)
    palb2 = imported(patient(), variant("HGNC:26144", "PALB2", source="germline"))
    assert palb2.profile["tumor"]["germline_palb2"] == "mutated"
    vus = imported(patient(), variant("HGNC:8975", "PIK3CA", significance=concept(
        coding(LOINC, "LA26333-7", "Uncertain significance"))))
    assert "tumor" not in vus.profile and "Uncertain significance" in texts(vus, "Observation", "ignored")
    negative = imported(patient(), variant("HGNC:9588", "PTEN", found=False), variant("HGNC:391", "AKT1"))
    assert negative.profile["tumor"] == {"pten": "wild_type", "akt1": "mutated"}


def test_ecog_range_and_coded_answers() -> None:
    assert imported(patient(), ecog(2)).profile["health"] == {"ecog": 2}
    assert "ECOG 5 means the person has died" in texts(imported(patient(), ecog(5)), "Observation")
    assert "ECOG -1 is not a valid score" in texts(imported(patient(), ecog(-1)), "Observation")
    coded = observation(concept(coding(LOINC, "89247-1", "ECOG Performance Status score")),
                        profile="mcode-ecog-performance-status",
                        valueCodeableConcept=concept(coding(LOINC, "LA9624-3", "Ambulatory, capable of selfcare")))
    assert imported(patient(), coded).profile["health"] == {"ecog": 2}


def test_patient_problems() -> None:
    no_sex = import_bundle(bundle(patient(gender="unknown"), er(POSITIVE)), as_of=AS_OF)
    assert not no_sex.usable and any(p.startswith("sex") for p in no_sex.profile_problems)
    _, rec = recommend_bundle(bundle(patient(gender=None)), as_of=AS_OF)
    assert rec is None
    birthsex = patient(gender=None)
    birthsex["extension"] = [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                              "valueCode": "F"}]
    assert imported(birthsex).profile["sex"] == "female"
    assert "age" not in imported(patient(birth="1970")).profile
    child = imported(patient(birth="2015-01-01"))
    assert "age" not in child.profile and "gives age 11" in texts(child, "Patient")
    two = import_bundle(bundle(patient(), patient(pid="p2"), er(POSITIVE)), as_of=AS_OF)
    assert "sex" not in two.profile and "describes 2 patients" in texts(two, "Patient")


def test_resources_of_another_patient_and_invalid_resources() -> None:
    other = er(NEGATIVE)
    other["subject"] = {"reference": "Patient/someone-else"}
    broken = pr(POSITIVE)
    broken["valueQuantity"] = {"value": "lots"}
    report = imported(patient(), er(POSITIVE), other, broken)
    assert report.profile["tumor"] == {"er": "positive"}
    assert "refers to another patient (Patient/someone-else)" in texts(report, "Observation", "ignored")
    assert "not valid FHIR R4" in texts(report, "Observation")
    assert import_bundle({"resourceType": "Patient"}).sections["Bundle"].unreadable
    assert import_bundle({"resourceType": "Bundle", "entry": []}).sections["Bundle"].unreadable


def test_preliminary_results_are_not_used() -> None:
    report = imported(patient(), observation(concept(coding(LOINC, "16112-5", "Estrogen receptor [Interpretation]")),
                                             status="preliminary", valueCodeableConcept=POSITIVE))
    assert "tumor" not in report.profile and "status 'preliminary'" in texts(report, "Observation", "ignored")


# --- sites ------------------------------------------------------------------------------------

def test_sites_from_codes_icd10_body_site_and_text() -> None:
    report = imported(
        patient(),
        secondary("94222008", "Secondary malignant neoplasm of bone"),
        secondary("128462008", "Secondary malignant neoplastic disease (disorder)",
                  body_site=concept(coding(SNOMED, "12738006", "Brain structure (body structure)"))),
        {"resourceType": "Condition", "id": "icd", "subject": {"reference": "Patient/p1"},
         "code": concept(coding("http://hl7.org/fhir/sid/icd-10-cm", "C78.2", "Secondary neoplasm of pleura"))},
        secondary(None, "metastatic disease of the skin", profile=False),
    )
    assert report.profile["disease"]["sites"] == ["bone", "brain", "pleura", "skin"]


def test_an_unreadable_site_leaves_the_site_list_unknown() -> None:
    report = imported(patient(), secondary("94222008", "Secondary malignant neoplasm of bone"),
                      secondary("128462008", "Secondary malignant neoplastic disease (disorder)",
                                body_site=concept(coding(SNOMED, "8935007"))))
    assert "sites" not in report.profile.get("disease", {})
    assert any("Sites read: bone" in n and "Sites left unknown" in n for n in report.notes)


# --- treatment history ------------------------------------------------------------------------

def recurrent(*meds: dict[str, Any], onset: str | None = "2024-06-01") -> ImportReport:
    return imported(patient(), stage_group("II", date="2019-03-01"),
                    secondary("94222008", "Secondary malignant neoplasm of bone", onset=onset), *meds)


def test_relapse_on_adjuvant_tamoxifen_is_early_with_zero_months() -> None:
    report = recurrent(medication("MedicationStatement", "1164214", "Tamoxifen Oral Product", start="2019-09-01",
                                  status="active"))
    assert report.profile["history"] == {"early": [{"drugs": ["tamoxifen"], "months_since_end": 0.0}]}
    assert report.profile["disease"]["presentation"] == "recurrent"


def test_lines_group_by_start_and_stop_reasons_give_outcomes() -> None:
    progressed = concept(coding(SNOMED, "266721009", "No response to treatment (situation)"))
    report = recurrent(
        medication("MedicationRequest", "72965", "Letrozole", start="2024-07-01", end="2025-05-01", status="stopped",
                   statusReason=progressed),
        medication("MedicationRequest", "1601374", "Palbociclib", start="2024-07-10", end="2025-05-01",
                   status="stopped", statusReason=progressed),
        medication("MedicationRequest", "1156671", "Fulvestrant Injectable Product", start="2025-06-01",
                   status="active"),
        medication("MedicationRequest", "1163443", "Leuprolide Injectable Product", start="2025-06-01",
                   status="active"),
    )
    lines = report.profile["history"]["metastatic"]
    assert lines == [{"drugs": ["letrozole", "palbociclib"], "outcome": "progressed", "months": 10.0},
                     {"drugs": ["fulvestrant", "leuprolide"], "outcome": "ongoing"}]
    assert report.profile["ovarian_function_suppressed"] is True


def test_undeterminable_history_is_reported_not_guessed() -> None:
    near = recurrent(medication("MedicationStatement", "56946", "PACLitaxel", start="2024-05-20"))
    assert "history" not in near.profile and "within 30 days before" in texts(near, "Medication")
    undated_met = recurrent(medication("MedicationStatement", "56946", "PACLitaxel", start="2022-01-01"), onset=None)
    assert "no date is recorded for the first metastatic diagnosis" in texts(undated_met, "Medication")
    no_start = recurrent(medication("MedicationStatement", "56946", "PACLitaxel", start=None))
    assert "no start date" in texts(no_start, "Medication")
    one_undated = imported(patient(), stage_group("II", date="2019-03-01"),
                           secondary("94222008", "Secondary malignant neoplasm of bone", onset="2024-06-01"),
                           secondary("94381002", "Secondary malignant neoplasm of liver", onset=None),
                           medication("MedicationStatement", "56946", "PACLitaxel", start="2022-01-01"),
                           medication("MedicationStatement", "1158877", "Capecitabine", start="2024-07-01"))
    assert one_undated.profile["history"] == {"metastatic": [{"drugs": ["capecitabine"]}]}
    assert "an undated secondary cancer could be older" in texts(one_undated, "Medication")


def test_not_given_records_and_medication_references() -> None:
    contained = {
        "resourceType": "MedicationRequest", "id": "mr-ref", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-07-01",
        "contained": [{"resourceType": "Medication", "id": "m1",
                       "code": concept(coding(RXNORM, "1873916", "Ribociclib"))}],
        "medicationReference": {"reference": "#m1"},
    }
    report = recurrent(
        contained,
        medication("MedicationRequest", "72965", "Letrozole", start="2024-07-01", status="cancelled"),
        medication("MedicationRequest", "84857", "Anastrozole", start="2024-07-01", status="active", intent="proposal"),
        medication("MedicationStatement", None, "Kisqali 200 MG Oral Tablet [Kisqali]", start="2024-07-02",
                   status="not-taken"),
    )
    assert report.profile["history"]["metastatic"] == [{"drugs": ["ribociclib"], "outcome": "ongoing"}]
    ignored = texts(report, "Medication", "ignored")
    assert "status 'cancelled'" in ignored and "intent 'proposal'" in ignored and "status 'not-taken'" in ignored


def test_current_non_cancer_medicines_feed_interaction_checks() -> None:
    report, rec = recommend_bundle(bundle(
        patient(), er(POSITIVE), her2_ihc(valueString="0"), stage_group("IV"),
        medication("MedicationStatement", "1164214", "Tamoxifen Oral Product", start="2024-01-01", status="active"),
        medication("MedicationStatement", None, "PARoxetine 20 MG Oral Tablet", start="2024-01-01", status="active"),
        medication("MedicationStatement", None, "Mystery tonic", start="2024-01-01", status="active"),
    ), as_of=AS_OF)
    assert report.profile["current_medications"] == ["paroxetine", "Mystery tonic"]
    assert report.profile["history"] == {"metastatic": [{"drugs": ["tamoxifen"], "outcome": "ongoing"}]}
    assert rec is not None
    assert any(i["drugs"] == ["tamoxifen", "paroxetine"] and i["severity"] == "major" for i in rec["interactions"])
    assert any("Mystery tonic" in w for w in rec["warnings"])


def test_unknown_never_becomes_positive_for_gated_drugs() -> None:
    """No biomarker result: the biomarker-gated drugs stay out of the options and become tests."""
    report, rec = recommend_bundle(bundle(patient(birth="1950-01-01"), er(POSITIVE), her2_ihc(valueString="0"),
                                          variant("HGNC:8975", "PIK3CA", source=None, found=True,
                                                  significance=concept(text="uncertain significance"))),
                                   as_of=AS_OF)
    assert rec is not None
    offered = {d for o in rec["options"] for c in o["drugs"] for d in c}
    assert not offered & {"alpelisib", "inavolisib", "capivasertib", "olaparib", "talazoparib", "elacestrant"}
    assert any(t["id"] == "pik3ca_akt1_pten" for t in rec["tests_to_consider"]) or rec["decision_point"]
    assert report.profile["tumor"].get("pik3ca") is None


def test_hgnc_system_spellings() -> None:
    mcode_style = variant("HGNC:3467", "ESR1")
    mcode_style["component"][0]["valueCodeableConcept"]["coding"][0]["system"] = "http://www.genenames.org"
    assert imported(patient(), mcode_style).profile["tumor"]["esr1"] == "mutated"
    assert HGNC.startswith("http://www.genenames.org")
