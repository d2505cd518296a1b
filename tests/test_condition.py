"""Conditions: SQL three-valued logic, the construct whitelist and column/value checks."""

from __future__ import annotations

import itertools

import pytest

from mbcnav.condition import Column, ConditionError, compile_all, evaluate, parse

COLUMNS = {
    "a": Column("a", "bool"),
    "b": Column("b", "bool"),
    "n": Column("n", "number"),
    "s": Column("s", "text", frozenset({"x", "y"})),
}
TRUTHS = (True, False, None)


def run(text: str, **facts: object) -> object:
    return evaluate(parse(text, COLUMNS), {"a": None, "b": None, "n": None, "s": None, **facts})


@pytest.mark.parametrize(("a", "b"), list(itertools.product(TRUTHS, TRUTHS)))
def test_and_or_not_follow_sql_three_valued_logic(a: bool | None, b: bool | None) -> None:
    def sql_and(x: bool | None, y: bool | None) -> bool | None:
        if x is False or y is False:
            return False
        return None if x is None or y is None else True

    def sql_or(x: bool | None, y: bool | None) -> bool | None:
        if x is True or y is True:
            return True
        return None if x is None or y is None else False

    assert run("a AND b", a=a, b=b) is sql_and(a, b)
    assert run("a OR b", a=a, b=b) is sql_or(a, b)
    assert run("NOT a", a=a) is (None if a is None else not a)


def test_comparisons_with_unknown_are_unknown() -> None:
    assert run("n >= 10", n=None) is None
    assert run("n >= 10", n=10.0) is True
    assert run("n >= 10", n=9.0) is False
    assert run("s = 'x'", s=None) is None
    assert run("s IN ('x', 'y')", s="y") is True
    assert run("s IN ('x')", s=None) is None


def test_is_null_and_coalesce_make_unknown_explicit() -> None:
    assert run("s IS NULL", s=None) is True
    assert run("s IS NOT NULL", s=None) is False
    assert run("COALESCE(s, 'x') = 'x'", s=None) is True
    assert run("COALESCE(s, 'x') = 'x'", s="y") is False


def test_unknown_column_is_rejected_by_name() -> None:
    with pytest.raises(ConditionError, match="unknown fact column 'menopausal'"):
        parse("menopausal = 'post'", COLUMNS)


def test_value_outside_allowed_values_is_rejected_with_the_allowed_list() -> None:
    with pytest.raises(ConditionError, match="'z' is not a value of s; allowed: x, y"):
        parse("s = 'z'", COLUMNS)


@pytest.mark.parametrize(
    "text",
    ["a + 1 = 2", "LOWER(s) = 'x'", "s LIKE 'x%'", "(SELECT 1) = 1", "n IN (SELECT n)", "CASE WHEN a THEN b END"],
)
def test_constructs_outside_the_whitelist_are_rejected(text: str) -> None:
    with pytest.raises(ConditionError):
        parse(text, COLUMNS)


def test_type_errors_are_rejected() -> None:
    with pytest.raises(ConditionError, match="cannot compare"):
        parse("n = 'x'", COLUMNS)
    with pytest.raises(ConditionError, match="not a boolean"):
        parse("n", COLUMNS)
    with pytest.raises(ConditionError, match="boolean operands"):
        parse("a AND n", COLUMNS)


def test_compile_all_returns_every_condition_in_order() -> None:
    conditions = [parse(t, COLUMNS) for t in ("a", "NOT a", "n > 1")]
    assert compile_all(conditions)({"a": True, "n": 2.0, "b": None, "s": None}) == (True, False, True)


def test_numbers_are_recorded_for_boundary_checks() -> None:
    assert parse("n >= 10 AND n < 20", COLUMNS).numbers == (("n", 10.0), ("n", 20.0))
