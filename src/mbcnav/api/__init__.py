"""Versioned JSON API under /api/v1 (OpenAPI described; errors as RFC 9457 problem details).

    app.include_router(mbcnav.api.router)
"""

from __future__ import annotations

from fastapi import APIRouter

from mbcnav.api import engine_routes, knowledge_routes
from mbcnav.api.problems import ProblemRoute

router = APIRouter(prefix="/api/v1", tags=["api v1"], route_class=ProblemRoute)
router.include_router(engine_routes.router)
router.include_router(knowledge_routes.router)

__all__ = ["router"]
