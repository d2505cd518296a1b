"""Candidates for profile fields, and how several of them become one value.

Every reader offers candidates (value, date, resource); nothing is written into the profile
directly. When several results exist for one field, the newest wins and the report says so;
when the newest cannot be told (no date, same day, overlapping partial dates) and the results
disagree, the field stays unknown. Unknown never becomes positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mbcnav.fhir._codes import CodeBook
from mbcnav.fhir._values import Moment
from mbcnav.fhir.report import Found, ImportReport, Missing, Unreadable

LABELS = {
    "tumor.er": "ER", "tumor.pr": "PR", "her2.ihc": "HER2 IHC", "her2.ish": "HER2 ISH",
    "her2.overall": "HER2 interpretation", "health.ecog": "ECOG", "menopausal_status": "menopausal status",
    "tumor.pik3ca": "PIK3CA", "tumor.esr1": "ESR1", "tumor.akt1": "AKT1", "tumor.pten": "PTEN",
    "gene.BRCA1": "germline BRCA1", "gene.BRCA2": "germline BRCA2", "tumor.germline_palb2": "germline PALB2",
    "tumor.pdl1_cps": "PD-L1 CPS", "tumor.msi": "MSI", "tumor.tmb": "TMB", "stage_group": "stage group",
    "m_category": "M category",
}


@dataclass(frozen=True)
class Candidate:
    field: str
    value: Any
    when: Moment | None
    resource: str
    detail: str
    section: str = "Observation"


@dataclass
class Collector:
    """Builds the ImportReport while readers walk the bundle."""

    book: CodeBook
    report: ImportReport = field(default_factory=lambda: ImportReport(profile={}))
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)

    def offer(self, candidate: Candidate) -> None:
        self.candidates.setdefault(candidate.field, []).append(candidate)

    def unreadable(self, section: str, resource: str, reason: str) -> None:
        self.report.sections[section].unreadable.append(Unreadable(resource=resource, reason=reason))

    def ignored(self, section: str, resource: str, reason: str) -> None:
        self.report.sections[section].ignored.append(Unreadable(resource=resource, reason=reason))

    def missing(self, section: str, field_name: str, reason: str) -> None:
        self.report.sections[section].missing.append(Missing(field=field_name, reason=reason))

    def found(self, candidate: Candidate, field_name: str | None = None, value: Any = None) -> None:
        self.report.sections[candidate.section].found.append(Found(
            field=field_name or candidate.field,
            value=candidate.value if value is None else value,
            resource=candidate.resource,
            detail=candidate.detail,
            date=candidate.when.text if candidate.when else None,
        ))

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    def resolve(self, name: str) -> Candidate | None:
        """The one candidate to use for a field, or None (absent, or conflicting and undecidable)."""
        found = self.candidates.get(name, [])
        if not found:
            return None
        label = LABELS.get(name, name)
        values = {_key(c.value) for c in found}
        if len(values) == 1:
            chosen = newest(found) or found[0]
            if len(found) > 1:
                self.note(f"{len(found)} {label} results agree ({_show(chosen.value)}); used the one "
                          f"from {_when(chosen)} ({chosen.resource}).")
            return chosen
        winner = newest(found)
        if winner is None:
            listing = "; ".join(f"{_show(c.value)} ({_when(c)}, {c.resource})" for c in found)
            self.note(f"{len(found)} {label} results disagree and the newest cannot be told: {listing}. "
                      f"{label} left unknown.")
            return None
        older = "; ".join(f"{_show(c.value)} ({_when(c)})" for c in found if c is not winner)
        self.note(f"{len(found)} {label} results; used the newest ({_when(winner)}): {_show(winner.value)}. "
                  f"Older: {older}.")
        return winner


def newest(found: list[Candidate]) -> Candidate | None:
    """The candidate wholly after every other one; None when dates are missing or overlap."""
    if any(c.when is None for c in found) and len({_key(c.value) for c in found}) > 1:
        return None
    dated = [c for c in found if c.when is not None]
    if not dated:
        return None
    best = max(dated, key=lambda c: (c.when.start if c.when else None, c.resource))
    for other in dated:
        if other is best or _key(other.value) == _key(best.value):
            continue
        assert best.when is not None and other.when is not None
        if not other.when.before(best.when):
            return None
    return best


def _key(value: Any) -> str:
    return repr(value)


def _show(value: Any) -> str:
    return str(value)


def _when(candidate: Candidate) -> str:
    return candidate.when.text if candidate.when else "no date"
