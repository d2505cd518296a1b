"""Rule conditions: one SQL boolean text, checked once, evaluated in-process or set-wise.

A condition is a SQL boolean expression over the fact columns declared in
``knowledge/data/facts.yaml`` (DESIGN principle 4). It is parsed with sqlglot, checked against a
small whitelist of node types and against the declared columns and their allowed values, and
compiled to Python that follows SQL's three-valued logic exactly (``None`` is SQL ``NULL``, i.e.
unknown). The same text runs unchanged in DuckDB, Polars or Spark SQL for cohorts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # sqlglot is imported on first parse: a cached knowledge base never needs it
    from sqlglot import exp

FactType = Literal["bool", "text", "number"]
Truth = bool | None


class ConditionError(ValueError):
    """A condition that does not parse, uses an unsupported construct or an undeclared column."""


@dataclass(frozen=True)
class Column:
    """A declared fact column: the vocabulary every condition is written in."""

    name: str
    type: FactType
    allowed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Condition:
    """A checked condition: its text, the Python it compiles to, the columns and numbers it uses."""

    text: str
    python: str                             # expression over the facts mapping `f`
    columns: frozenset[str]
    numbers: tuple[tuple[str, float], ...]  # (column, constant) pairs, for boundary-example lint


@cache
def _comparisons() -> dict[type[exp.Expression], str]:
    from sqlglot import exp

    return {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


def parse(text: str, columns: Mapping[str, Column]) -> Condition:
    """Parse and type-check one condition; raise ConditionError naming what is wrong."""
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        tree: exp.Expression = sqlglot.parse_one(text)  # type: ignore[assignment]
    except ParseError as err:
        raise ConditionError(f"cannot parse condition {text!r}: {err}") from None
    checker = _Checker(columns, text)
    kind = checker.type_of(tree)
    if kind != "bool":
        raise ConditionError(f"condition {text!r} is not a boolean expression (it is {kind})")
    return Condition(text, to_python(tree), frozenset(checker.used), tuple(checker.numbers))


class _Checker:
    def __init__(self, columns: Mapping[str, Column], text: str) -> None:
        self.columns = columns
        self.text = text
        self.used: set[str] = set()
        self.numbers: list[tuple[str, float]] = []

    def fail(self, message: str) -> ConditionError:
        return ConditionError(f"in condition {self.text!r}: {message}")

    def type_of(self, node: exp.Expression) -> FactType:
        from sqlglot import exp

        if isinstance(node, exp.Paren):
            return self.type_of(node.this)
        if isinstance(node, exp.Column):
            name = node.name
            if node.table or name not in self.columns:
                raise self.fail(f"unknown fact column {node.sql()!r}")
            self.used.add(name)
            return self.columns[name].type
        if isinstance(node, exp.Boolean):
            return "bool"
        if isinstance(node, exp.Literal):
            return "text" if node.is_string else "number"
        if isinstance(node, exp.And | exp.Or):
            for side in (node.this, node.expression):
                if self.type_of(side) != "bool":
                    raise self.fail(f"{type(node).__name__.upper()} needs boolean operands: {side.sql()!r}")
            return "bool"
        if isinstance(node, exp.Not):
            if self.type_of(node.this) != "bool":
                raise self.fail(f"NOT needs a boolean operand: {node.this.sql()!r}")
            return "bool"
        if type(node) in _comparisons():
            self._check_pair(node.this, node.expression)
            return "bool"
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self.fail("only IS NULL / IS NOT NULL are supported")
            self.type_of(node.this)
            return "bool"
        if isinstance(node, exp.In):
            if node.args.get("query") or not node.expressions:
                raise self.fail("IN needs a list of literal values")
            for item in node.expressions:
                if not isinstance(item, exp.Literal):
                    raise self.fail(f"IN list items must be literals: {item.sql()!r}")
                self._check_pair(node.this, item)
            return "bool"
        if isinstance(node, exp.Coalesce):
            parts = [node.this, *node.expressions]
            kinds = {self.type_of(p) for p in parts}
            if len(kinds) != 1:
                raise self.fail(f"COALESCE arguments must share one type: {node.sql()!r}")
            return kinds.pop()
        raise self.fail(f"unsupported SQL construct {type(node).__name__}: {node.sql()!r}")

    def _check_pair(self, left: exp.Expression, right: exp.Expression) -> None:
        from sqlglot import exp

        lt, rt = self.type_of(left), self.type_of(right)
        if lt != rt:
            raise self.fail(f"cannot compare {lt} with {rt}: {left.sql()!r} vs {right.sql()!r}")
        column = _column_name(left) or _column_name(right)
        literal = right if isinstance(right, exp.Literal) else left if isinstance(left, exp.Literal) else None
        if column is None or literal is None:
            return
        if lt == "text":
            allowed = self.columns[column].allowed
            if allowed and literal.this not in allowed:
                raise self.fail(
                    f"{literal.this!r} is not a value of {column}; allowed: {', '.join(sorted(allowed))}"
                )
        elif lt == "number":
            self.numbers.append((column, float(literal.this)))


def _column_name(node: exp.Expression) -> str | None:
    from sqlglot import exp

    while isinstance(node, exp.Paren | exp.Coalesce):
        node = node.this
    return node.name if isinstance(node, exp.Column) else None


# --- compilation to Python -------------------------------------------------------------------

def _and(a: Truth, b: Truth) -> Truth:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a: Truth, b: Truth) -> Truth:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _not(a: Truth) -> Truth:
    return None if a is None else not a


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _in(a: Any, values: frozenset[Any]) -> Truth:
    return None if a is None else a in values


def _comparison(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Truth]:
    def compare(a: Any, b: Any) -> Truth:
        return None if a is None or b is None else op(a, b)

    return compare


_OPERATOR_FUNCS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_OP_NAMES = {"==": "_eq", "!=": "_ne", ">": "_gt", ">=": "_ge", "<": "_lt", "<=": "_le"}

_HELPERS: dict[str, Any] = {"_and": _and, "_or": _or, "_not": _not, "_coalesce": _coalesce, "_in": _in}
_HELPERS.update({_OP_NAMES[op]: _comparison(fn) for op, fn in _OPERATOR_FUNCS.items()})


def to_python(node: exp.Expression) -> str:
    """Python source for one checked tree; ``f`` is the facts mapping."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return to_python(node.this)
    if isinstance(node, exp.Column):
        return f"f[{node.name!r}]"
    if isinstance(node, exp.Boolean):
        return repr(bool(node.this))
    if isinstance(node, exp.Literal):
        return repr(node.this) if node.is_string else repr(float(node.this))
    if isinstance(node, exp.And):
        return f"_and({to_python(node.this)}, {to_python(node.expression)})"
    if isinstance(node, exp.Or):
        return f"_or({to_python(node.this)}, {to_python(node.expression)})"
    if isinstance(node, exp.Not):
        return f"_not({to_python(node.this)})"
    if type(node) in _comparisons():
        a, b = to_python(node.this), to_python(node.expression)
        return f"{_OP_NAMES[_comparisons()[type(node)]]}({a}, {b})"
    if isinstance(node, exp.Is):
        return f"({to_python(node.this)} is None)"
    if isinstance(node, exp.In):
        values = frozenset(i.this if i.is_string else float(i.this) for i in node.expressions)
        return f"_in({to_python(node.this)}, {values!r})"
    if isinstance(node, exp.Coalesce):
        parts = ", ".join(to_python(p) for p in [node.this, *node.expressions])
        return f"_coalesce({parts})"
    raise ConditionError(f"cannot compile {type(node).__name__}")  # the checker rejects these first


