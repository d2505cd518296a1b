"""`validate.check`'s accept/reject over a Parquet batch already in the Profile's layout, with numpy.

Polars validation turns every column into its canonical type (an Enum per field, defaults filled
in) and builds a new frame; for nested Profiles read from Parquet that costs more than deriving
the facts. When a batch's Arrow schema already has the Profile's shape and types (`canonical`),
the compiled passes read it in place, and this module only says which rows `validate.check`
would reject: those are left out of the results and explained by `validate.check` itself (on
those rows alone), which must reject every one of them (local.py falls back if it does not).

The checks are walked from the same Profile tree as validate.py (`schema.profile_tree`):
allowed values, ranges, required fields, null list items, unknown drug names, and the model's
cross-field checks. Arrow leaves a struct's children as they are where the struct is null;
Polars (and so validation) reads them as null there, so each struct's validity is merged into
its children first (`StructArray.flatten`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from mbcnav.cohort.schema import DRUG_LISTS, Field, profile_tree

Rows = npt.NDArray[np.bool_]


def canonical(schema: pa.Schema) -> bool:
    """Does the batch hold every Profile field, nothing else, each with the type Parquet gives it?

    Enumerations and drug names dictionary-encoded text, whole numbers int64, numbers double,
    yes/no boolean, lists (large) lists, objects structs with exactly the model's members.
    """
    tree = profile_tree()
    if sorted(schema.names) != sorted(f.name for f in tree.fields):
        return False
    return all(_fits(f, schema.field(f.name).type) for f in tree.fields)


def _fits(spec: Field, t: pa.DataType) -> bool:
    if spec.kind == "struct":
        if not pa.types.is_struct(t):
            return False
        members = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        return (len(members) == t.num_fields == len(spec.fields)
                and all(f.name in members and _fits(f, members[f.name]) for f in spec.fields))
    if spec.kind == "list":
        assert spec.item is not None
        return bool(pa.types.is_list(t) or pa.types.is_large_list(t)) and _fits(spec.item, t.value_type)
    if spec.kind == "enum":
        return _dictionary_text(t)
    if spec.kind == "text":
        return _dictionary_text(t) or bool(pa.types.is_string(t) or pa.types.is_large_string(t))
    if spec.kind == "int":
        return bool(pa.types.is_int64(t))
    if spec.kind == "float":
        return bool(pa.types.is_float64(t))
    return bool(pa.types.is_boolean(t))


def _dictionary_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_dictionary(t) and pa.types.is_integer(t.index_type)
                and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


def members(array: pa.StructArray) -> dict[str, pa.Array]:
    """A struct's children by name, null wherever the struct is (as Polars reads them)."""
    t = array.type
    children = array.flatten() if array.null_count else [array.field(i) for i in range(t.num_fields)]
    return {t.field(i).name: child for i, child in enumerate(children)}


class Fields:
    """A batch's fields by path (`("tumor", "her2", "ihc")`), each struct's members worked out once."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self._members: dict[tuple[str, ...], dict[str, pa.Array]] = {}

    def get(self, *path: str) -> pa.Array:
        if len(path) == 1:
            return self.batch.column(path[0])
        parent = path[:-1]
        if parent not in self._members:
            self._members[parent] = members(self.get(*parent))
        return self._members[parent][path[-1]]


def valid(array: pa.Array) -> Rows:
    if array.null_count == 0:
        return np.ones(len(array), dtype=np.bool_)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def empty_where_null(array: pa.Array) -> bool:
    """A null list covers no items (Parquet's are so; Arrow allows otherwise, which the passes
    reading lists by their offsets alone would misread)."""
    if array.null_count == 0:
        return True
    offsets = np.asarray(array.offsets)
    return not np.any(np.diff(offsets)[~valid(array)])


def lists_are_tight(batch: pa.RecordBatch) -> bool:
    """`empty_where_null` for every list in the batch, nested ones included."""
    def walk(array: pa.Array) -> bool:
        t = array.type
        if pa.types.is_struct(t):
            return all(walk(c) for c in members(array).values())
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return empty_where_null(array) and walk(array.values)
        return True
    return all(walk(batch.column(i)) for i in range(batch.num_columns))


Bad = Rows | None   # per item: is it wrong; None: nothing is (the usual case, and the cheap one)


def _or(a: Bad, b: Bad) -> Bad:
    if a is None or b is None:
        return a if b is None else b
    return a | b


def _and_valid(bad: Bad, array: pa.Array) -> Bad:
    if bad is None or not bad.any():
        return None
    if array.null_count:
        bad &= valid(array)
    return bad if bad.any() else None


def is_text(array: pa.Array, text: str) -> Bad:
    """Where a dictionary-encoded (or plain) text column holds `text` (None: nowhere)."""
    return _lookup(array, lambda values: pc.equal(values.cast(pa.large_string()), text))


def _lookup(array: pa.Array, test: Callable[[pa.Array], pa.Array]) -> Bad:
    """`test` (Arrow text -> booleans) applied once per dictionary value, then per row only when
    some value passes it; false where null."""
    if pa.types.is_dictionary(array.type):
        table = np.asarray(test(array.dictionary).fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)
        if not table.any():
            return None
        indices = array.indices
        codes = (indices.fill_null(0) if indices.null_count else indices).to_numpy()
        return _and_valid(table[codes], array)
    found = np.asarray(test(array).fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return found if found.any() else None


def _numbers(array: pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The values buffer as numpy, in place (what sits under a null is left as found)."""
    data = array.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(array) + array.offset)[array.offset:]


