"""GET /drugs, /drugs/{name}, /sources, /knowledge; POST /interactions; GET /problems/{name}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mbcnav.api import models
from mbcnav.api.problems import PREFIX, TYPES, Problem, ProblemRoute, responses
from mbcnav.engine import CONTRACT_VERSION, _interactions, _medication_ids
from mbcnav.knowledge.loader import knowledge
from mbcnav.knowledge.schema import Drug
from mbcnav.vocabulary import UnknownDrugError, normalise_drug

router = APIRouter(route_class=ProblemRoute)


def _summary(drug: Drug) -> dict[str, Any]:
    return {"id": drug.id, "name": drug.name, "brands": drug.brands, "classes": drug.classes,
            "category": drug.category, "status": drug.status, "route": drug.route}


@router.get("/drugs", response_model=list[models.DrugSummary], summary="The drug catalogue")
def drugs() -> list[dict[str, Any]]:
    """Every drug the knowledge base knows, by generic id, with brands and classes."""
    return [_summary(d) for d in sorted(knowledge().drugs.values(), key=lambda d: d.id)]


@router.get("/drugs/{name}", response_model=models.Drug, summary="One drug, by generic or brand name",
            responses=responses("drug-not-found"))
def drug(name: str) -> dict[str, Any]:
    """A catalogue entry (dose and schedule, side effects, monitoring, sources); brand names are accepted."""
    kb = knowledge()
    try:
        ids = normalise_drug(name)
    except UnknownDrugError as err:
        raise Problem("drug-not-found", str(err), [("name", str(err))]) from None
    entry = kb.drugs.get(ids[0])
    if entry is None:
        message = f"{name!r} is a treatment ({ids[0]}), not a drug in the catalogue"
        raise Problem("drug-not-found", message, [("name", message)])
    data = entry.model_dump(mode="json")
    data["sources"] = [{"id": s, "citation": kb.sources[s].citation, "url": kb.sources[s].url} for s in entry.sources]
    return data


@router.get("/sources", response_model=list[models.Source], summary="Every source, with its review date")
def sources() -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in sorted(knowledge().sources.values(), key=lambda s: s.id)]


@router.get("/knowledge", response_model=models.KnowledgeInfo, summary="Knowledge-base version and review dates")
def knowledge_info() -> dict[str, Any]:
    kb = knowledge()
    reviewed = [item.reviewed for item in kb.reviewed_items()]
    return {"version": kb.version, "contract": CONTRACT_VERSION, "last_reviewed": max(reviewed),
            "oldest_review": min(reviewed),
            "counts": {"rules": len(kb.rules), "drugs": len(kb.drugs), "sources": len(kb.sources),
                       "tests": len(kb.tests), "interactions": len(kb.interactions)}}


@router.post("/interactions", response_model=models.InteractionResult, summary="Interactions of drugs with medicines",
             responses=responses("invalid-json", "invalid-request", "unknown-drug"))
def interactions(body: models.InteractionRequest) -> dict[str, Any]:
    """Known interactions between cancer drugs and other medicines, as the engine reports them."""
    kb = knowledge()
    ids: set[str] = set()
    errors = []
    for i, name in enumerate(body.drugs):
        try:
            ids.update(normalise_drug(name))
        except UnknownDrugError as err:
            errors.append((f"drugs[{i}]", str(err)))
    if errors:
        raise Problem("unknown-drug", "; ".join(m for _, m in errors), errors)
    meds, unmatched = _medication_ids(kb, body.medications)
    return {"interactions": _interactions(kb, ids, meds), "unmatched_medications": unmatched}


@router.get("/problems/{name}", response_model=models.ProblemType, summary="What a problem type means",
            responses=responses("drug-not-found"))
def problem_type(name: str) -> dict[str, Any]:
    """The `type` of every error document points here."""
    if name not in TYPES:
        raise Problem("drug-not-found", f"no problem type {name!r}", [("name", f"one of {', '.join(TYPES)}")])
    status, title, description = TYPES[name]
    return {"type": PREFIX + name, "status": status, "title": title, "description": description}
