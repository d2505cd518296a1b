"""CDS Hooks service: the spec's own examples, a real local FHIR server, 412 when it is down."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.client import call
from tests.fhir.bundles import (
    FHIR_FIXTURES,
    NEGATIVE,
    POSITIVE,
    bundle,
    coding,
    concept,
    er,
    her2_ihc,
    observation,
    patient,
    pr,
)
from tests.fhir.cds_spec import CONSTRAINTS, constraint_keys, example, validate
from tests.fhir.fhir_server import FhirStub, closed_port_url, serve

PV = "/cds-services/mbcnav-patient-view"
SELECT = "/cds-services/mbcnav-order-select"
SIGN = "/cds-services/mbcnav-order-sign"
KEYS = ("patient", "observations", "conditions", "medicationRequests", "medicationStatements",
        "medicationAdministrations")


def resources_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in data["entry"]]


def mitre01() -> list[dict[str, Any]]:
    return resources_of(json.loads((FHIR_FIXTURES / "mcode-ctm-app" / "TrialMatching_Patient01.json").read_text()))


def request(hook: str, patient_id: str, **extra: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/example", "patientId": patient_id}, **extra}


def prefetch_for(resources: list[dict[str, Any]], patient_id: str) -> dict[str, Any]:
    """Every prefetch key filled, as a CDS client would (searchset Bundles)."""
    kinds = {"observations": "Observation", "conditions": "Condition", "medicationRequests": "MedicationRequest",
             "medicationStatements": "MedicationStatement", "medicationAdministrations": "MedicationAdministration"}
    out: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, kind in kinds.items():
        out[key] = {"resourceType": "Bundle", "type": "searchset",
                    "entry": [{"resource": r} for r in resources if r["resourceType"] == kind]}
    assert out["patient"]["id"] == patient_id
    return out


def conforming(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert validate(body, "CDSHooksResponse", strict=True) == []
    for card in body["cards"]:
        assert {"uuid", "summary", "indicator", "source"} <= set(card) and card["source"]["label"]
    return body


@pytest.fixture
def mitre_server() -> Iterator[tuple[str, FhirStub]]:
    stub = FhirStub(mitre01(), page_size=2)        # small pages: paging must be followed
    with serve(stub) as base:
        yield base, stub


# --- the spec's logical models and examples --------------------------------------------------

def test_every_model_constraint_is_checked() -> None:
    assert constraint_keys("CDSHooksResponse") <= set(CONSTRAINTS)


@pytest.mark.parametrize("name", ["spec-2.0.1/spec-10-http-response.json", "spec-2.0.1/spec-16-system-action.json",
                                  "spec-2.0.1/spec-17-example.json", "spec-2.0.1/spec-18-example.json",
                                  "hl7-cds-hooks-3.0.0-ballot/binary-CDSHooksResponse.json"])
def test_the_validator_accepts_the_spec_response_examples(name: str) -> None:
    assert validate(example(name), "CDSHooksResponse") == []


def test_discovery_conforms() -> None:
    body = call("GET", "/cds-services").json()
    assert validate(body, "CDSHooksServices", strict=True) == []
    assert validate(example("spec-2.0.1/spec-01-discovery-example.json"), "CDSHooksServices") == []
    hooks = {s["id"]: s["hook"] for s in body["services"]}
    assert hooks == {"mbcnav-patient-view": "patient-view", "mbcnav-order-select": "order-select",
                     "mbcnav-order-sign": "order-sign"}
    assert body["services"][0]["prefetch"]["patient"] == "Patient/{{context.patientId}}"


def test_spec_patient_view_request_prefetch_is_not_ours_so_412_when_server_is_not_allowed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """spec-02: its prefetch key (patientToGreet) is not one of ours, so the data must be fetched from
    its fhirServer; that server is not allowed here, so the answer is 412, not cards from partial data."""
    monkeypatch.setenv("MBCNAV_CDS_FHIR_SERVERS", "http://127.0.0.1:1/")
    for name in ("spec-2.0.1/spec-02-example.json", "hl7-cds-hooks-3.0.0-ballot/binary-CDSHooksRequestPV.json"):
        response = call("POST", PV, json=example(name))
        assert response.status_code == 412, response.text


def test_spec_patient_view_request_against_a_local_fhir_server() -> None:
    """spec-02 as sent, with fhirServer pointed at a local server holding patient 1288992."""
    resources = [patient(gender="male", birth="1925-12-23", pid="1288992")]
    stub = FhirStub(resources)
    with serve(stub) as base:
        sent = {**example("spec-2.0.1/spec-02-example.json"), "fhirServer": base}
        body = conforming(call("POST", PV, json=sent))
    assert stub.requests and all(auth == "Bearer some-opaque-fhir-access-token" for _, auth in stub.requests)
    # A 98-year-old man with no cancer data: nothing is offered, and the card says what is missing.
    assert any("missing" in c["summary"] for c in body["cards"])


@pytest.mark.parametrize("name", ["hooks-community/order-select-01-example-r4.json",
                                  "hooks-community/order-sign-01-example-r4.json"])
def test_community_order_examples_non_cancer_orders_get_no_card(name: str) -> None:
    context = example(name)["context"]
    hook = "order-select" if "select" in name else "order-sign"
    resources = [patient(pid="1288992")]
    sent = request(hook, "1288992", prefetch=prefetch_for(resources, "1288992"))
    sent["context"] = context
    body = conforming(call("POST", SELECT if hook == "order-select" else SIGN, json=sent))
    assert body == {"cards": []}            # amoxicillin and a pureed diet are not breast cancer drugs


@pytest.mark.parametrize("name", ["spec-2.0.1/spec-19-example-suggestion-accepted.json",
                                  "spec-2.0.1/spec-20-example-overridden-guidance-without-overridereason.json",
                                  "spec-2.0.1/spec-21-example-overridden-guidance-with-overridereason.json"])
def test_feedback_examples_are_accepted(name: str) -> None:
    response = call("POST", f"{PV}/feedback", json=example(name))
    assert response.status_code == 200 and response.json() == {}


# --- end to end with the local FHIR server ---------------------------------------------------

def test_patient_view_fetches_from_the_fhir_server_with_the_token(mitre_server: tuple[str, FhirStub]) -> None:
    base, stub = mitre_server
    sent = request("patient-view", "mCODETrialMatchingPatientExample01", fhirServer=base,
                   fhirAuthorization={"access_token": "tok-123", "token_type": "Bearer", "expires_in": 300,
                                      "scope": "user/*.read", "subject": "mbcnav"})
    body = conforming(call("POST", PV, json=sent))
    assert {auth for _, auth in stub.requests} == {"Bearer tok-123"}
    assert any("_offset=" in path for path, _ in stub.requests)           # the next pages were fetched
    summaries = [c["summary"] for c in body["cards"]]
    assert any(s.startswith("Consider: ") and "ESR1" in s for s in summaries)
    assert any(s.startswith("Tests that could open more options") for s in summaries)
    option = next(c for c in body["cards"] if c["summary"].startswith("Consider: "))
    assert "**Why:**" in option["detail"] and option["links"][0]["url"].startswith("http://testserver/cds-services/")
    page = call("GET", option["links"][0]["url"].removeprefix("http://testserver"))
    assert page.status_code == 200 and "full explanation" in page.text and "found" in page.text
    pdf_url = page.text.split("href='")[1].split("'")[0]
    pdf = call("GET", pdf_url.removeprefix("http://testserver"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_full_prefetch_needs_no_server_and_null_means_no_data() -> None:
    resources = mitre01()
    prefetch = prefetch_for(resources, "mCODETrialMatchingPatientExample01")
    prefetch["medicationAdministrations"] = None
    body = conforming(call("POST", PV, json=request("patient-view", "mCODETrialMatchingPatientExample01",
                                                    prefetch=prefetch)))
    assert any(c["summary"].startswith("Consider: ") for c in body["cards"])


def test_partial_prefetch_is_completed_from_the_server(mitre_server: tuple[str, FhirStub]) -> None:
    base, stub = mitre_server
    prefetch = prefetch_for(mitre01(), "mCODETrialMatchingPatientExample01")
    del prefetch["conditions"]
    first_page = copy.deepcopy(prefetch["observations"])
    first_page["entry"] = first_page["entry"][:1]
    first_page["link"] = [{"relation": "next", "url": f"{base}/Observation?patient="
                           f"mCODETrialMatchingPatientExample01&_offset=1"}]
    prefetch["observations"] = first_page
    sent = request("patient-view", "mCODETrialMatchingPatientExample01", fhirServer=base, prefetch=prefetch)
    body = conforming(call("POST", PV, json=sent))
    fetched = [p for p, _ in stub.requests]
    assert any(p.startswith("/fhir/Condition?") for p in fetched) and any("Observation" in p for p in fetched)
    assert any("ESR1" in c["summary"] for c in body["cards"])


def test_412_when_prefetch_is_missing_and_the_server_is_down() -> None:
    prefetch = prefetch_for(mitre01(), "mCODETrialMatchingPatientExample01")
    del prefetch["observations"]
    sent = request("patient-view", "mCODETrialMatchingPatientExample01", fhirServer=closed_port_url(),
                   prefetch=prefetch)
    response = call("POST", PV, json=sent)
    assert response.status_code == 412 and "unreachable" in response.json()["error"]
    no_server = request("patient-view", "mCODETrialMatchingPatientExample01", prefetch=prefetch)
    assert call("POST", PV, json=no_server).status_code == 412
    paged = prefetch_for(mitre01(), "mCODETrialMatchingPatientExample01")
    paged["observations"]["link"] = [{"relation": "next", "url": closed_port_url() + "/Observation?page=2"}]
    assert call("POST", PV, json=request("patient-view", "mCODETrialMatchingPatientExample01",
                                         prefetch=paged)).status_code == 412


def test_request_errors() -> None:
    assert call("POST", "/cds-services/nope", json=request("patient-view", "x")).status_code == 404
    assert call("POST", PV, json=request("order-select", "x")).status_code == 400
    assert call("POST", PV, json={"hook": "patient-view"}).status_code == 400


# --- order-select / order-sign --------------------------------------------------------------

def premenopausal() -> list[dict[str, Any]]:
    status = observation(concept(text="Menopausal status"), profile="mcode-cancer-patient",
                         valueCodeableConcept=concept(coding("http://snomed.info/sct", "22636003",
                                                             "Premenopausal state (finding)")))
    return [patient(birth="1985-04-01"), er(POSITIVE), pr(POSITIVE), her2_ihc(valueString="0"), status]


def draft(rx: str, display: str, rid: str) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": concept(coding("http://www.nlm.nih.gov/research/umls/rxnorm", rx, display))}


def order(hook: str, resources: list[dict[str, Any]], *drafts: dict[str, Any], selected: int = 1) -> dict[str, Any]:
    sent = request(hook, "p1", prefetch=prefetch_for(resources, "p1"))
    sent["context"]["draftOrders"] = bundle(*drafts)
    if hook == "order-select":
        sent["context"]["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts[:selected]]
    return sent


def test_aromatase_inhibitor_before_menopause_without_ovarian_suppression() -> None:
    sent = order("order-select", premenopausal(), draft("72965", "Letrozole", "mr1"))
    body = conforming(call("POST", SELECT, json=sent))
    card = next(c for c in body["cards"] if "ovarian suppression" in c["summary"])
    assert card["indicator"] == "warning" and card["selectionBehavior"] == "at-most-one"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create" and action["resource"]["medicationCodeableConcept"]["text"] == "Goserelin"
    with_gnrh = order("order-select", premenopausal(), draft("72965", "Letrozole", "mr1"),
                      draft("1163443", "Leuprolide Injectable Product", "mr2"))
    body = conforming(call("POST", SELECT, json=with_gnrh))
    assert not any("ovarian suppression" in c["summary"] for c in body["cards"])


def test_biomarker_gated_drug_without_its_biomarker_suggests_what_fits() -> None:
    sent = order("order-sign", premenopausal(), draft("2169285", "Alpelisib", "mr9"))
    body = conforming(call("POST", SIGN, json=sent))
    card = next(c for c in body["cards"] if "does not fit" in c["summary"])
    assert card["summary"].startswith("Alpelisib") and "pik3ca" in card["detail"].lower()
    suggestions = card["suggestions"]
    assert sum(bool(s.get("isRecommended")) for s in suggestions) == 1
    delete = suggestions[0]["actions"][0]
    assert delete == {"type": "delete", "description": "Remove this draft order (mr9)",
                      "resourceId": "MedicationRequest/mr9"}
    created = [a["resource"]["medicationCodeableConcept"]["text"] for a in suggestions[0]["actions"][1:]]
    assert created and "Goserelin" in created          # the option that fits keeps its ovarian suppression


def test_her2_drug_for_triple_negative_is_explained() -> None:
    resources = [patient(), er(NEGATIVE), pr(NEGATIVE), her2_ihc(valueString="0")]
    body = conforming(call("POST", SIGN, json=order("order-sign", resources,
                                                    draft("224905", "Trastuzumab", "mr3"))))
    card = next(c for c in body["cards"] if "does not fit" in c["summary"])
    assert "Trastuzumab" in card["summary"]


def test_second_line_pik3ca_unknown_names_the_test() -> None:
    from tests.fhir.bundles import medication, stage_group

    progressed = concept(coding("http://snomed.info/sct", "266721009", "No response to treatment (situation)"))
    resources = [*premenopausal(), stage_group("IV", date="2024-01-01"),
                 medication("MedicationRequest", "72965", "Letrozole", start="2024-01-10", end="2025-03-01",
                            status="stopped", statusReason=progressed),
                 medication("MedicationRequest", "1601374", "Palbociclib", start="2024-01-10", end="2025-03-01",
                            status="stopped", statusReason=progressed),
                 medication("MedicationRequest", None, "Goserelin 3.6 MG Drug Implant", start="2024-01-10",
                            status="active")]
    for r in resources:
        if r["resourceType"] in ("MedicationRequest", "Observation"):
            r["subject"] = {"reference": "Patient/p1"}
    body = conforming(call("POST", SIGN, json=order("order-sign", resources, draft("2169285", "Alpelisib", "mr9"))))
    card = next(c for c in body["cards"] if "does not fit" in c["summary"])
    assert "not known yet (pik3ca" in card["detail"] and "PIK3CA, AKT1 and PTEN" in card["detail"]


def test_tests_card_says_what_each_test_result_would_add() -> None:
    from mbcnav.engine import evaluate
    from mbcnav.fhir.mcode import import_bundle
    from mbcnav.whatif import what_if

    resources, pid = mitre01(), "mCODETrialMatchingPatientExample01"
    body = conforming(call("POST", PV, json=request("patient-view", pid, prefetch=prefetch_for(resources, pid))))
    card = next(c for c in body["cards"] if c["summary"].startswith("Tests that could open more options"))
    report = import_bundle({"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": r} for r in resources]})
    possible = what_if(report.profile, evaluate(report.profile).recommendation)
    assert possible      # this record leaves HER2 scoring, germline BRCA and NTRK open
    for outcomes in possible.values():
        for outcome in outcomes:
            expected = f"{outcome['label']}: {'; '.join(o['title'] for o in outcome['options'])}."
            assert expected in card["detail"]