Evaluator = Callable[[Mapping[str, Any]], tuple[Truth, ...]]


def compile_all(conditions: Sequence[Condition]) -> Evaluator:
    """Compile many conditions into one function returning all their truth values at once.

    Generating Python once at load time keeps a recommendation in the microsecond range
    (DESIGN principle 4: a per-call tree walk is ~25x slower).
    """
    body = ",\n        ".join(c.python for c in conditions)
    source = f"def _evaluate(f):\n    return (\n        {body},\n    )\n"
    namespace: dict[str, Any] = dict(_HELPERS)
    exec(compile(source, "<mbcnav-conditions>", "exec"), namespace)
    evaluator: Evaluator = namespace["_evaluate"]
    return evaluator


def evaluate(condition: Condition, facts: Mapping[str, Any]) -> Truth:
    """Evaluate one condition (slow path for traces and tests)."""
    return compile_all([condition])(facts)[0]


def null_columns(condition: Condition, facts: Mapping[str, Any]) -> list[str]:
    """The columns of a condition that are unknown for these facts, in a stable order."""
    return sorted(c for c in condition.columns if facts.get(c) is None)


def referenced(conditions: Iterable[Condition]) -> set[str]:
    out: set[str] = set()
    for c in conditions:
        out |= c.columns
    return out
