"""Medication courses -> early treatment, metastatic lines and current medicines.

A cancer drug is early (curative) treatment when it started clearly before the first metastatic
diagnosis, and metastatic treatment when it started on or after it. With a clinical or
pathological stage IV at diagnosis (de novo), every treatment is metastatic. Anything else, a
missing date or a start within 30 days before the diagnosis, is reported as undetermined and
left out: the report says so instead of guessing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mbcnav.fhir._collect import Collector
from mbcnav.fhir._medications import Course
from mbcnav.fhir._values import Moment, months_between
from mbcnav.fhir.report import Found
from mbcnav.knowledge.loader import knowledge

SAME_COURSE_DAYS = 42    # repeated doses or refills of one drug this close together are one course
SAME_LINE_DAYS = 28      # drugs started this close together form one line of treatment
UNSURE_DAYS = 30         # a start this close before the metastatic diagnosis could be either
GNRH = {"goserelin", "leuprolide", "triptorelin"}


@dataclass
class Metastatic:
    """When the cancer was first known to have spread, and how that was decided."""

    date: Moment | None
    how: str
    de_novo: bool | None
    upper_bound: bool = False    # an undated secondary cancer could be older than `date`


@dataclass
class History:
    early: list[dict[str, Any]] = field(default_factory=list)
    metastatic: list[dict[str, Any]] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    ovarian_suppressed: bool | None = None


def _merge(courses: list[Course]) -> list[Course]:
    """Join records of the same drug that are really one course (doses, refills, duplicates)."""
    out: list[Course] = []
    for course in sorted(courses, key=lambda c: (c.drugs, c.start.start if c.start else dt.date.max)):
        last = out[-1] if out else None
        if (last is not None and last.drugs == course.drugs and last.start and course.start
                and (course.start.start - (last.end or last.start).end).days <= SAME_COURSE_DAYS):
            end = max((m for m in (last.end, course.end, course.start) if m), key=lambda m: m.end)
            out[-1] = Course(last.drugs, last.name, None, last.start, end, last.active or course.active,
                             course.stop or last.stop, f"{last.ref}, {course.ref}", last.how, last.kind)
        else:
            out.append(course)
    return out


def _line_defining(drugs: tuple[str, ...]) -> bool:
    kb = knowledge()
    return any(kb.drugs[d].category != "supportive_care" and not (set(kb.drugs[d].classes) & {"ovarian_suppression"})
               for d in drugs if d in kb.drugs)


def build(col: Collector, courses: list[Course], met: Metastatic, sex: str | None) -> History:
    history = History()
    cancer = [c for c in courses if c.drugs]
    for course in courses:
        if not course.drugs:
            if course.active:
                history.current.append(course.medication or course.name)
                col.report.sections["Medication"].found.append(Found(
                    field="current_medications", value=course.medication or course.name, resource=course.ref,
                    detail=f"active, {course.how}" + ("" if course.medication else " (not a medicine mbcnav knows)")))
            else:
                col.ignored("Medication", course.ref, f"{course.name}: not active and not a cancer drug")
    supportive = [c for c in cancer if not _line_defining(c.drugs) and not set(c.drugs) & GNRH]
    for course in supportive:
        if course.active:
            history.current.extend(course.drugs)
        col.note(f"{', '.join(course.drugs)} ({course.ref}) is supportive care, not a line of cancer treatment.")
    if sex == "female" and any(c.active and set(c.drugs) & GNRH for c in cancer):
        history.ovarian_suppressed = True
        col.note("An active GnRH agonist (goserelin, leuprolide or triptorelin) is recorded: ovarian function "
                 "taken as suppressed.")
    early, metastatic = _classify(col, _merge([c for c in cancer if c not in supportive]), met)
    history.early = [_early_entry(col, c, met) for c in early]
    history.metastatic = _lines(col, metastatic)
    return history


def _classify(col: Collector, courses: list[Course], met: Metastatic) -> tuple[list[Course], list[Course]]:
    early: list[Course] = []
    metastatic: list[Course] = []
    for course in courses:
        label = f"{', '.join(course.drugs)} ({course.ref})"
        if met.de_novo:
            metastatic.append(course)
        elif met.date is None:
            col.unreadable("Medication", course.ref, f"{label}: cannot tell whether it was early or metastatic "
                           f"treatment ({met.how}); not added to the history")
        elif course.start is None:
            col.unreadable("Medication", course.ref, f"{label}: no start date, so early or metastatic treatment "
                           "cannot be told; not added to the history")
        elif course.start.start >= met.date.start:
            metastatic.append(course)
        elif met.upper_bound:
            col.unreadable("Medication", course.ref, f"{label}: started {course.start.text}, before the first dated "
                           f"metastasis ({met.date.text}), but an undated secondary cancer could be older; early "
                           "or metastatic cannot be told; not added to the history")
        elif (met.date.start - course.start.end).days > UNSURE_DAYS:
            early.append(course)
        else:
            col.unreadable("Medication", course.ref, f"{label}: started {course.start.text}, within {UNSURE_DAYS} "
                           f"days before the metastatic diagnosis ({met.date.text}); early or metastatic cannot be "
                           "told; not added to the history")
    return early, metastatic


def _early_entry(col: Collector, course: Course, met: Metastatic) -> dict[str, Any]:
    assert met.date is not None
    entry: dict[str, Any] = {"drugs": list(course.drugs)}
    if course.active:
        entry["months_since_end"] = 0.0
        detail = "still active when the cancer spread"
    elif course.end is not None:
        entry["months_since_end"] = months_between(course.end.end, met.date.start)
        detail = f"ended {course.end.text}"
    else:
        detail = "end date not recorded, so the time since it ended is unknown"
    col.report.sections["Medication"].found.append(Found(
        field="history.early", value=list(course.drugs), resource=course.ref,
        detail=f"{course.how}; started {course.start.text if course.start else '?'}, before the metastatic "
               f"diagnosis ({met.date.text}); {detail}",
        date=course.start.text if course.start else None))
    return entry


def _lines(col: Collector, courses: list[Course]) -> list[dict[str, Any]]:
    dated = sorted((c for c in courses if c.start), key=lambda c: c.start.start if c.start else dt.date.min)
    for course in courses:
        if course.start is None:
            col.unreadable("Medication", course.ref, f"{', '.join(course.drugs)}: no start date, so its place in "
                           "the order of treatments is unknown; not added to the history")
    groups: list[list[Course]] = []
    for course in dated:
        assert course.start is not None
        first = groups[-1][0].start if groups else None
        if first is not None and (course.start.start - first.start).days <= SAME_LINE_DAYS:
            groups[-1].append(course)
        else:
            groups.append([course])
    kept = [g for g in groups if any(_line_defining(c.drugs) for c in g)]
    for group in groups:
        if group not in kept:
            col.note(f"Ovarian suppression alone ({', '.join(c.ref for c in group)}) is not counted as a line of "
                     "treatment.")
    groups = kept
    lines: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        drugs = list(dict.fromkeys(d for c in group for d in c.drugs))
        line: dict[str, Any] = {"drugs": drugs}
        last = i == len(groups) - 1
        active = [c for c in group if c.active]
        if active and last:
            line["outcome"] = "ongoing"
        elif active:
            newer = groups[i + 1][0].start
            col.note(f"Line {i + 1} ({', '.join(drugs)}) has a medicine recorded as active although a newer "
                     f"treatment started {newer.text if newer else '?'}; its outcome is left unknown.")
        else:
            stops = {c.stop for c in group if c.stop}
            for outcome in ("progressed", "intolerant", "stopped"):
                if outcome in stops:
                    line["outcome"] = outcome
                    break
            ends = [c.end for c in group]
            start = group[0].start
            if start is not None and all(e is not None for e in ends):
                line["months"] = months_between(start.start, max(e.end for e in ends if e is not None))
        start_text = group[0].start.text if group[0].start else "?"
        col.report.sections["Medication"].found.append(Found(
            field=f"history.metastatic[{i}]", value=drugs, resource=", ".join(c.ref for c in group),
            detail=f"line {i + 1}, started {start_text}: " + "; ".join(f"{c.how}" for c in group)
                   + (f"; outcome {line['outcome']}" if "outcome" in line else "; outcome not recorded"),
            date=start_text))
        lines.append(line)
    return lines
