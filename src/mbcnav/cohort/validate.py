"""Set-wise validation: the same accept/reject as `mbcnav.profile.parse_profile`, over whole columns.

Running pydantic per row would be a per-patient Python loop. Instead every field of the Profile
tree (`schema.profile_tree`, read from the pydantic models) becomes Polars expressions:

- ``value``: the field converted to its canonical type (enumerations become ``pl.Enum`` of the
  allowed values; missing fields take the model's default);
- ``bad``: a boolean that is true where the field is wrong (cheap, evaluated for every row);
- ``message``: the field-named explanation, evaluated only on the few rows that are bad.

Conversions follow pydantic's lax mode where input formats force them (CSV holds only text:
``"54"`` is an age, ``"true"`` a boolean). Drug names are checked and normalised through a table
built from the distinct names in the batch, each looked up once with `vocabulary.normalise_drug`
(the one-patient normaliser), so brand names map to the same generic ids.

A null field means "not given": columnar formats cannot tell an explicit JSON ``null`` from a
missing key, and treating both as missing is the safe reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from mbcnav.cohort.read import PROBLEM_SCHEMA
from mbcnav.cohort.schema import DRUG_LISTS, ROW, Field, as_enum, dtype, instance, profile_tree
from mbcnav.vocabulary import UnknownDrugError, normalise_drug

UNKNOWN_FIELD = "unknown field; see the contract (CONTRACT.md) for the allowed fields"
TRUE_TEXT = ("true", "1", "yes", "on", "t", "y")
FALSE_TEXT = ("false", "0", "no", "off", "f", "n")


@dataclass
class DrugNames:
    """Typed drug name -> generic ids, or the error message for an unknown name (kept across batches)."""

    known: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)

    def learn(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self.known or name in self.unknown:
                continue
            try:
                self.known[name] = normalise_drug(name)
            except UnknownDrugError as err:
                self.unknown[name] = str(err)


@dataclass
class Node:
    value: pl.Expr
    bad: list[pl.Expr]       # each true where something is wrong; null counts as fine
    message: list[pl.Expr]   # each the message where wrong, else null


def _text(dt: pl.DataType) -> bool:
    return isinstance(dt, pl.String | pl.Categorical | pl.Enum)


def _any(exprs: list[pl.Expr]) -> pl.Expr:
    if not exprs:
        return pl.lit(False)
    return pl.any_horizontal([e.fill_null(False) for e in exprs])


def _first(exprs: list[pl.Expr]) -> pl.Expr:
    return pl.coalesce(exprs) if exprs else pl.lit(None, dtype=pl.String)


NULL_ITEM = "an item cannot be empty (null)"


def lists_with_null_items(frame: pl.DataFrame) -> frozenset[str]:
    """The list fields (`disease.sites`, `history.metastatic[].drugs`) that hold a null item somewhere
    in the batch: only those get the per-row check."""
    found: set[str] = set()

    def walk(series: pl.Series, path: str) -> None:
        if isinstance(series.dtype, pl.Struct):
            for member in series.dtype.fields:
                walk(series.struct.field(member.name), f"{path}.{member.name}" if path else member.name)
        elif isinstance(series.dtype, pl.List) and series.dtype.inner.is_nested():
            items = series.list.explode(empty_as_null=False)
            if items.null_count() > series.null_count():   # a null list explodes to one null
                found.add(path)
            walk(items, f"{path}[]")
        # Items of single values: Arrow's child array counts its nulls (exploding a list of names
        # cost ~10 ms per 500k rows; this is free). A sliced list may count a few items of rows
        # outside the batch: at worst a row check that finds nothing.
        elif isinstance(series.dtype, pl.List) and series.to_physical().to_arrow().values.null_count:
            found.add(path)

    for name in frame.columns:
        if name != ROW:
            walk(frame.get_column(name), name)
    return frozenset(found)


def _say(path: str, text: str, *values: pl.Expr) -> pl.Expr:
    return pl.format(f"{path}: {text}", *values) if values else pl.lit(f"{path}: {text}")


def quoted(values: Sequence[str]) -> str:
    """'a', 'b' or 'c' (the wording of the one-patient validator)."""
    items = [f"'{v}'" for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _shown(number: pl.Expr) -> pl.Expr:
    """A number as text, without '.0' when it is whole."""
    whole = number == number.floor()
    return pl.when(whole).then(number.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(number.cast(pl.String))


def _number(x: float | None) -> str:
    return "" if x is None else (f"{x:g}")


class Conformer:
    """Builds the value/bad/message expressions for one batch's actual column types."""

    def __init__(self, drugs: DrugNames, null_items: frozenset[str] = frozenset()) -> None:
        self.drugs = drugs
        self.null_items = null_items   # lists (`history.metastatic[].drugs`) that hold a null item

    def frame(self, actual: pl.Schema) -> Node:
        tree = profile_tree()
        return self._struct_members(tree, {n: actual[n] for n in actual if n != ROW}, pl.col, "")

    # -- one node ---------------------------------------------------------------------------------

    def node(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        if isinstance(actual, pl.Null):
            return self._missing(spec, path)
        kind = spec.kind
        if kind == "struct":
            return self._struct(expr, actual, spec, path)
        if kind == "list":
            return self._list(expr, actual, spec, path)
        if isinstance(actual, pl.Struct | pl.List):
            shape = "an object" if isinstance(actual, pl.Struct) else "a list"
            wrong = _say(path, f"must be a single value, not {shape}")
            # Required or not, a row that gives a list here hears about the list, not "required".
            node = Node(self._missing(spec, path).value, [], [])
            return self._required(self._finish(node, expr.is_not_null(), wrong), expr, spec, path)
        if kind == "enum":
            return self._enum(expr, actual, spec, path)
        if kind in ("int", "float"):
            return self._number(expr, actual, spec, path)
        if kind == "bool":
            return self._bool(expr, actual, spec, path)
        return self._plain_text(expr, actual, spec, path)

    def _finish(self, node: Node, bad: pl.Expr, message: pl.Expr) -> Node:
        return Node(node.value, [*node.bad, bad], [*node.message, pl.when(bad).then(message)])

    def _missing(self, spec: Field, path: str) -> Node:
        value = pl.lit(spec.default, dtype=dtype(spec, validated=True)) if spec.default is not None else pl.lit(
            None, dtype=dtype(spec, validated=True))
        if spec.factory:
            value = self._struct_members(spec, {}, lambda name: pl.lit(None), path).value
        if spec.required:
            return Node(value, [pl.lit(True)], [_say(path, "required")])
        return Node(value, [], [])

    def _required(self, node: Node, expr: pl.Expr, spec: Field, path: str) -> Node:
        if not spec.required:
            return node
        return self._finish(node, expr.is_null(), _say(path, "required"))

    def _enum(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        enum = dtype(spec, validated=True)
        assert isinstance(enum, pl.Enum)
        item = "[#" in path   # items of lists keep their input type (facts.py maps them to positions once)
        if isinstance(actual, pl.Categorical | pl.Enum) and not item:
            return self._dictionary(expr, actual, enum, spec, path)
        if _text(actual):
            text = expr
        else:
            text = expr.cast(pl.String)
            if actual.is_numeric() and "0" in spec.allowed:
                # profile.Her2: a bare 0 from JSON means IHC 0; any other number is simply not allowed.
                text = pl.when(expr == 0).then(pl.lit("0")).otherwise(text)
        # is_in works on a dictionary column's few distinct values, not on every row.
        bad = text.is_not_null() & ~text.is_in(list(spec.allowed))
        value = text if item else text.cast(enum, strict=False)
        return self._enum_node(value, bad, text, spec, path, expr)

    def _dictionary(self, expr: pl.Expr, actual: pl.Categorical | pl.Enum, enum: pl.Enum, spec: Field,
                    path: str) -> Node:
        """A dictionary-encoded value -> the field's Enum by a gather over its categories (`as_enum`)."""
        value = as_enum(expr, actual, enum)
        bad = expr.is_not_null() & value.is_null()
        return self._enum_node(value, bad, expr, spec, path, expr)

    def _enum_node(self, value: pl.Expr, bad: pl.Expr, text: pl.Expr, spec: Field, path: str, expr: pl.Expr) -> Node:
        message = _say(path, f"'{{}}' is not allowed; allowed values: {quoted(spec.allowed)}", text.cast(pl.String))
        if spec.default is not None:
            value = value.fill_null(pl.lit(spec.default))
        node = Node(value, [bad], [pl.when(bad).then(message)])
        return self._required(node, expr, spec, path)

    def _number(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        whole = spec.kind == "int"
        if actual.is_numeric():
            number = expr.cast(pl.Float64)
        elif _text(actual):
            number = expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        else:
            number = pl.lit(None, dtype=pl.Float64)
        unreadable = expr.is_not_null() & number.is_null()
        checks: list[tuple[pl.Expr, pl.Expr]] = [
            (unreadable, _say(path, "'{}' is not a number", expr.cast(pl.String))),
        ]
        if whole:
            fraction = number.is_not_null() & (number != number.floor())
            checks.append((fraction, _say(path, "{} is not a whole number", _shown(number))))
        if spec.ge is not None:
            low = _say(path, f"must be at least {_number(spec.ge)} (got {{}})", _shown(number))
            checks.append((number < spec.ge, low))
        if spec.le is not None:
            high = _say(path, f"must be at most {_number(spec.le)} (got {{}})", _shown(number))
            checks.append((number > spec.le, high))
        value = number.cast(pl.Int64, strict=False) if whole else number
        node = Node(value, [c for c, _ in checks], [pl.when(c).then(m) for c, m in checks])
        return self._required(node, expr, spec, path)

    def _bool(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        if isinstance(actual, pl.Boolean):
            return self._required(Node(expr, [], []), expr, spec, path)
        if actual.is_numeric():
            value = pl.when(expr == 1).then(True).when(expr == 0).then(False)
        else:
            text = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
            value = pl.when(text.is_in(TRUE_TEXT)).then(True).when(text.is_in(FALSE_TEXT)).then(False)
        bad = expr.is_not_null() & value.is_null()
        node = Node(value, [bad], [pl.when(bad).then(_say(path, "'{}' is not true or false", expr.cast(pl.String)))])
        return self._required(node, expr, spec, path)

    def _plain_text(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        if spec.path[:-1] in DRUG_LISTS:
            # Drug names stay dictionary-encoded when they are: facts.py maps them by code.
            value = expr if isinstance(actual, pl.Categorical) else expr.cast(pl.String)
            return self._required(self._drug(value, path, Node(value, [], [])), expr, spec, path)
        return self._required(Node(expr.cast(pl.String), [], []), expr, spec, path)

    def _drug(self, name: pl.Expr, path: str, node: Node) -> Node:
        if not self.drugs.unknown:
            return node
        unknown = list(self.drugs.unknown)
        bad = name.is_in(unknown)
        explained = name.cast(pl.String).replace_strict(self.drugs.unknown, default=None, return_dtype=pl.String)
        message = pl.format(f"{path}: {{}}", explained)
        return self._finish(node, bad, message)

    def _list(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        assert spec.item is not None
        if not isinstance(actual, pl.List):
            node = self._missing(spec, path)
            return self._finish(node, expr.is_not_null(), _say(path, "must be a list"))
        depth = spec.path.count("*") + 1
        marker = f"[#{depth}]"
        item = self.node(pl.element(), instance(actual.inner), spec.item, f"{path}{marker}")
        if re.sub(r"\[#\d+\]", "[]", path) in self.null_items:
            # A null item is refused, as the one-patient parser does; the item's own checks are
            # then moot (a null history entry has no `drugs` to be required).
            empty = pl.element().is_null()
            item = Node(item.value, [empty, *(b & ~empty for b in item.bad)],
                        [pl.when(empty).then(_say(f"{path}{marker}", NULL_ITEM)), *item.message])
        value = expr.list.eval(item.value)
        if spec.default is not None:  # [] : an empty list of whatever item type the input has
            value = value.fill_null(pl.lit([], dtype=pl.List(pl.Null)))
        node = Node(value, [], [])
        if item.bad:
            bad = expr.list.eval(_any(item.bad)).list.any().fill_null(False)
            index = pl.format("[{}]", pl.int_range(pl.len()))
            first = expr.list.eval(_first(item.message).str.replace(marker, index, literal=True)).list.drop_nulls()
            node = self._finish(node, bad, first.list.first())
        return self._required(node, expr, spec, path)

    def _struct(self, expr: pl.Expr, actual: pl.DataType, spec: Field, path: str) -> Node:
        if not isinstance(actual, pl.Struct):
            node = self._missing(spec, path)
            return self._finish(node, expr.is_not_null(), _say(path, "must be an object"))
        members = {f.name: instance(f.dtype) for f in actual.fields}
        node = self._struct_members(spec, members, expr.struct.field, path)
        if _optional_struct(spec):
            node = Node(pl.when(expr.is_null()).then(None).otherwise(node.value), node.bad, node.message)
        return node

    def _struct_members(
        self, spec: Field, members: dict[str, pl.DataType], get: Callable[[str], pl.Expr], path: str
    ) -> Node:
        values: list[pl.Expr] = []
        bad: list[pl.Expr] = []
        messages: list[pl.Expr] = []
        prefix = f"{path}." if path else ""
        for child in spec.fields:
            actual = members.get(child.name, pl.Null())
            sub = self.node(get(child.name), actual, child, prefix + child.name)
            values.append(sub.value.alias(child.name))
            bad += sub.bad
            messages += sub.message
        for name in members:
            if all(f.name != name for f in spec.fields):
                extra = get(name).is_not_null()
                bad.append(extra)
                messages.append(pl.when(extra).then(pl.lit(f"{prefix}{name}: {UNKNOWN_FIELD}")))
        return Node(pl.struct(values), bad, messages)


def _optional_struct(spec: Field) -> bool:
    """A struct the model leaves as None when missing (brain_metastases), unlike tumor or history."""
    return spec.kind == "struct" and not spec.factory and not spec.required and spec.path != ()


def canonical_schema() -> pl.Schema:
    return pl.Schema({f.name: dtype(f, validated=True) for f in profile_tree().fields})


def _cross_checks(profile: pl.Expr) -> list[tuple[pl.Expr, pl.Expr]]:
    """The model validators of profile.py (Her2._consistent, Profile._consistent, History._ongoing_last)."""
    tumor, health, history = (profile.struct.field(n) for n in ("tumor", "health", "history"))
    her2 = tumor.struct.field("her2")
    male = profile.struct.field("sex") == "male"
    status = profile.struct.field("menopausal_status")
    metastatic = history.struct.field("metastatic")
    # "ongoing" anywhere but last: more ongoing entries than the last one accounts for. The
    # outcomes are taken out as a list first: a comparison inside list.eval costs 13x more.
    outcomes = metastatic.list.eval(pl.element().struct.field("outcome"))
    ongoing = outcomes.list.count_matches("ongoing")
    last = (outcomes.list.last() == "ongoing").fill_null(False).cast(pl.UInt32)
    ongoing_early = ongoing > last
    return [
        ((her2.struct.field("ihc") == "3+") & (her2.struct.field("ish") == "not_amplified"),
         pl.lit("tumor.her2: IHC 3+ with ISH not amplified is not a valid combination; IHC 3+ is HER2-positive "
                "without ISH. Check the pathology report and enter ish: not_done, or the IHC score that was reported")),
        (male & status.is_not_null() & (status != "unknown"),
         pl.lit("menopausal_status: applies to women only; leave it out for a man (a man on a GnRH agonist can "
                "set ovarian_function_suppressed: true instead)")),
        (male & health.struct.field("conditions").list.contains(pl.lit("pregnancy")),
         pl.lit("health.conditions: 'pregnancy' cannot be recorded for a man")),
        (ongoing_early,
         pl.lit("history.metastatic: only the last (newest) treatment can be 'ongoing'; list treatments oldest "
                "first and mark earlier ones progressed, intolerant or stopped")),
    ]


def drug_names_in(frame: pl.DataFrame) -> list[str]:
    """Distinct drug names in a batch (history entries and given_drugs), whatever their types."""
    found: list[pl.Series] = []
    schema = frame.schema
    history = schema.get("history")
    if isinstance(history, pl.Struct):
        members = {f.name: f.dtype for f in history.fields}
        for part in ("early", "metastatic"):
            entries = members.get(part)
            if isinstance(entries, pl.List) and isinstance(entries.inner, pl.Struct) and any(
                f.name == "drugs" and _flat_list(f.dtype) for f in entries.inner.fields
            ):
                names = pl.col("history").struct.field(part).list.eval(pl.element().struct.field("drugs").explode())
                found.append(frame.select(names.explode().cast(pl.String).unique()).to_series())
    given = schema.get("given_drugs")
    if given is not None and _flat_list(given):
        found.append(frame.select(pl.col("given_drugs").explode().cast(pl.String).unique()).to_series())
    out: set[str] = set()
    for series in found:
        out.update(v for v in series.to_list() if v is not None)
    return sorted(out)


def _flat_list(dt: pl.DataType | pl.datatypes.DataTypeClass) -> bool:
    """A list of single values: names can be taken from it (a list of lists is reported by validation)."""
    return isinstance(dt, pl.List) and not dt.inner.is_nested()


@dataclass
class Checked:
    valid: pl.DataFrame      # _row + canonical columns, only rows without problems
    problems: pl.DataFrame   # _row, field, message
    drug_names: list[str]    # distinct drug names in the batch, as typed


def check(frame: pl.DataFrame, drugs: DrugNames, names_hint: set[str] | None = None) -> Checked:
    """Validate and normalise one batch; bad rows go to `problems` with every field named.

    `names_hint`: the drug names the reader already knows the batch can hold (Parquet dictionaries).
    """
    names = sorted(names_hint) if names_hint is not None else drug_names_in(frame)
    drugs.learn(names)
    node = Conformer(drugs, lists_with_null_items(frame)).frame(frame.schema)
    profile = node.value.alias("_profile")
    cross = _cross_checks(pl.col("_profile"))
    typed = frame.lazy().select(ROW, profile, _any(node.bad).alias("_bad")).with_columns(
        (pl.col("_bad") | _any([c for c, _ in cross])).alias("_bad")).collect()
    bad_rows = typed.filter(pl.col("_bad"))
    valid = typed.filter(~pl.col("_bad")).select(ROW, pl.col("_profile").struct.unnest())
    if bad_rows.height == 0:
        return Checked(valid, pl.DataFrame(schema=PROBLEM_SCHEMA), names)
    # Messages only for the rows that failed: formatting text for every row would cost more than
    # the whole evaluation.
    bad_raw = frame.join(bad_rows.select(ROW, "_profile"), on=ROW, how="inner")
    messages = [*node.message, *[pl.when(c).then(m) for c, m in cross]]
    listed = bad_raw.select(
        ROW, pl.concat_list([m.cast(pl.String) for m in messages]).list.drop_nulls().alias("message")
    ).explode("message").filter(pl.col("message").is_not_null())
    found = listed.select(
        ROW, pl.col("message").str.split_exact(": ", 1).struct.field("field_0").alias("field"), "message"
    ).cast({ROW: pl.UInt64})
    return Checked(valid, found, names)
