"""patient-view cards: preferred options with a one-line why, tests, interactions, data gaps.

Cards are views of one Recommendation (style anchors §2 and convention 11): summary from the
title, detail (markdown) from why / cautions / evidence, source from the first citation, and a
link to the full explanation. Emergencies come first as critical cards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from mbcnav.fhir._cds_models import Card, Coding, Link, Source
from mbcnav.fhir.report import ImportReport

MAX_OPTION_CARDS = 3
OVERRIDE_SYSTEM = "https://mbcnav.org/cds/override-reason"
OVERRIDE_REASONS = [
    Coding(code="already-addressed", system=OVERRIDE_SYSTEM, display="Already addressed"),
    Coding(code="not-applicable", system=OVERRIDE_SYSTEM, display="Does not apply to this patient"),
    Coding(code="patient-declined", system=OVERRIDE_SYSTEM, display="Patient declined"),
]
KEY_FIELDS = ("tumor.er", "tumor.pr", "tumor.her2", "disease.sites", "health.ecog", "menopausal_status")


def short_citation(citation: str) -> str:
    """'Burstein HJ, et al. Endocrine ... J Clin Oncol. 2021;39...' -> 'Burstein HJ, et al., J Clin Oncol. 2021'."""
    first = citation.split(". ")[0]
    year = re.search(r"\b(19|20)\d{2}\b", citation)
    return f"{first[:60]}{', ' + year.group(0) if year else ''}"


def source_for(rec: dict[str, Any], entry: dict[str, Any] | None = None) -> Source:
    evidence = (entry or {}).get("evidence") or []
    label = f"mbcnav knowledge {rec['knowledge_version']}"
    if evidence:
        return Source(label=f"{label}; {short_citation(evidence[0]['source'])}", url=evidence[0].get("url"))
    return Source(label=label)


def _option_card(rec: dict[str, Any], entry: dict[str, Any], link: Link,
                 indicator: Literal["info", "warning", "critical"] = "info") -> Card:
    drugs = " + ".join(" or ".join(c) for c in entry["drugs"])
    why = entry["why"][0] if entry["why"] else ""
    detail = [f"**{entry['title']}** ({entry['tier'].replace('_', ' ')}, {rec['decision_point']})", "",
              f"**Why:** {why}", "", f"**Drugs:** {drugs}"]
    if entry.get("cautions"):
        detail += ["", "**Cautions:** " + " ".join(entry["cautions"])]
    for ev in entry.get("evidence", [])[:3]:
        detail.append(f"- *{ev['level'].replace('_', ' ')}*: {ev['summary']} ({short_citation(ev['source'])})")
    prefix = "Urgent: " if entry.get("urgent") else "Consider: "
    return Card(summary=f"{prefix}{entry['title']}", indicator=indicator,
                detail="\n".join(detail), source=source_for(rec, entry), links=[link])


def _test_line(test: dict[str, Any], possible: Mapping[str, list[dict[str, Any]]]) -> str:
    line = f"- **{test['test']}**: {test['why']}"
    outcomes = possible.get(test.get("id", ""), [])
    if outcomes:
        return line + "".join(f" {o['label']}: {'; '.join(x['title'] for x in o['options'])}." for o in outcomes)
    return line + (f" Could open: {'; '.join(test['could_open'])}." if test.get("could_open") else "")


def patient_view(rec: dict[str, Any], report: ImportReport, link: Link,
                 possible: Mapping[str, list[dict[str, Any]]] | None = None) -> list[Card]:
    """`possible`: what each suggested test's results would add (whatif.what_if), for the tests card."""
    cards: list[Card] = [_option_card(rec, e, link, "critical") for e in rec["local_and_supportive"] if e.get("urgent")]
    preferred = [o for o in rec["options"] if o["tier"] == "preferred"] or rec["options"][:1]
    cards += [_option_card(rec, o, link) for o in preferred[:MAX_OPTION_CARDS]]
    if rec["tests_to_consider"]:
        names = ", ".join(t["test"] for t in rec["tests_to_consider"])
        detail = "\n".join(_test_line(t, possible or {}) for t in rec["tests_to_consider"])
        cards.append(Card(summary=f"Tests that could open more options: {names}", indicator="info", detail=detail,
                          source=source_for(rec), links=[link]))
    for inter in rec["interactions"]:
        cards.append(Card(
            summary=f"Interaction: {' + '.join(inter['drugs'])} ({inter['severity']})",
            indicator="warning" if inter["severity"] in ("major", "moderate") else "info",
            detail=f"{inter['professional']}\n\n*For the patient:* {inter['advice']}",
            source=Source(label=short_citation(inter["sources"][0]) if inter["sources"] else "mbcnav knowledge"),
            overrideReasons=OVERRIDE_REASONS, links=[link]))
    gap = data_card(rec, report, link)
    if gap is not None:
        cards.append(gap)
    return cards


def data_card(rec: dict[str, Any], report: ImportReport, link: Link) -> Card | None:
    """What mbcnav could not read from the record: the basis of every other card."""
    missing = [m.field for s in report.sections.values() for m in s.missing if m.field in KEY_FIELDS]
    unreadable = [u for s in report.sections.values() for u in s.unreadable]
    if not missing and not unreadable and not rec["warnings"]:
        return None
    lines = [f"- Missing: {', '.join(missing)}"] if missing else []
    lines += [f"- Could not read {u.resource}: {u.reason}" for u in unreadable[:8]]
    lines += [f"- {w}" for w in rec["warnings"]]
    lines += [f"- Note: {n}" for n in report.notes if "newest" in n or "disagree" in n]
    summary = "mbcnav: points to check in this record"
    if missing or unreadable:
        summary = f"mbcnav could not read {len(unreadable)} record(s); missing: {', '.join(missing) or 'nothing key'}"
    return Card(summary=summary, indicator="info", detail="\n".join(lines), source=source_for(rec), links=[link])
