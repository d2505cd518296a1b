"""CDS Hooks 2.0 service: discovery, patient-view, order-select and order-sign, feedback.

    app.include_router(mbcnav.fhir.cds_hooks.router)      # serves /cds-services

patient-view answers with the preferred options (one-line why), tests to consider, interaction
warnings and data gaps, each card linking to the full explanation. order-select / order-sign
warn when a drafted breast cancer drug does not fit the profile and suggest what does. Data come
from the prefetch, else from the client's FHIR server with its bearer token; when neither works
the answer is 412, as the spec says. Every call but the explanation pages must carry the CDS
client's signed JWT once MBCNAV_CDS_CLIENTS lists the trusted clients (`_cds_auth`). CDS clients
call across origins: the app should allow CORS for /cds-services (see docs/api.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mbcnav.engine import evaluate
from mbcnav.fhir import _cds_cards, _cds_orders
from mbcnav.fhir._cds_auth import denial
from mbcnav.fhir._cds_models import Card, CardsResponse, Discovery, ErrorMessage, HookRequest, Link, Source, cards_json
from mbcnav.fhir._cds_prefetch import TEMPLATES, PrefetchUnavailable, gather
from mbcnav.fhir._cds_store import Explanations
from mbcnav.fhir._explanations import STORE, page
from mbcnav.fhir.mcode import import_bundle
from mbcnav.whatif import what_if

router = APIRouter(tags=["CDS Hooks"])

SERVICES: dict[str, dict[str, Any]] = {
    "mbcnav-patient-view": {
        "hook": "patient-view",
        "title": "mbcnav metastatic breast cancer options",
        "description": "Treatment options that fit the patient's metastatic breast cancer (mCODE data), with the "
                       "reason, tests that could open more options and interaction warnings. Information for the "
                       "care team, not a substitute for clinical judgment.",
    },
    "mbcnav-order-select": {
        "hook": "order-select",
        "title": "mbcnav breast cancer drug order check",
        "description": "Warns when a selected breast cancer drug does not fit the patient's profile (for example an "
                       "aromatase inhibitor without ovarian suppression before menopause, or a biomarker-gated drug "
                       "without its biomarker) and suggests the options that fit.",
    },
    "mbcnav-order-sign": {
        "hook": "order-sign",
        "title": "mbcnav breast cancer drug order check (at signing)",
        "description": "The order-select check, run on every draft medication order when the orders are signed.",
    },
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {400: "Not a valid request for this service", 401: "No valid JWT from a trusted CDS client",
               404: "No such service or explanation",
               412: "Required prefetch data is missing and the FHIR server could not be reached"}
    return {code: {"model": ErrorMessage, "description": meaning[code]} for code in codes}


@router.get("/cds-services", summary="CDS Hooks discovery", response_model=Discovery, responses=_errors(401))
async def discovery(request: Request) -> Any:
    if (denied := await denial(request)) is not None:
        return denied
    return {"services": [
        {**meta, "id": sid, "prefetch": dict(TEMPLATES),
         "usageRequirements": "Reads Patient, Observation, Condition and Medication* resources (mCODE). Without "
                              "prefetch the service queries fhirServer with the fhirAuthorization token."}
        for sid, meta in SERVICES.items()]}


def _explanations(request: Request) -> Explanations:
    """The web app's shared store (its database) when it has one, else this process's memory."""
    found: Explanations | None = getattr(request.app.state, "cds_explanations", None)
    return found if found is not None else STORE


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/cds-services/{service_id}", summary="Call a CDS service", response_model=CardsResponse,
             responses=_errors(400, 401, 404, 412))
async def call_service(service_id: str, request: Request) -> Response:
    if (denied := await denial(request)) is not None:
        return denied
    service = SERVICES.get(service_id)
    if service is None:
        return _error(404, f"no CDS service {service_id!r}")
    try:
        hook = HookRequest.model_validate(await request.json())
    except (ValueError, ValidationError) as err:
        return _error(400, f"not a CDS Hooks request: {str(err)[:300]}")
    if hook.hook != service["hook"]:
        return _error(400, f"service {service_id} answers the {service['hook']} hook, not {hook.hook}")
    try:
        bundle = await gather(hook)
    except PrefetchUnavailable as err:
        return _error(412, f"required prefetch data is missing and could not be fetched: {err}")
    except ValueError as err:
        return _error(400, str(err))
    # Import and evaluation are CPU work: keep them off the event loop.
    report = await run_in_threadpool(import_bundle, bundle)
    if not report.usable:
        card = Card(summary="mbcnav could not build a profile from this record", indicator="info",
                    detail="\n".join(f"- {p}" for p in report.profile_problems + report.lines()[:20]),
                    source=Source(label="mbcnav"))
        return JSONResponse(cards_json([card]))
    evaluation = await run_in_threadpool(evaluate, report.profile)
    key = await run_in_threadpool(_explanations(request).put, evaluation, report)
    link = Link(label="Full explanation (mbcnav)", url=str(request.url_for("cds_explanation", key=key)))
    if service["hook"] == "patient-view":
        possible = await run_in_threadpool(what_if, report.profile, evaluation.recommendation)
        cards: list[Card] = _cds_cards.patient_view(evaluation.recommendation, report, link, possible)
    else:
        cards = _cds_orders.check(evaluation, hook.context, service["hook"], link)
    return JSONResponse(cards_json(cards))


@router.post("/cds-services/{service_id}/feedback", summary="Card feedback (accepted / overridden)",
             response_model=dict[str, str], responses=_errors(400, 401, 404))
async def feedback(service_id: str, request: Request) -> Response:
    if (denied := await denial(request)) is not None:
        return denied
    if service_id not in SERVICES:
        return _error(404, f"no CDS service {service_id!r}")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "feedback must be JSON")
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        return _error(400, "feedback must be an object with a 'feedback' list")
    # Feedback is acknowledged, not stored: it can carry patient context and mbcnav keeps none.
    return JSONResponse({})


@router.get("/cds-services/explanations/{key}", name="cds_explanation", response_class=HTMLResponse,
            summary="The full explanation a card links to",
            responses={404: {"description": "Expired or unknown", "content": {"text/html": {}}}})
def explanation(key: str, request: Request) -> Response:
    item = _explanations(request).get(key)
    if item is None:
        return HTMLResponse("<p>This explanation has expired. Open the patient again in the EHR.</p>", status_code=404)
    pdf = str(request.url_for("cds_explanation_pdf", key=key))
    return HTMLResponse(page(item, pdf))


@router.get("/cds-services/explanations/{key}/summary.pdf", name="cds_explanation_pdf",
            summary="The one-page PDF summary behind a card", response_class=Response,
            responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The PDF"}, **_errors(404)})
def explanation_pdf(key: str, request: Request) -> Response:
    item = _explanations(request).get(key)
    if item is None:
        return _error(404, "this explanation has expired")
    from mbcnav.render.report_pdf import report_pdf

    return Response(report_pdf(item.evaluation, notes=item.report.notes), media_type="application/pdf")
