"""Checks on the knowledge base beyond its schema: examples, readability, boundaries, freshness.

`mbcnav kb lint` runs them all; pytest runs each rule example as its own test item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mbcnav.knowledge import schema as s
from mbcnav.knowledge.loader import Knowledge

MAX_REVIEW_AGE_DAYS = 365


@dataclass(frozen=True)
class ExampleCase:
    rule: s.Rule
    example: s.Example
    should_match: bool

    @property
    def name(self) -> str:
        return f"{self.rule.id}::{'match' if self.should_match else 'no_match'}::{self.example.name}"


def example_cases(kb: Knowledge) -> Iterator[ExampleCase]:
    for rule in kb.rules:
        for example in rule.examples.match:
            yield ExampleCase(rule, example, True)
        for example in rule.examples.no_match:
            yield ExampleCase(rule, example, False)


def _find(rec: dict[str, Any], rule: s.Rule) -> dict[str, Any] | None:
    sections = {"option": "options", "local_and_supportive": "local_and_supportive",
                "not_recommended": "not_recommended"}
    entries: list[dict[str, Any]] = rec[sections[rule.kind]]
    return next((entry for entry in entries if entry["id"] == rule.id), None)


def check_example(kb: Knowledge, case: ExampleCase) -> list[str]:
    """Problems with one example (empty when it behaves as written)."""
    from mbcnav.engine import evaluate

    evaluation = evaluate(case.example.profile, kb)
    found = _find(evaluation.recommendation, case.rule)
    trace = next(r for r in evaluation.results if r.rule.id == case.rule.id)
    problems: list[str] = []
    if case.should_match:
        if found is None:
            problems.append(f"expected {case.rule.id} to be given; trace: {trace.as_dict()}")
            return problems
        if case.example.expect_tier and found.get("tier") != case.example.expect_tier:
            problems.append(f"expected tier {case.example.expect_tier}, got {found.get('tier')}")
        text = " ".join(found["why"]).lower()
        for phrase in case.example.expect_why:
            if phrase.lower() not in text:
                problems.append(f"why does not mention {phrase!r}: {found['why']}")
    elif found is not None:
        problems.append(f"expected {case.rule.id} NOT to be given; trace: {trace.as_dict()}")
    return problems


def patient_texts(kb: Knowledge) -> Iterator[tuple[str, str]]:
    """(where, text) for every patient-facing text in the knowledge base."""
    for drug in kb.drugs.values():
        yield f"drug {drug.id}.plain_what", drug.plain_what
        yield f"drug {drug.id}.plain_how", drug.plain_how
        for i, text in enumerate(drug.side_effects_plain):
            yield f"drug {drug.id}.side_effects_plain[{i}]", text
        for i, text in enumerate(drug.monitoring_plain):
            yield f"drug {drug.id}.monitoring_plain[{i}]", text
    for rule in kb.rules:
        yield f"rule {rule.id}.plain_title", rule.plain_title
        for clause in [*rule.requires, *rule.excludes]:
            for attr in ("because", "because_not"):
                text = getattr(clause, attr)
                if text:
                    yield f"rule {rule.id}.{clause.id}.{attr}", text
        for i, caution in enumerate(rule.cautions):
            yield f"rule {rule.id}.cautions[{i}]", caution.text
    for adjunct in kb.adjuncts:
        yield f"adjunct {adjunct.id}.because", adjunct.because
        if adjunct.caution:
            yield f"adjunct {adjunct.id}.caution", adjunct.caution
    for block in kb.safety:
        yield f"safety {block.id}.because", block.because
    for test in kb.tests.values():
        yield f"test {test.id}.why", test.why
        for i, outcome in enumerate(test.outcomes):
            yield f"test {test.id}.outcomes[{i}].label", outcome.label
    for inter in kb.interactions:
        yield f"interaction {inter.id}.advice", inter.advice
    for question in kb.questions:
        yield f"question {question.id}", question.text
    for warning in kb.warnings:
        yield f"warning {warning.id}", warning.text


def readability_problems(kb: Knowledge) -> list[str]:
    from mbcnav.readability import GRADE_LIMIT, grade

    return [
        f"{where}: grade {grade(text):.1f} > {GRADE_LIMIT}: {text!r}"
        for where, text in patient_texts(kb)
        if grade(text) > GRADE_LIMIT
    ]


def outcome_problems(kb: Knowledge) -> list[str]:
    """Each test outcome must name real profile fields with allowed values (checked by the parser)."""
    from mbcnav.profile import ProfileError, parse_profile
    from mbcnav.whatif import with_values

    problems: list[str] = []
    for test in kb.tests.values():
        for i, outcome in enumerate(test.outcomes):
            try:
                parse_profile(with_values({"sex": "female"}, outcome.set))
            except ProfileError as err:
                problems.append(f"test {test.id}.outcomes[{i}]: {err}")
    return problems


def stale_reviews(kb: Knowledge, today: dt.date | None = None) -> list[str]:
    today = today or dt.date.today()
    out: list[str] = []
    for item in kb.reviewed_items():
        age = (today - item.reviewed).days
        if age > MAX_REVIEW_AGE_DAYS:
            out.append(f"{type(item).__name__} {getattr(item, 'id', '?')}: reviewed {age} days ago")
    return out


def boundary_problems(kb: Knowledge) -> list[str]:
    """Each number a rule's clause compares with needs examples on both sides of the line.

    Checked loosely: some example (match or no_match) of the rule must put the column below the
    constant and some at or above it, so a threshold is never left untested.
    """
    from mbcnav.engine import evaluate

    problems: list[str] = []
    for rule in kb.rules:
        values: dict[str, list[float]] = {}
        for example in [*rule.examples.match, *rule.examples.no_match]:
            facts = evaluate(example.profile, kb).facts
            for column, value in facts.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values.setdefault(column, []).append(float(value))
        for clause in [*rule.requires, *rule.excludes]:
            for column, constant in kb.condition(clause.when).numbers:
                seen = values.get(column, [])
                if column in ("line", "met_lines", "met_chemo_lines", "met_antiher2_lines", "met_endocrine_lines"):
                    continue  # counts: the applies/no_match examples already cover each side
                below = any(v < constant for v in seen)
                above = any(v >= constant for v in seen)
                if not (below and above):
                    problems.append(
                        f"rule {rule.id} clause {clause.id}: {column} vs {constant:g} needs examples on both "
                        f"sides (seen {sorted(set(seen))})"
                    )
    return problems