def _per_row(items_bad: Bad, array: pa.Array) -> Bad:
    """Any item bad -> its list's row bad (through the offsets of a list array)."""
    if items_bad is None:
        return None
    offsets = np.asarray(array.offsets, dtype=np.int64)
    counts = np.concatenate([[0], np.cumsum(items_bad, dtype=np.int64)])
    return _and_valid((counts[offsets[1:]] - counts[offsets[:-1]]) > 0, array)


def _nulls(array: pa.Array) -> Bad:
    return ~valid(array) if array.null_count else None


class _Checker:
    def __init__(self, unknown_drugs: Collection[str]) -> None:
        self.unknown = pa.array(sorted(unknown_drugs), pa.large_string())

    def node(self, spec: Field, array: pa.Array) -> Bad:
        """Per item of `array`: is it wrong (a null item is not, here: its parent decides)."""
        kind = spec.kind
        if kind == "struct":
            bad: Bad = None
            found = members(array)
            for member in spec.fields:
                value = found[member.name]
                bad = _or(bad, self.node(member, value))
                if member.required and value.null_count > array.null_count:
                    bad = _or(bad, _and_valid(~valid(value), array))
            return bad
        if kind == "list":
            assert spec.item is not None
            items = array.values
            return _per_row(_or(self.node(spec.item, items), _nulls(items)), array)   # a null item is refused
        if kind == "enum":
            allowed = pa.array(list(spec.allowed), pa.large_string())
            return _lookup(array, lambda values: pc.invert(pc.is_in(values.cast(pa.large_string()), allowed)))
        if kind == "text":
            if spec.path[:-1] not in DRUG_LISTS or not len(self.unknown):
                return None
            return _lookup(array, lambda values: pc.is_in(values.cast(pa.large_string()), self.unknown))
        if kind in ("int", "float"):
            values = _numbers(array, np.int64 if kind == "int" else np.float64)
            low = -np.inf if spec.ge is None else spec.ge
            high = np.inf if spec.le is None else spec.le
            # NaN fails both tests: Polars orders it above every number, past any maximum.
            return _and_valid(~((values >= low) & (values <= high)), array)
        return None   # booleans: any value is allowed


def rejected(batch: pa.RecordBatch, unknown_drugs: Collection[str]) -> Rows:
    """Per row: would `validate.check` reject it? (`batch` must be `canonical`.)"""
    checker = _Checker(unknown_drugs)
    bad: Bad = None
    for spec in profile_tree().fields:
        column = batch.column(spec.name)
        bad = _or(bad, checker.node(spec, column))
        if spec.required:
            bad = _or(bad, _nulls(column))
    bad = _or(bad, _cross_checks(batch))
    return np.zeros(batch.num_rows, dtype=np.bool_) if bad is None else bad


def _both(a: Bad, b: Bad) -> Bad:
    if a is None or b is None:
        return None
    both = a & b
    return both if both.any() else None


def _cross_checks(batch: pa.RecordBatch) -> Bad:
    """validate._cross_checks on the stored values (a missing ihc is 'unknown', ish 'not_done')."""
    fields = Fields(batch)
    her2 = ("tumor", "her2")
    found: Bad = _both(is_text(fields.get(*her2, "ihc"), "3+"), is_text(fields.get(*her2, "ish"), "not_amplified"))
    male = is_text(batch.column("sex"), "male")
    if male is not None:
        status = batch.column("menopausal_status")
        unknown = is_text(status, "unknown")
        status_given = valid(status) & (True if unknown is None else ~unknown)
        conditions = fields.get("health", "conditions")
        pregnant = _per_row(is_text(conditions.values, "pregnancy"), conditions)
        found = _or(found, _or(male & status_given, _both(male, pregnant)))
    # Only the last (newest) metastatic treatment may be ongoing.
    metastatic = fields.get("history", "metastatic")
    ongoing = is_text(members(metastatic.values)["outcome"], "ongoing")
    if ongoing is not None:
        offsets = np.asarray(metastatic.offsets, dtype=np.int64)
        ends = offsets[1:][offsets[1:] > offsets[:-1]]
        ongoing[ends - 1] = False
        found = _or(found, _per_row(_and_valid(ongoing, metastatic.values), metastatic))
    return found
