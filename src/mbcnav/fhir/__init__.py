"""EHR integration: FHIR R4 / mCODE import and the CDS Hooks service.

    >>> from mbcnav.fhir import import_bundle, recommend_bundle
    >>> report = import_bundle(bundle)              # profile + found / missing / unreadable
    >>> report, rec = recommend_bundle(bundle)      # rec is None when the profile is not usable
"""

from __future__ import annotations

from mbcnav.fhir.mcode import import_bundle
from mbcnav.fhir.recommend import recommend_bundle, recommend_from_fhir
from mbcnav.fhir.report import ImportReport

__all__ = ["ImportReport", "import_bundle", "recommend_bundle", "recommend_from_fhir"]
