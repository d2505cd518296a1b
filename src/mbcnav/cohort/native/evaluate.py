"""A validated batch -> its results through the compiled passes: facts.c, then the generated program.

The same results as `Evaluator.results` on the Polars path (facts frame, condition columns, the
plan over packed bits), without building the ~180 fact columns or the ~160 condition columns as
Polars frames: facts.c writes the facts (and what the treatment given says) as Arrow-layout
buffers, the program reads them 64 rows at a time and writes only what the results file holds.
What stays in Polars is small: the generic ids of the distinct given lists, and turning masks
into lists of ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from mbcnav.cohort import native
from mbcnav.cohort.facts import BatchTables, Derivation
from mbcnav.cohort.native import facts as compiled_facts
from mbcnav.cohort.native.facts import Derived, NativeFacts
from mbcnav.cohort.native.id_lists import IdLists, enum_series
from mbcnav.cohort.native.id_lists import build as build_id_lists
from mbcnav.cohort.native.program import (
    INT_BITS,
    Buffer,
    Layout,
    Outputs,
    Program,
    Unsupported,
    compiled,
    generate,
)
from mbcnav.cohort.rules import HER2_CATEGORIES, OUTPUT_COLUMNS, SUBTYPES, PolarsPlan, _as_lists, _generic_ids, _words
from mbcnav.cohort.schema import ROW
from mbcnav.knowledge.loader import Knowledge

log = logging.getLogger(__name__)
INTS = ("_decision_point", "_concordance")


class NativeEngine:
    """The knowledge base's facts, conditions and plan as compiled passes."""

    def __init__(self, facts: NativeFacts, polars: PolarsPlan, program: Program,
                 id_lists: IdLists | None = None) -> None:
        self.facts = facts
        self.polars = polars
        self.program = program
        self.id_lists = id_lists   # None: lists built in Polars from the masks

    def results(self, valid: pl.DataFrame, tables: BatchTables, unnamed: bool) -> pl.DataFrame:
        derived = self.derive(valid, tables)
        out = self.program.run(valid.height, derived.buffers, reuse=True)
        given = valid["given_drugs"].gather(derived.first_rows)
        return self.answer(valid[ROW], valid["patient_id"], given, tables, derived, out, unnamed)

    def results_arrow(self, batch: pa.RecordBatch, first_row: int, tables: BatchTables) -> pl.DataFrame:
        """Every row of a canonical Parquet batch (`validate_arrow.canonical`), read in place; rows
        validation rejects are there too, for the caller to leave out."""
        derived = self.derive_arrow(batch, tables)
        out = self.program.run(batch.num_rows, derived.buffers, reuse=True)
        return self.answer_arrow(batch, first_row, tables, derived, out)

    def derive_arrow(self, batch: pa.RecordBatch, tables: BatchTables) -> Derived:
        return _planes(self.facts.derive_arrow(batch, tables, reuse=True))

    def answer_arrow(self, batch: pa.RecordBatch, first_row: int, tables: BatchTables, derived: Derived,
                     out: Outputs) -> pl.DataFrame:
        n = batch.num_rows
        rows = pl.int_range(first_row, first_row + n, dtype=pl.UInt64, eager=True).alias(ROW)
        ids = pl.Series("patient_id", batch.column("patient_id")).cast(pl.String)
        given = pl.Series("given_drugs", batch.column("given_drugs").take(pa.array(derived.first_rows)))
        return self.answer(rows, ids, given, tables, derived, out, ids.has_nulls())

    def _labelled(self, name: str, buffer: Buffer, labels: Sequence[str], n: int) -> pl.Series:
        """A fact's Enum as the results' Enum of `labels` (missing: 'unknown'), as PolarsPlan.scalars
        casts it, without the cast."""
        source = self.facts.categories[name].to_list()
        return enum_series(name, _codes_as(buffer, source, labels, n), labels)

    def derive(self, valid: pl.DataFrame, tables: BatchTables) -> Derived:
        """facts.c's pass, and `_given_n` laid out as the program reads an integer."""
        return _planes(self.facts.derive(valid, tables, reuse=True))

    def answer(self, rows: pl.Series, ids: pl.Series, given: pl.Series, tables: BatchTables, derived: Derived,
               out: Outputs, unnamed: bool) -> pl.DataFrame:
        """The same columns as `PolarsPlan.answer`, from the program's outputs; `given`: the
        distinct given lists (`derived.first_rows`).

        Every column returned is a new array (gathers, labels, lists): the buffers read here are
        this thread's, reused by its next batch.
        """
        n = rows.len()
        found = derived.buffers
        distinct = _generic_ids(given, tables.names.ids)
        given_ids = distinct.gather(pl.Series(derived.given_list))
        positions = [_ints(name, out.values[name], out.known[name], n) for name in INTS]
        frame = pl.DataFrame([
            rows, ids, self._labelled("subtype", found["subtype"], SUBTYPES, n),
            self._labelled("her2", found["her2"], HER2_CATEGORIES, n), self.facts.series("line", found["line"], n),
            given_ids, *positions,
        ])
        scalar = frame.select(self.polars.scalars(unnamed, labelled=True))
        if self.id_lists is not None and self.id_lists.fits(n):
            lists = [self.id_lists.series(name, out.masks[name], n) for name in self.polars.lists]
        else:
            masks = [pl.Series(f"{name}#{w}", word[:n].view(np.int64))
                     for name, words in out.masks.items() for w, word in enumerate(words)]
            with_masks = scalar.with_columns(masks)
            lists = [_as_lists(with_masks, name, items) for name, items in self.polars.lists.items()]
        return scalar.with_columns(lists).select(OUTPUT_COLUMNS)


