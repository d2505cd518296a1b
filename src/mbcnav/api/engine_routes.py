"""POST /recommend, /explain, /recommend/fhir and /report: the engine over HTTP.

Bodies are the contract Profile (validated by the engine's own parser, so errors read exactly
as on the CLI); answers are the engine's dicts, unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mbcnav.api import models
from mbcnav.api.problems import Problem, ProblemRoute, field_errors, responses
from mbcnav.engine import evaluate
from mbcnav.profile import Profile

router = APIRouter(route_class=ProblemRoute)


class BundleEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str | None = None
    resource: dict[str, Any] | None = None


class FhirBundle(BaseModel):
    """A FHIR R4 Bundle (mCODE); only the envelope is described here, resources are read one by one."""

    model_config = ConfigDict(extra="allow")

    resourceType: str = Field(description="'Bundle'")
    type: str | None = None
    entry: list[BundleEntry] = Field(default_factory=list)


@router.post("/recommend", response_model=models.Recommendation, summary="Recommendation for a profile",
             responses=responses("invalid-json", "invalid-profile"))
async def recommend(profile: Profile) -> Response:
    """The contract v1 Recommendation for a contract v1 Profile (the same JSON as `mbcnav recommend`)."""
    return JSONResponse(evaluate(profile).recommendation)


@router.post("/what-if", response_model=models.WhatIf, summary="What each pending test result would add",
             responses=responses("invalid-json", "invalid-profile"))
async def what_if_route(profile: Profile) -> Response:
    """For each suggested test with spelled-out results, the options each result would add (the engine run
    again with that result). They are possibilities kept apart from the Recommendation, never offered options."""
    from mbcnav.whatif import what_if

    data = profile.model_dump(mode="json", exclude_none=True)
    rec = evaluate(profile).recommendation
    possible = what_if(data, rec)
    return JSONResponse({"knowledge_version": rec["knowledge_version"],
                         "tests": [{"id": t["id"], "test": t["test"], "outcomes": possible[t["id"]]}
                                   for t in rec["tests_to_consider"] if t["id"] in possible]})


@router.post("/explain", response_model=models.Explanation, summary="Every rule, the facts it saw, its verdict",
             responses=responses("invalid-json", "invalid-profile"))
async def explain(profile: Profile) -> Response:
    """The trace behind a recommendation: derived facts and every rule's clauses (as `mbcnav explain`)."""
    ev = evaluate(profile)
    return JSONResponse({"facts": ev.facts, "rules": [r.as_dict() for r in ev.results],
                         "recommendation": ev.recommendation})


@router.post("/recommend/fhir", response_model=models.FhirRecommendation, summary="Recommendation for a FHIR bundle",
             responses=responses("invalid-json", "invalid-request", "unusable-bundle"))
def recommend_fhir(bundle: FhirBundle) -> Response:
    """Import one patient's FHIR R4 / mCODE bundle, then recommend. The import report says which resource
    each value came from and what was missing or unreadable."""
    from mbcnav.fhir import recommend_bundle

    report, rec = recommend_bundle(bundle.model_dump(exclude_none=True))
    if rec is None:
        raise Problem("unusable-bundle", "; ".join(report.profile_problems), field_errors(report.profile_problems),
                      import_report=report.model_dump(mode="json"))
    return JSONResponse({"import_report": report.model_dump(mode="json"), "recommendation": rec})


@router.post("/report", summary="One-page clinician summary (PDF)", response_class=Response,
             responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "The PDF"}, **responses("invalid-json", "invalid-profile")})
def report(profile: Profile) -> Response:
    """A one-page professional summary for the chart: profile as understood, options with evidence levels and
    citations, tests to consider, interactions, knowledge version and disclaimer."""
    from mbcnav.render.report_pdf import report_pdf

    pdf = report_pdf(evaluate(profile))
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="mbcnav-summary.pdf"'})
