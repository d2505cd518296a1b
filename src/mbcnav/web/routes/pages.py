"""Pages anyone can browse without a profile: home, treatment categories, medicines, sources."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from mbcnav.knowledge import schema as s
from mbcnav.knowledge.loader import knowledge
from mbcnav.web import guide_session
from mbcnav.web.content import Category, categories, category_of
from mbcnav.web.security import require_csrf
from mbcnav.web.services import Services, services
from mbcnav.web.view import LEVEL_LABEL, QuestionView

router = APIRouter(dependencies=[Depends(require_csrf)])
Svc = Annotated[Services, Depends(services)]
EXAMPLES = {
    "hr_positive_postmenopausal_first_line": "Hormone receptor-positive, first treatment, after menopause",
    "her2_positive_first_line": "HER2-positive, first treatment",
    "triple_negative_pdl1_high": "Triple-negative with a high PD-L1 score",
    "hr_positive_second_line_esr1_pik3ca": "Hormone receptor-positive, second treatment, ESR1 and PIK3CA changes",
    "male_hr_positive": "A man with hormone receptor-positive cancer",
}
SOURCE_KIND = {
    "guideline": "Guidelines", "trial": "Clinical trials", "label": "Drug labels", "regulatory": "Regulatory decisions",
    "review": "Reviews", "consensus": "Consensus statements", "seed": "Earlier patient materials", "other": "Other",
}
STATUS_LABEL = {
    "approved": "", "off_label": "Used off-label", "historical": "No longer used for breast cancer",
    "investigational": "Only in clinical trials", "procedure": "",
}


def _category(slug: str) -> Category:
    for category in categories():
        if category.slug == slug:
            return category
    raise HTTPException(status_code=404)


def drugs_by_heading() -> list[tuple[Category, list[s.Drug]]]:
    grouped: dict[str, list[s.Drug]] = defaultdict(list)
    for drug in knowledge().drugs.values():
        grouped[category_of(drug.category).slug].append(drug)
    return [(c, sorted(grouped[c.slug], key=lambda d: d.name.lower())) for c in categories() if grouped[c.slug]]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, svc: Svc) -> HTMLResponse:
    return svc.renderer.page(request, "home.html", examples=EXAMPLES)


@router.get("/treatments", response_class=HTMLResponse)
async def treatments(request: Request, svc: Svc) -> HTMLResponse:
    return svc.renderer.page(request, "treatments.html")


@router.get("/treatments/{slug}", response_class=HTMLResponse)
async def treatment_category(slug: str, request: Request, svc: Svc) -> HTMLResponse:
    category = _category(slug)
    kb = knowledge()
    drugs = sorted((d for d in kb.drugs.values() if d.category in category.engine), key=lambda d: d.name.lower())
    uses = sorted({r.plain_title for r in kb.rules if r.category in category.engine and r.kind != "not_recommended"})
    questions = [QuestionView(q.id, q.text, False, q.category) for q in kb.questions
                 if q.when is None and q.category in category.engine]
    guide = guide_session.load(request.session)
    return svc.renderer.page(request, "category.html", category=category, drugs=drugs, uses=uses, guide=guide,
                             questions=questions, in_guide=guide_session.origins(guide), status_label=STATUS_LABEL)


@router.get("/medicines", response_class=HTMLResponse)
async def medicines(request: Request, svc: Svc) -> HTMLResponse:
    return svc.renderer.page(request, "medicines.html", groups=drugs_by_heading(), status_label=STATUS_LABEL)


@router.get("/medicines/{drug_id}", response_class=HTMLResponse)
async def medicine(drug_id: str, request: Request, svc: Svc, view: str = "patient") -> HTMLResponse:
    kb = knowledge()
    drug = kb.drugs.get(drug_id)
    if drug is None:
        raise HTTPException(status_code=404)
    used_in = sorted({r.plain_title for r in kb.rules if r.kind != "not_recommended"
                      and any(drug_id in component for component in r.drugs)})
    return svc.renderer.page(request, "medicine.html", drug=drug, category=category_of(drug.category),
                             used_in=used_in, sources=[kb.sources[x] for x in drug.sources], pro=view == "pro",
                             status_label=STATUS_LABEL)


@router.get("/sources", response_class=HTMLResponse)
async def sources(request: Request, svc: Svc) -> HTMLResponse:
    grouped: dict[str, list[s.Source]] = defaultdict(list)
    for source in knowledge().sources.values():
        grouped[source.kind].append(source)
    groups = [(SOURCE_KIND[k], sorted(grouped[k], key=lambda x: x.citation.lower())) for k in SOURCE_KIND if grouped[k]]
    return svc.renderer.page(request, "sources.html", groups=groups, total=len(knowledge().sources),
                             level_label=LEVEL_LABEL)


@router.get("/privacy", response_class=HTMLResponse)
async def privacy(request: Request, svc: Svc) -> HTMLResponse:
    return svc.renderer.page(request, "privacy.html", session_days=svc.settings.session_max_age_days)


@router.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
async def healthz() -> str:
    return "ok"
