"""Fact derivation as one compiled pass (facts.c): validated batch columns in, fact columns out.

The twin of `Derivation.stages` (cohort/facts.py), which stays the reference: the same columns,
types and values, NULLs included (tests/cohort/test_native.py holds the two together). Polars
picks the inputs out of the nested batch (zero-copy where it can), segments.py maps list items
to positions as it does for the Polars path, and facts.c reads them as Arrow buffers and writes
Arrow buffers back, which become the fact columns without a copy.

Everything the C needs to know about the schema (category codes, positions of inputs and
outputs, site bits, flag counts) is written into a generated header, so a change to the profile
model or to facts.yaml changes the source and so the cached build.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from mbcnav.cohort import native, segments, validate_arrow
from mbcnav.cohort.facts import BatchTables, Derivation, _f
from mbcnav.cohort.native.program import INT_BITS, Buffer
from mbcnav.cohort.plan import TRIAL, Plan
from mbcnav.cohort.schema import instance, profile_tree
from mbcnav.cohort.tables import CONDITION_COLUMNS, ENTRY_CLASSES, SITE_BITS
from mbcnav.cohort.validate import canonical_schema
from mbcnav.facts import VISCERAL_SITES
from mbcnav.profile import CONDITIONS, SITES

Kind = Literal["bool", "enum", "number"]   # Buffer kinds

# Inputs, in the order of `in[]` (IN_<name> in the header): their paths in the Profile.
INPUT_PATHS: dict[str, tuple[str, ...]] = {
    "sex": ("sex",),
    "age": ("age",),
    "menopausal_status": ("menopausal_status",),
    "ovarian_function_suppressed": ("ovarian_function_suppressed",),
    **{name: ("tumor", name) for name in ("er", "pr")},
    "ihc": ("tumor", "her2", "ihc"),
    "ish": ("tumor", "her2", "ish"),
    **{name: ("tumor", name) for name in ("pik3ca", "akt1", "pten", "esr1", "germline_brca", "germline_palb2",
                                          "msi", "ntrk_fusion")},
    "presentation": ("disease", "presentation"),
    "brain": ("disease", "brain_metastases"),
    "brain_active": ("disease", "brain_metastases", "active"),
    "brain_symptomatic": ("disease", "brain_metastases", "symptomatic"),
    "brain_count": ("disease", "brain_metastases", "count"),
    "pdl1_cps": ("tumor", "pdl1_cps"),
    "tmb": ("tumor", "tmb"),
    **{name: ("disease", name) for name in ("visceral_crisis", "symptomatic", "spinal_cord_compression",
                                            "oligometastatic")},
    "ecog": ("health", "ecog"),
    "lvef": ("health", "lvef_percent"),
}
INPUTS: dict[str, pl.Expr] = {name: _f(*path) for name, path in INPUT_PATHS.items()}

# Facts that are input fields as they are (Derivation reads them the same way). facts.c copies
# them too (numbers as doubles), for the program; the facts frame takes them from the batch.
PASSED: dict[str, pl.Expr] = {
    "age": pl.col("age"),
    "pdl1_cps": _f("tumor", "pdl1_cps"),
    "tmb": _f("tumor", "tmb"),
    **{name: _f("disease", name) for name in ("visceral_crisis", "symptomatic", "spinal_cord_compression",
                                              "oligometastatic")},
    "ecog": _f("health", "ecog"),
    "lvef": _f("health", "lvef_percent"),
}

_HEAD: list[tuple[str, Kind]] = [
    ("sex", "enum"), ("menopause", "enum"), ("postmenopausal", "bool"), ("needs_ovarian_suppression", "bool"),
    ("ovarian_suppressed", "bool"), ("er", "enum"), ("pr", "enum"), ("er_low", "bool"), ("hr", "enum"),
    ("her2", "enum"), ("her2_negative", "bool"), ("her2_equivocal", "bool"), ("subtype", "enum"),
    ("pik3ca", "enum"), ("akt1", "enum"), ("pten", "enum"), ("esr1", "enum"), ("pi3k_pathway_altered", "bool"),
    ("gbrca", "enum"), ("gbrca_mutated", "bool"), ("gpalb2", "enum"), ("msi", "enum"), ("ntrk", "enum"),
    ("sites_known", "bool"),
]
_DISEASE: list[tuple[str, Kind]] = [
    ("visceral", "bool"), ("bone_only", "bool"), ("site_count", "number"), ("brain_mets", "bool"),
    ("brain_active", "bool"), ("brain_symptomatic", "bool"), ("brain_count", "number"),
    ("local_recurrence", "bool"), ("presentation", "enum"),
]
_HISTORY: list[tuple[str, Kind]] = [
    ("met_lines", "number"), ("line", "number"), ("met_chemo_lines", "number"), ("met_antiher2_lines", "number"),
    ("met_endocrine_lines", "number"), ("on_treatment", "bool"), ("progressed_on_et_met", "bool"),
    ("early_endocrine", "bool"), ("early_chemo", "bool"), ("early_antiher2", "bool"),
    ("early_immunotherapy", "bool"), ("endocrine_sensitivity", "enum"), ("et_free_months", "number"),
    ("dfi_months", "number"), ("chemo_relapse_6m", "bool"), ("antiher2_relapse_6m", "bool"),
    ("taking_qt_drug", "bool"),
]
_COPIED: list[tuple[str, Kind]] = [
    ("age", "number"), ("pdl1_cps", "number"), ("tmb", "number"), ("visceral_crisis", "bool"),
    ("symptomatic", "bool"), ("spinal_cord_compression", "bool"), ("oligometastatic", "bool"), ("ecog", "number"),
    ("lvef", "number"),
]
OUTCOMES = ("history", "metastatic", "outcome")


def _symbol(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", text.replace("+", "p"))


_P = ctypes.c_void_p


class _Output(ctypes.Structure):
    _fields_ = [("values", ctypes.c_void_p), ("valid", ctypes.c_void_p)]


class _List(ctypes.Structure):
    _fields_ = [("offsets", _P), ("valid", _P), ("valid_offset", ctypes.c_int64)]


class _Items(ctypes.Structure):
    _fields_ = [("codes", _P), ("valid", _P), ("valid_offset", ctypes.c_int64), ("table", _P),
                ("missing", ctypes.c_int64)]


class _Numbers(ctypes.Structure):
    _fields_ = [("values", _P), ("valid", _P), ("valid_offset", ctypes.c_int64)]


class _Lists(ctypes.Structure):
    _fields_ = [
        ("met", _List), ("met_drugs", _List), ("met_drug_names", _Items), ("met_outcome", _Items),
        ("early", _List), ("early_drugs", _List), ("early_drug_names", _Items), ("early_months", _Numbers),
        ("sites", _List), ("site_items", _Items), ("conditions", _List), ("condition_items", _Items),
        ("medications", _List), ("medication_qt", _P), ("name_flags", _P), ("n_names", ctypes.c_int64),
        ("given", _List), ("given_names", _Items), ("given_table", _P),
    ]


@dataclass
class _Keep:
    """Buffers the C reads or writes: referenced here until the call returns."""

    items: list[object]

    def ptr(self, array: npt.NDArray[np.generic]) -> int:
        array = np.ascontiguousarray(array)
        self.items.append(array)
        return int(array.ctypes.data)


@dataclass(frozen=True)
class Derived:
    """One batch through facts.c: the fact (and given-treatment) buffers, and the distinct given
    lists (per row its list number, per list its first row)."""

    buffers: dict[str, Buffer]
    given_list: npt.NDArray[np.int32]
    first_rows: npt.NDArray[np.int64]


class NativeFacts:
    """facts.c built for this knowledge base's fact columns, drug flags and the plan's given drugs."""

    def __init__(self, derivation: Derivation, plan: Plan, lib: ctypes.CDLL) -> None:
        self.derivation = derivation
        self.plan = plan
        self.outputs = outputs(derivation, plan)
        self.fn = lib.mbcnav_facts
        self.fn.restype = ctypes.c_int
        self.fn.argtypes = [ctypes.c_int64, ctypes.POINTER(native.Column), ctypes.POINTER(_Lists),
                            ctypes.POINTER(_Output), _P, ctypes.c_int64]
        self.categories = {name: pl.Series(derivation.enum(name).categories.to_list(), dtype=derivation.enum(name))
                           for name, kind in self.outputs if kind == "enum"}
        self.flags = flag_names(derivation)
        self.arena = native.Arena()
        self.first_never_null = len(self.outputs) - 2 * len(self.flags) - len(given_outputs(plan))
        self.lists_fn = lib.mbcnav_given_lists
        self.lists_fn.restype = ctypes.c_int64
        self.lists_fn.argtypes = [ctypes.c_int64, ctypes.POINTER(_Lists), _P, _P, _P, ctypes.c_int64]
        self.outcomes = list(_allowed(OUTCOMES))
        self.input_enums = _input_enums()

    def derive(self, valid: pl.DataFrame, tables: BatchTables, reuse: bool = False) -> Derived:
        """Every fact facts.c derives from a validated batch, as Arrow-layout buffers padded to
        whole 64-row words.

        `reuse`: write into this thread's buffers from the previous batch (`native.Arena`): the
        caller must copy what it keeps before the thread's next batch.
        """
        hold = _Keep([])
        inputs = valid.select(**INPUTS)
        columns = [_column(inputs[name], hold) for name in INPUTS]
        return self._run(valid.height, columns, self._lists(_polars_lists(valid), tables, hold), hold, reuse)

    def derive_arrow(self, batch: pa.RecordBatch, tables: BatchTables, reuse: bool = False) -> Derived:
        """`derive` straight from a Parquet batch in the Profile's layout (`validate_arrow.canonical`):
        Enums are read as dictionary indices through a per-batch table, missing values take the
        model's defaults there (validation would have filled them in). Rows validation rejects
        get facts too, from whatever they hold; the caller leaves them out."""
        hold = _Keep([])
        fields = validate_arrow.Fields(batch)
        columns = [self._arrow_column(name, fields.get(*path), hold) for name, path in INPUT_PATHS.items()]
        return self._run(batch.num_rows, columns, self._lists(_arrow_lists(fields), tables, hold), hold, reuse)

    def _run(self, n: int, columns: list[native.Column], found_lists: tuple[_Lists, npt.NDArray[np.uint64]],
             hold: _Keep, reuse: bool) -> Derived:
        lists, scratch = found_lists
        allocate = self.arena.take if reuse else native.zeros
        found = {name: Buffer(kind, *_buffers(name, kind, n, i >= self.first_never_null, allocate))
                 for i, (name, kind) in enumerate(self.outputs)}
        out = (_Output * len(found))(*(_Output(hold.ptr(b.values), None if b.valid is None else hold.ptr(b.valid))
                                       for b in found.values()))
        inputs = (native.Column * len(columns))(*columns)
        if self.fn(n, inputs, ctypes.byref(lists), out, hold.ptr(scratch), scratch.size) != 0:
            raise RuntimeError("facts.c: a history longer than its scratch space")   # sized in _lists
        row_list = np.zeros(n, dtype=np.int32)
        capacity = 1 << 12
        while True:   # a batch rarely records more than a few hundred distinct regimens
            first_rows = np.zeros(capacity, dtype=np.int64)
            table = np.full(capacity, -1, dtype=np.int64)
            count = self.lists_fn(n, ctypes.byref(lists), hold.ptr(row_list), hold.ptr(first_rows),
                                  hold.ptr(table), capacity)
            if count >= 0:
                return Derived(found, row_list, first_rows[:count])
            capacity *= 4

    def _arrow_column(self, name: str, array: pa.Array, hold: _Keep) -> native.Column:
        """An input read in place: values and validity (a struct: validity only); an Enum's
        dictionary indices with a table to its codes, and its default's code when missing."""
        hold.items.append(array)
        enum = self.input_enums.get(name)
        if enum is None:
            values = array.buffers()[1] if len(array.buffers()) > 1 and not pa.types.is_struct(array.type) else None
            validity = array.buffers()[0]
            return native.Column(None if values is None else values.address,
                                 None if validity is None else validity.address, array.offset)
        categories, default = enum
        indices = array.indices if array.indices.type == pa.int32() else array.indices.cast(pa.int32())
        hold.items.append(indices)
        found = pc.index_in(array.dictionary.cast(pa.large_string()), value_set=categories)
        table = np.asarray(found.fill_null(-1), dtype=np.int16)
        validity = indices.buffers()[0]
        return native.Column(indices.buffers()[1].address, None if validity is None else validity.address,
                             indices.offset, hold.ptr(table if table.size else np.zeros(1, np.int16)), default)

    def stages(self, valid: pl.DataFrame, tables: BatchTables, keep: Sequence[str]) -> pl.LazyFrame:
        """The same frame as `Derivation.stages(valid, tables, keep)`, from one compiled pass."""
        found = self.derive(valid, tables).buffers
        derived = [self.series(name, found[name], valid.height) for name, _ in self.outputs
                   if name in self.derivation.columns and name not in PASSED]
        frame = pl.DataFrame([*valid.select(*keep, **PASSED), *derived])
        return frame.lazy().select([*keep, *self.derivation.columns])

    def series(self, name: str, buffer: Buffer, n: int) -> pl.Series:
        """A fact's buffers as its Polars column (Enums through their categories)."""
        mask = None if buffer.valid is None else pa.py_buffer(buffer.valid)
        values = pa.py_buffer(buffer.values)
        if buffer.kind == "bool":
            return pl.Series(name, pa.Array.from_buffers(pa.bool_(), n, [mask, values]))
        if buffer.kind == "number":
            return pl.Series(name, pa.Array.from_buffers(pa.float64(), n, [mask, values]))
        codes = pl.Series(pa.Array.from_buffers(pa.uint8(), n, [mask, values]))
        return self.categories[name].gather(codes).alias(name)

    def _lists(self, found: ListInputs, tables: BatchTables, hold: _Keep) -> tuple[_Lists, npt.NDArray[np.uint64]]:
        """The list columns as Arrow arrays, read in place: dictionary indices or Categorical
        codes with a table to their positions (built once per batch), other text encoded here.
        Lists whose default is [] are read without their validity: a missing one is empty."""
        names = list(tables.names.names)
        out = _Lists()
        scratch = 1
        for part, entries in (("met", found.metastatic), ("early", found.early)):
            drugs = entries.values.field("drugs")
            setattr(out, part, _rows(entries, hold, keep_validity=False))
            setattr(out, f"{part}_drugs", _rows(drugs, hold))
            setattr(out, f"{part}_drug_names", _items(drugs.values, names, len(names), found.categories.get(part),
                                                      hold))
            offsets = entries.offsets   # room for the whole batch's entries: no per-row pass to size it
            scratch = max(scratch, int(offsets[-1].as_py()) - int(offsets[0].as_py()) if len(offsets) else 0)
        out.met_outcome = _items(found.metastatic.values.field("outcome"), self.outcomes, -1,
                                 found.categories.get("outcome"), hold)
        months = found.early.values.field("months_since_end")
        out.early_months = _Numbers(_address(months, 1, 8), _address(months, 0), months.offset)
        out.sites = _rows(found.sites, hold)
        out.site_items = _items(found.sites.values, list(SITES), 63, found.categories.get("sites"), hold)
        out.conditions = _rows(found.conditions, hold, keep_validity=False)
        out.condition_items = _items(found.conditions.values, list(CONDITIONS), 63, found.categories.get("conditions"),
                                     hold)
        qt = list(tables.qt_names)
        out.medications = _rows(found.medications, hold, keep_validity=False)
        out.medication_qt = hold.ptr((segments.codes(found.medications.values, qt, len(qt)) < len(qt)).astype(np.uint8))
        out.name_flags = hold.ptr(self._name_flags(names, tables))
        out.n_names = len(names)
        out.given = _rows(found.given, hold)
        out.given_names = _items(found.given.values, names, len(names), found.categories.get("given"), hold)
        out.given_table = hold.ptr(self._given_table(names, tables))
        hold.items.append(found)
        return out, self.arena.take("scratch", scratch, np.uint64)

    def _given_table(self, names: Sequence[str], tables: BatchTables) -> npt.NDArray[np.uint64]:
        """Per drug name (and a last row for unknown names): which of the plan's given drugs it is
        (through combination parts, as PolarsPlan.given), then whether it is something else, a trial."""
        plan = self.plan
        known = {*plan.given, *plan.not_systemic, TRIAL}

        def bits(ids: tuple[str, ...]) -> list[bool]:
            parts = plan.parts(ids)
            return [d in parts for d in plan.given] + [any(p not in known for p in parts), TRIAL in parts]

        return _bit_table([bits(tables.names.ids.get(name, ())) for name in names], len(plan.given) + 2)

    def _name_flags(self, names: Sequence[str], tables: BatchTables) -> npt.NDArray[np.uint64]:
        """Per drug name (and a last row for unknown names): entry-class bits, then flag bits."""
        drugs = self.derivation.drugs

        def bits(ids: tuple[str, ...]) -> list[bool]:
            expanded = drugs.expand(ids)
            classes = drugs.classes_of(expanded)
            return [cls in classes for cls in ENTRY_CLASSES] + [
                (flag in classes) if kind == "class" else (flag in expanded) for kind, flag in self.flags]

        return _bit_table([bits(tables.names.ids.get(name, ())) for name in names],
                          len(ENTRY_CLASSES) + len(self.flags))


