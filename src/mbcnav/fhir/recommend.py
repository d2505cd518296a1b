"""Bundle -> (ImportReport, Recommendation): the one call the CLI and the HTTP API share."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mbcnav.engine import recommend
from mbcnav.fhir.mcode import import_bundle
from mbcnav.fhir.report import ImportReport


def recommend_bundle(
    bundle: Mapping[str, Any], *, as_of: dt.date | None = None
) -> tuple[ImportReport, dict[str, Any] | None]:
    """Import a bundle and recommend; the recommendation is None when the profile is not usable
    (``report.profile_problems`` says why, e.g. no sex recorded)."""
    report = import_bundle(bundle, as_of=as_of)
    if not report.usable:
        return report, None
    return report, recommend(report.profile)


def recommend_from_fhir(
    path: str | Path, *, as_of: dt.date | None = None
) -> tuple[ImportReport, dict[str, Any] | None]:
    """Read a FHIR bundle JSON file, import it and recommend (``mbcnav recommend --fhir``).

    Raises OSError when the file cannot be read and ValueError when it is not JSON.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return recommend_bundle(data, as_of=as_of)
