"""The /api/v1 routes: contract behaviour, problem details naming the field, OpenAPI precision."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

import mbcnav
from mbcnav.api import models
from mbcnav.knowledge.loader import knowledge
from tests.api.client import APP, call
from tests.fhir.bundles import FHIR_FIXTURES, bundle, patient

EXAMPLES = sorted(p.name for p in (resources.files("mbcnav") / "examples").iterdir() if p.name.endswith(".json"))


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((resources.files("mbcnav") / "examples" / name).read_text(encoding="utf-8"))
    return data


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/api/v1/problems/{kind}" and body["status"] == status
    assert body["title"] and body["detail"] and isinstance(body["errors"], list)
    return body


@pytest.mark.parametrize("name", EXAMPLES)
def test_recommend_is_the_contract_answer(name: str) -> None:
    response = call("POST", "/api/v1/recommend", json=example(name))
    assert response.status_code == 200
    assert response.json() == mbcnav.recommend(example(name))
    models.Recommendation.model_validate(response.json())       # every emitted field is described


def test_invalid_profile_names_each_field() -> None:
    body = problem(call("POST", "/api/v1/recommend", json={
        "sex": "male", "menopausal_status": "pre", "tumor": {"er": "maybe"},
        "history": {"metastatic": [{"drugs": ["Kisqaly"]}]}}), 422, "invalid-profile")
    fields = {e["field"] for e in body["errors"]}
    assert "tumor.er" in fields and "history.metastatic[0].drugs" in fields
    er = next(e for e in body["errors"] if e["field"] == "tumor.er")
    assert "allowed values" in er["message"] and "'positive'" in er["message"]
    drug = next(e for e in body["errors"] if e["field"] == "history.metastatic[0].drugs")
    assert "Kisqali" in drug["message"]
    consistency = problem(call("POST", "/api/v1/recommend", json={"sex": "male", "menopausal_status": "pre"}),
                          422, "invalid-profile")
    assert consistency["errors"][0]["field"] == "menopausal_status"
    assert problem(call("POST", "/api/v1/recommend", json={}), 422, "invalid-profile")["errors"] == [
        {"field": "sex", "message": "required"}]
    not_object = problem(call("POST", "/api/v1/recommend", json=[1]), 422, "invalid-profile")
    assert not_object["errors"][0]["field"] == "profile"


def test_a_key_given_twice_is_rejected_by_name_not_guessed() -> None:
    """JSON readers disagree on which value of a repeated key wins: the API refuses to guess."""
    body = b'{"sex": "female", "tumor": {"er": "positive", "pr": "negative", "er": "negative"}}'
    response = call("POST", "/api/v1/recommend", content=body, headers={"content-type": "application/json"})
    assert problem(response, 422, "invalid-profile")["errors"] == [
        {"field": "tumor.er", "message": "given more than once; give each field only once"}]


def test_invalid_json_is_400() -> None:
    response = call("POST", "/api/v1/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert problem(response, 400, "invalid-json")["errors"] == [{"field": "body", "message": "not valid JSON"}]


def test_explain_traces_every_rule() -> None:
    response = call("POST", "/api/v1/explain", json=example(EXAMPLES[0]))
    assert response.status_code == 200
    data = models.Explanation.model_validate(response.json())
    assert len(data.rules) == len(knowledge().rules)
    assert "subtype" in data.facts and data.recommendation.contract == "1"


def test_what_if_lists_what_each_test_result_would_add() -> None:
    from mbcnav.whatif import what_if
    from tests.test_whatif import HER2_EQUIVOCAL

    response = call("POST", "/api/v1/what-if", json=HER2_EQUIVOCAL)
    assert response.status_code == 200
    data = models.WhatIf.model_validate(response.json())
    assert data.knowledge_version == knowledge().version
    assert {t.id: [o.model_dump() for o in t.outcomes] for t in data.tests} == what_if(HER2_EQUIVOCAL)
    assert [t.id for t in data.tests] == ["her2_ish"]
    brand = call("POST", "/api/v1/what-if", json={**HER2_EQUIVOCAL, "current_medications": ["Zoloft"]})
    assert brand.status_code == 200
    bad = call("POST", "/api/v1/what-if", json={**HER2_EQUIVOCAL, "sex": "unknown-value"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_drugs_and_brand_lookup() -> None:
    listing = call("GET", "/api/v1/drugs").json()
    assert len(listing) == len(knowledge().drugs) and {"id", "brands", "classes"} <= set(listing[0])
    ribociclib = call("GET", "/api/v1/drugs/Kisqali").json()
    assert ribociclib["id"] == "ribociclib" and ribociclib["sources"][0]["citation"]
    models.Drug.model_validate(ribociclib)
    missing = problem(call("GET", "/api/v1/drugs/Kisqaly"), 404, "drug-not-found")
    assert "Kisqali" in missing["errors"][0]["message"] and missing["errors"][0]["field"] == "name"
    assert "is a treatment" in problem(call("GET", "/api/v1/drugs/radiation"), 404, "drug-not-found")["detail"]


def test_sources_and_knowledge_dates() -> None:
    sources = call("GET", "/api/v1/sources").json()
    assert len(sources) == len(knowledge().sources) and all(s["reviewed"] for s in sources)
    info = call("GET", "/api/v1/knowledge").json()
    assert info["version"] == mbcnav.__knowledge_version__ and info["contract"] == "1"
    assert info["oldest_review"] <= info["last_reviewed"]


def test_interactions() -> None:
    result = call("POST", "/api/v1/interactions", json={"drugs": ["Nolvadex"], "medications": ["Paxil", "tea"]}).json()
    assert result["unmatched_medications"] == ["tea"]
    assert result["interactions"][0]["drugs"] == ["tamoxifen", "paroxetine"]
    assert result["interactions"][0]["severity"] == "major"
    bad = problem(call("POST", "/api/v1/interactions", json={"drugs": ["tamoxifen", "tamoxifun"]}), 422,
                  "unknown-drug")
    assert bad["errors"][0]["field"] == "drugs[1]"
    wrong = problem(call("POST", "/api/v1/interactions", json={"drugs": "tamoxifen"}), 422, "invalid-request")
    assert wrong["errors"][0]["field"] == "drugs"


def test_recommend_from_a_fhir_bundle() -> None:
    data = json.loads((FHIR_FIXTURES / "mcode-ctm-app" / "TrialMatching_Patient01.json").read_text())
    response = call("POST", "/api/v1/recommend/fhir", json=data)
    assert response.status_code == 200, response.text
    body = models.FhirRecommendation.model_validate(response.json())
    assert body.recommendation.subtype == "hr_positive_her2_negative"
    assert body.import_report.profile["disease"]["sites"] == ["bone", "liver", "lymph_nodes"]
    unusable = problem(call("POST", "/api/v1/recommend/fhir", json=bundle(patient(gender=None))), 422,
                       "unusable-bundle")
    assert unusable["errors"][0]["field"] == "sex" and "import_report" in unusable
    problem(call("POST", "/api/v1/recommend/fhir", json=[]), 422, "invalid-request")


def test_report_is_a_pdf() -> None:
    response = call("POST", "/api/v1/report", json=example(EXAMPLES[0]))
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    problem(call("POST", "/api/v1/report", json={"sex": "x"}), 422, "invalid-profile")


def test_every_problem_type_dereferences() -> None:
    from mbcnav.api.problems import TYPES

    for name, (status, title, _) in TYPES.items():
        data = call("GET", f"/api/v1/problems/{name}").json()
        assert data["status"] == status and data["title"] == title
    problem(call("GET", "/api/v1/problems/nope"), 404, "drug-not-found")


def test_openapi_document_is_precise() -> None:
    doc = APP.openapi()
    paths = doc["paths"]
    for path in ("/api/v1/recommend", "/api/v1/explain", "/api/v1/drugs", "/api/v1/drugs/{name}", "/api/v1/sources",
                 "/api/v1/knowledge", "/api/v1/interactions", "/api/v1/recommend/fhir", "/api/v1/report"):
        assert path in paths
    recommend = paths["/api/v1/recommend"]["post"]
    assert "application/problem+json" in recommend["responses"]["422"]["content"]
    assert "application/json" not in recommend["responses"]["422"]["content"]
    schema = doc["components"]["schemas"]
    option = schema["Option"]["properties"]
    assert {"plain_title", "category", "urgent"} <= set(option)
    assert {"source_id", "url"} <= set(schema["Evidence"]["properties"])
    assert {"id", "could_open"} <= set(schema["TestToConsider"]["properties"])
    assert {"id", "professional", "sources"} <= set(schema["Interaction"]["properties"])
    assert "disclaimer" in schema["Recommendation"]["required"]
    assert schema["Recommendation"]["additionalProperties"] is False