def _bit_table(rows: Sequence[Sequence[bool]], width: int) -> npt.NDArray[np.uint64]:
    """One row of 64-bit words per entry, bit b set where rows[i][b] is, and a last all-zero row
    (the code of a missing or unknown name)."""
    table = np.zeros((len(rows) + 1, (width + 63) // 64), dtype=np.uint64)
    for row, flags in enumerate(rows):
        for b, on in enumerate(flags):
            if on:
                table[row, b // 64] |= np.uint64(1 << (b % 64))
    return table


def flag_names(derivation: Derivation) -> list[tuple[str, str]]:
    return [("class", c) for c in derivation.flag_classes] + [("drug", d) for d in derivation.flag_drugs]


def flag_words(flags: int) -> int:
    return (len(ENTRY_CLASSES) + flags + 63) // 64


def given_outputs(plan: Plan) -> list[tuple[str, Kind]]:
    """What PolarsPlan.given reads about the treatment given, `_given_n` as its bit planes."""
    return [*((f"_g_{d}", "bool") for d in plan.given), ("_given_other", "bool"), ("_given_trial", "bool"),
            ("_given_none", "bool"), *((f"_given_n_{b}", "bool") for b in range(INT_BITS))]


def outputs(derivation: Derivation, plan: Plan) -> list[tuple[str, Kind]]:
    """The C's outputs in the order of `out[]`: facts, the treatment given, then drug flags."""
    boolean: Kind = "bool"
    sites = [(f"site_{s}", boolean) for s in SITES]
    conditions = [(CONDITION_COLUMNS[c], boolean) for c in CONDITIONS]
    flags = [(f"{when}_{flag}", boolean) for _, flag in flag_names(derivation) for when in ("met", "prior")]
    return [*_HEAD, *sites, *_DISEASE, *conditions, *_HISTORY, *_COPIED, *given_outputs(plan), *flags]


INPUT_KINDS = ("ENUM", "BOOL", "INT", "REAL", "STRUCT")


def _input_kind(dtype: pl.DataType) -> str:
    """How facts.c stages an input (IN_KIND in the header)."""
    if isinstance(dtype, pl.Enum):
        return "ENUM"
    if isinstance(dtype, pl.Boolean):
        return "BOOL"
    if isinstance(dtype, pl.Int64):
        return "INT"
    if isinstance(dtype, pl.Float64):
        return "REAL"
    if isinstance(dtype, pl.Struct):
        return "STRUCT"
    raise TypeError(f"facts.c cannot read an input of type {dtype}")


def header(derivation: Derivation, plan: Plan) -> str:
    """facts_layout.h: positions and codes facts.c is written against."""
    lines = ["/* Generated by mbcnav/cohort/native/facts.py: do not edit. */"]
    lines += [f"#define IN_{name} {i}" for i, name in enumerate(INPUTS)]
    schema = pl.LazyFrame(schema=canonical_schema()).select(**INPUTS).collect_schema()
    input_kinds = [_input_kind(dtype) for dtype in schema.values()]
    lines += [f"#define INPUT_COUNT {len(INPUTS)}",
              *(f"#define IN_{kind} {i}" for i, kind in enumerate(INPUT_KINDS)),
              f"static const unsigned char IN_KIND[INPUT_COUNT] = {{{', '.join(f'IN_{k}' for k in input_kinds)}}};"]
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Enum):
            lines += [f"#define C_{name}_{_symbol(v)} {i}" for i, v in enumerate(dtype.categories.to_list())]
    lines += [f"#define C_outcome_{_symbol(v)} {i}" for i, v in enumerate(_allowed(OUTCOMES))]
    every = outputs(derivation, plan)
    kinds = {"bool": 0, "enum": 1, "number": 2}
    lines += [f"#define OUTPUTS {len(every)}",
              f"static const unsigned char OUT_KIND[OUTPUTS] = {{{', '.join(str(kinds[k]) for _, k in every)}}};"]
    for i, (name, kind) in enumerate(every):
        lines.append(f"#define OUT_{name} {i}")
        if kind == "enum":
            categories = derivation.enum(name).categories.to_list()
            lines += [f"#define O_{name}_{_symbol(v)} {c}" for c, v in enumerate(categories)]
    lines += [
        f"#define OUT_site_first {every.index(('site_' + SITES[0], 'bool'))}",
        f"#define OUT_condition_first {every.index((CONDITION_COLUMNS[CONDITIONS[0]], 'bool'))}",
        f"#define OUT_flag_first {len(every) - 2 * len(flag_names(derivation))}",
        f"#define SITE_COUNT {len(SITES)}",
        f"#define CONDITION_COUNT {len(CONDITIONS)}",
        *(f"#define SITE_{s} {bit}ull" for s, bit in SITE_BITS.items()),
        f"#define SITES_VISCERAL {sum(SITE_BITS[s] for s in VISCERAL_SITES)}ull",
        f"#define SITES_LOCAL {SITE_BITS['chest_wall'] | SITE_BITS['breast']}ull",
        f"#define ENTRY_CLASSES {len(ENTRY_CLASSES)}",
        *(f"#define CLASS_{c} {i}" for i, c in enumerate(ENTRY_CLASSES)),
        f"#define FLAGS {len(flag_names(derivation))}",
        f"#define FLAG_WORDS {flag_words(len(flag_names(derivation)))}",
        f"#define GIVEN {len(plan.given)}",
        f"#define GIVEN_WORDS {(len(plan.given) + 2 + 63) // 64}",
        f"#define OUT_given_first {every.index(('_g_' + plan.given[0], 'bool')) if plan.given else 0}",
        f"#define OUT_given_none {every.index(('_given_none', 'bool'))}",
        f"#define OUT_given_n_first {every.index(('_given_n_0', 'bool'))}",
        f"#define INT_BITS {INT_BITS}",
    ]
    return "\n".join(lines) + "\n"


def build(derivation: Derivation, plan: Plan) -> NativeFacts | None:
    """facts.c compiled for this derivation and plan, or None (no compiler, or compiled passes off)."""
    source = (native.HERE / "facts.c").read_text(encoding="utf-8")
    lib = native.library("facts", {"facts.c": source, "facts_layout.h": header(derivation, plan), **native.headers()})
    return None if lib is None else NativeFacts(derivation, plan, lib)


def _input_enums() -> dict[str, tuple[pa.Array, int]]:
    """Per Enum input: its categories (codes are positions) and the code of its default (-1: none)."""
    schema = pl.LazyFrame(schema=canonical_schema()).select(**INPUTS).collect_schema()
    tree = profile_tree()
    out: dict[str, tuple[pa.Array, int]] = {}
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Enum):
            categories = dtype.categories.to_list()
            spec = tree
            for part in INPUT_PATHS[name]:
                spec = next(f for f in spec.fields if f.name == part)
            out[name] = (pa.array(categories, pa.large_string()),
                         categories.index(spec.default) if spec.default is not None else -1)
    return out


def _allowed(path: tuple[str, ...]) -> tuple[str, ...]:
    dtype: pl.DataType = canonical_schema()[path[0]]
    for name in path[1:]:
        while isinstance(dtype, pl.List):
            dtype = instance(dtype.inner)
        assert isinstance(dtype, pl.Struct)
        dtype = instance(next(f.dtype for f in dtype.fields if f.name == name))
    assert isinstance(dtype, pl.Enum)
    return tuple(dtype.categories.to_list())


def _categories(dtype: pl.DataType, *path: str) -> pa.Array | None:
    """The text of each code of the Categorical (or Enum) at `path` in `dtype`, through lists and
    structs, or None when the items there are text (they are then encoded here)."""
    dtype = instance(dtype)
    for name in path:
        while isinstance(dtype, pl.List):
            dtype = instance(dtype.inner)
        assert isinstance(dtype, pl.Struct)
        dtype = instance(next(f.dtype for f in dtype.fields if f.name == name))
    while isinstance(dtype, pl.List):
        dtype = instance(dtype.inner)
    if not isinstance(dtype, pl.Categorical | pl.Enum):
        return None
    found = dtype.categories          # an Enum's is a Series, a Categorical's a Categories object
    return (found if isinstance(found, pl.Series) else found.to_series()).to_arrow()


def _address(array: pa.Array, buffer: int, width: int = 0) -> int | None:
    """Address of one of `array`'s buffers; values (`width` bytes each) from the array's offset."""
    found = array.buffers()[buffer]
    if found is None:
        return None
    return int(found.address) + int(array.offset) * width


def _rows(array: pa.Array, hold: _Keep, keep_validity: bool = True) -> _List:
    """A list array's per-row offsets (absolute into its values) and validity, in place."""
    offsets = np.asarray(array.offsets, dtype=np.int64)   # a large list's offsets: no copy
    return _List(hold.ptr(offsets), _address(array, 0) if keep_validity else None, array.offset)


@dataclass(frozen=True)
class ListInputs:
    """The list columns facts.c reads, as Arrow arrays, and for those holding Polars Categorical
    codes (integers) the text of each code."""

    metastatic: pa.Array    # entries {drugs, outcome, months}
    early: pa.Array         # entries {drugs, setting, months_since_end}
    sites: pa.Array
    conditions: pa.Array
    medications: pa.Array
    given: pa.Array
    categories: dict[str, pa.Array | None]


def _polars_lists(valid: pl.DataFrame) -> ListInputs:
    """A validated frame's lists (Categoricals exported as their codes: exporting the Categorical
    itself costs ~8 ms per 500,000 lists)."""
    picked = valid.select(
        history=pl.col("history").to_physical(),
        sites=_f("disease", "sites").to_physical(),
        conditions=_f("health", "conditions").to_physical(),
        medications=pl.col("current_medications"),
        given=pl.col("given_drugs").to_physical(),
    )
    schema = valid.schema
    newest = pl.CompatLevel.newest()
    history = picked["history"].to_arrow(compat_level=newest)
    return ListInputs(
        metastatic=history.field("metastatic"), early=history.field("early"),
        sites=picked["sites"].to_arrow(compat_level=newest),
        conditions=picked["conditions"].to_arrow(compat_level=newest),
        medications=picked["medications"].to_arrow(), given=picked["given"].to_arrow(compat_level=newest),
        categories={"met": _categories(schema["history"], "metastatic", "drugs"),
                    "early": _categories(schema["history"], "early", "drugs"),
                    "outcome": _categories(schema["history"], "metastatic", "outcome"),
                    "sites": _categories(schema["disease"], "sites"),
                    "conditions": _categories(schema["health"], "conditions"),
                    "given": _categories(schema["given_drugs"])})


def _arrow_lists(fields: validate_arrow.Fields) -> ListInputs:
    """A canonical Parquet batch's lists (dictionary-encoded text), each struct's validity merged in."""
    return ListInputs(
        metastatic=fields.get("history", "metastatic"), early=fields.get("history", "early"),
        sites=fields.get("disease", "sites"), conditions=fields.get("health", "conditions"),
        medications=fields.get("current_medications"), given=fields.get("given_drugs"), categories={})


def _items(array: pa.Array, positions: Sequence[str], missing: int, categories: pa.Array | None,
           hold: _Keep) -> _Items:
    """List items as uint32 codes and a table from code to position in `positions` (`missing` if
    absent): Categorical codes as exported, dictionary indices, or text encoded here."""
    if pa.types.is_dictionary(array.type):
        codes, dictionary = array.indices, array.dictionary
    elif pa.types.is_integer(array.type):
        if categories is None:
            raise TypeError("integer list items without categories: not Categorical codes")
        codes, dictionary = array, categories
    else:
        encoded = pc.dictionary_encode(array.cast(pa.large_string()))
        codes, dictionary = encoded.indices, encoded.dictionary
    if codes.type.bit_width != 32:
        codes = codes.cast(pa.uint32())
    hold.items.append(codes)
    found = pc.index_in(dictionary.cast(pa.large_string()), value_set=pa.array(list(positions), pa.large_string()))
    table = np.append(np.asarray(found.fill_null(missing), dtype=np.int64), missing)
    return _Items(_address(codes, 1, 4), _address(codes, 0), codes.offset, hold.ptr(table), missing)


def _buffers(name: str, kind: Kind, n: int, never_null: bool, allocate: Callable[[str, int, Any], npt.NDArray[Any]]
             ) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.uint8] | None]:
    """Output buffers for facts.c, bitmaps in whole 64-bit words (it writes a word per 64 rows and
    every value row, so their contents before the call do not matter)."""
    rows = (n + 63) // 64 * 64
    valid = None if never_null else allocate(f"{name}/valid", rows // 8, np.uint8)
    if kind == "bool":
        return allocate(name, rows // 8, np.uint8), valid
    if kind == "number":
        return allocate(name, rows, np.float64), valid
    return allocate(name, rows, np.uint8), valid


def _column(series: pl.Series, hold: _Keep) -> native.Column:
    """A Polars column as Arrow buffers: validity bitmap, values (Enums as their uint8 codes)."""
    physical = series.rechunk().to_physical()
    if isinstance(series.dtype, pl.Enum) and physical.dtype != pl.UInt8:
        raise TypeError(f"{series.name}: facts.c reads Enum codes as bytes, not {physical.dtype}")
    array = physical.to_arrow()
    hold.items.append(array)
    buffers = array.buffers()
    validity = buffers[0].address if buffers[0] is not None else None
    values = buffers[1].address if len(buffers) > 1 and buffers[1] is not None else None
    return native.Column(values, validity, array.offset)