def _codes_as(buffer: Buffer, source: Sequence[str], target: Sequence[str], n: int) -> npt.NDArray[np.uint8]:
    """An Enum fact's codes (positions in `source`) as positions in `target`; missing: 'unknown'."""
    table = np.array([target.index(v) for v in source], dtype=np.uint8)
    codes: npt.NDArray[np.uint8] = table[buffer.values[:n]]
    if buffer.valid is not None:
        known = np.unpackbits(buffer.valid.view(np.uint8), count=n, bitorder="little").view(np.bool_)
        codes[~known] = target.index("unknown")
    return codes


def _planes(derived: Derived) -> Derived:
    """`_given_n` laid out as the program reads an integer (bit planes, a word per plane per block)."""
    found = derived.buffers
    planes = [found[f"_given_n_{b}"].values.view(np.uint64) for b in range(INT_BITS)]
    found["_given_n"] = Buffer("bool", np.ascontiguousarray(np.stack(planes, axis=1)).reshape(-1), None)
    return derived


def build(kb: Knowledge, derivation: Derivation, polars: PolarsPlan) -> NativeEngine | None:
    """The compiled engine for this knowledge base, or None (compiled passes off, no compiler, or a
    text the generator does not translate: the Polars path then runs, with a warning)."""
    if not native.enabled():
        return None
    try:
        generated = generate(polars.plan.conditions, polars.plan.steps, kb.columns, _layout(derivation, polars),
                             {name: [[c for c, _ in chunk] for chunk in _words(items)]
                              for name, items in polars.lists.items()}, INTS)
    except Unsupported as err:
        log.warning("cohort plan not compiled (%s): using the Polars stages", err)
        return None
    # The two builds run side by side on a first use (gcc is single-threaded).
    with ThreadPoolExecutor(1) as pool:
        building = pool.submit(compiled_facts.build, derivation, polars.plan)
        program = compiled(generated)
        facts = building.result()
    if program is None or facts is None:
        return None
    return NativeEngine(facts, polars, program, build_id_lists({name: [i for _, i in items]
                                                                for name, items in polars.lists.items()}))


def _layout(derivation: Derivation, polars: PolarsPlan) -> dict[str, tuple[Layout, tuple[str, ...]]]:
    """Every column the program may read: facts.c's outputs (facts, input fields, the treatment given)."""
    layout: dict[str, tuple[Layout, tuple[str, ...]]] = {}
    for name, kind in compiled_facts.outputs(derivation, polars.plan):
        if kind == "enum":
            layout[name] = ("code", tuple(derivation.enum(name).categories.to_list()))
        else:
            layout[name] = (kind, ())
    layout["_given_n"] = ("int", ())
    return layout


def _ints(name: str, values: np.ndarray, known: np.ndarray, n: int) -> pl.Series:
    valid = np.unpackbits(known.view(np.uint8), count=n, bitorder="little").view(np.bool_)
    series = pl.Series(name, values[:n])
    return series if valid.all() else series.set(pl.Series(~valid), None)
