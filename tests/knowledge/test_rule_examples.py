"""Every rule's own must-match / must-not-match examples, one test item each."""

from __future__ import annotations

import pytest

from mbcnav.knowledge import lint
from mbcnav.knowledge.loader import knowledge

CASES = list(lint.example_cases(knowledge()))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_example(case: lint.ExampleCase) -> None:
    assert lint.check_example(knowledge(), case) == []


def test_every_rule_has_examples_on_both_sides() -> None:
    for rule in knowledge().rules:
        assert rule.examples.match and rule.examples.no_match, rule.id


def test_every_threshold_has_examples_on_both_sides_of_the_line() -> None:
    assert lint.boundary_problems(knowledge()) == []
