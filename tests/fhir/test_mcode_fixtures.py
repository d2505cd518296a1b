"""Real bundles from ../shared/fixtures/fhir: bundle -> Profile -> recommend()."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from mbcnav.fhir import import_bundle, recommend_bundle
from mbcnav.fhir.report import ImportReport
from tests.fhir.bundles import FHIR_FIXTURES

AS_OF = dt.date(2026, 11, 23)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FHIR_FIXTURES / name).read_text(encoding="utf-8"))
    return data


def unreadable(report: ImportReport, section: str) -> list[str]:
    return [f"{u.resource}: {u.reason}" for u in report.sections[section].unreadable]


def missing(report: ImportReport) -> set[str]:
    return {m.field for s in report.sections.values() for m in s.missing}


def test_mitre_patient01_metastatic_hr_positive_her2_negative() -> None:
    report, rec = recommend_bundle(load("mcode-ctm-app/TrialMatching_Patient01.json"), as_of=AS_OF)
    p = report.profile
    assert p["sex"] == "female" and p["age"] == 67
    assert p["tumor"]["er"] == "positive" and p["tumor"]["pr"] == "positive"
    # HER2 'Negative' by IHC without a score: HER2-negative, but HER2-low cannot be judged.
    assert p["tumor"]["her2"] == {"ihc": "unknown", "ish": "not_amplified"}
    assert p["tumor"]["esr1"] == "mutated" and p["tumor"]["pik3ca"] == "mutated"
    assert p["disease"] == {"presentation": "de_novo", "sites": ["bone", "liver", "lymph_nodes"]}
    assert p["health"] == {"ecog": 1}
    lines = p["history"]["metastatic"]
    assert [line["drugs"] for line in lines] == [
        ["abemaciclib", "fulvestrant", "leuprolide"], ["fulvestrant", "ribociclib"]]
    assert "outcome" not in lines[0] and lines[1]["outcome"] == "ongoing"
    assert any("active although a newer treatment" in n for n in report.notes)
    assert any("mcode-tumor-marker " in n for n in report.notes)          # STU1 profile URL mentioned
    assert {"menopausal_status", "tumor.pdl1_cps", "tumor.germline_brca"} <= missing(report)
    assert rec is not None
    assert rec["subtype"] == "hr_positive_her2_negative"
    assert rec["her2_category"] == "unknown"
    ids = [o["id"] for o in rec["options"]]
    assert "oral_er_degrader_esr1_mutated" in ids and "alpelisib_plus_fulvestrant" in ids
    assert any(t["id"] == "her2_scoring" for t in rec["tests_to_consider"]) or rec["her2_category"] == "unknown"


def test_mitre_patient02_heavily_pretreated_with_zoledronic_acid_not_a_line() -> None:
    report, rec = recommend_bundle(load("mcode-ctm-app/TrialMatching_Patient02.json"), as_of=AS_OF)
    p = report.profile
    assert p["disease"] == {"presentation": "de_novo", "sites": ["bone"]}
    lines = [line["drugs"] for line in p["history"]["metastatic"]]
    assert lines[0] == ["exemestane"] and lines[-1] == ["alpelisib"]
    assert all("zoledronic_acid" not in line for line in lines)
    assert len(lines) == 8 and p["history"]["metastatic"][-1]["outcome"] == "ongoing"
    assert any("TMB given as" in u for u in unreadable(report, "Observation"))
    ignored = [i.reason for i in report.sections["Observation"].ignored]
    assert sum("gene mbcnav does not use" in r for r in ignored) == 3      # CCND1, FGFR1, MDM2
    assert rec is not None and rec["subtype"] == "hr_positive_her2_negative"
    assert rec["decision_point"].endswith("(third line or later)")


def test_eom_conflicting_er_newest_wins_and_contradictory_stage() -> None:
    report, rec = recommend_bundle(load("mcode-ctm-service/eom_patient_1.json"), as_of=AS_OF)
    p = report.profile
    assert p["tumor"]["er"] == "negative"
    assert "2 ER results; used the newest (2022-01-02): negative. Older: positive (2018-03-10)." in report.notes
    assert any("Stage IV" in n and "M0" in n for n in report.notes)
    assert "presentation" not in p["disease"] and p["disease"]["sites"] == ["lung"]
    assert "history" not in p                                    # no metastatic date: not guessed
    assert len([u for u in unreadable(report, "Medication") if "cannot tell" in u]) == 2
    assert rec is not None and rec["subtype"] == "triple_negative"


def test_service_bundle_double_values_and_other_patients_are_reported() -> None:
    report = import_bundle(load("mcode-ctm-service/patient_data.json"), as_of=AS_OF)
    obs = unreadable(report, "Observation")
    assert sum("more than one value[x]" in u for u in obs) == 3          # ER and 2x HER2 carry two values
    assert "tumor" not in report.profile                                  # so nothing is guessed from them
    ignored = [i.reason for i in report.sections["Observation"].ignored]
    assert sum("refers to another patient" in r for r in ignored) == 3
    assert any("site could not be read" in u for u in unreadable(report, "Condition"))
    assert "sites" not in report.profile.get("disease", {})
    assert any("appears more than once" in n for n in report.notes)


def test_missing_birthdate_and_invalid_ecog() -> None:
    bundle = load("mcode-ctm-service/patient_data_missing_birthdate_invalid_ecog_karnofsky.json")
    report = import_bundle(bundle, as_of=AS_OF)
    assert report.profile == {"sex": "female"}
    assert "age" in missing(report) and "health.ecog" in missing(report)
    # The ECOG/Karnofsky observations point at another patient; re-pointed, ECOG -1 is unreadable.
    fixed = copy.deepcopy(bundle)
    for entry in fixed["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            entry["resource"]["subject"] = {"reference": entry_ref(fixed)}
    report = import_bundle(fixed, as_of=AS_OF)
    assert any("ECOG -1 is not a valid score" in u for u in unreadable(report, "Observation"))
    assert any("Karnofsky -1" in i.reason for i in report.sections["Observation"].ignored)
    assert "health" not in report.profile


def entry_ref(bundle: dict[str, Any]) -> str:
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return str(patient["fullUrl"])


@pytest.mark.parametrize("name", [
    "mcode-ctm-app/TrialMatching_Patient01.json", "mcode-ctm-app/TrialMatching_Patient02.json",
    "mcode-ctm-service/eom_patient_1.json", "mcode-ctm-service/patient_data.json",
    "mcode-ctm-service/patient_data_missing_birthdate_invalid_ecog_karnofsky.json",
])
def test_every_fixture_imports_to_a_valid_profile_and_a_json_report(name: str) -> None:
    report, rec = recommend_bundle(load(name), as_of=AS_OF)
    assert report.usable and rec is not None
    json.dumps(report.model_dump(mode="json"))
    assert all(line for line in report.lines())
