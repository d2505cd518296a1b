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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from mbcnav.cohort import native
from mbcnav.cohort.facts import BatchTables, Derivation
from mbcnav.cohort.native import facts as compiled_facts
from mbcnav.cohort.native.facts import Derived, NativeFacts
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
from mbcnav.cohort.rules import OUTPUT_COLUMNS, PolarsPlan, _as_lists, _generic_ids, _words
from mbcnav.cohort.schema import ROW
from mbcnav.knowledge.loader import Knowledge

log = logging.getLogger(__name__)
INTS = ("_decision_point", "_concordance")


class NativeEngine:
    """The knowledge base's facts, conditions and plan as compiled passes."""

    def __init__(self, facts: NativeFacts, polars: PolarsPlan, program: Program) -> None:
        self.facts = facts
        self.polars = polars
        self.program = program

    def results(self, valid: pl.DataFrame, tables: BatchTables, unnamed: bool) -> pl.DataFrame:
        derived = self.derive(valid, tables)
        out = self.program.run(valid.height, derived.buffers, reuse=True)
        return self.answer(valid, tables, derived, out, unnamed)

    def derive(self, valid: pl.DataFrame, tables: BatchTables) -> Derived:
        """facts.c's pass, and `_given_n` laid out as the program reads an integer."""
        derived = self.facts.derive(valid, tables, reuse=True)
        found = derived.buffers
        planes = [found[f"_given_n_{b}"].values.view(np.uint64) for b in range(INT_BITS)]
        found["_given_n"] = Buffer("bool", np.ascontiguousarray(np.stack(planes, axis=1)).reshape(-1), None)
        return derived

    def answer(self, valid: pl.DataFrame, tables: BatchTables, derived: Derived, out: Outputs,
               unnamed: bool) -> pl.DataFrame:
        """The same columns as `PolarsPlan.answer`, from the program's outputs.

        Every column returned is a new array (gathers, labels, lists): the buffers read here are
        this thread's, reused by its next batch.
        """
        n = valid.height
        found = derived.buffers
        distinct = _generic_ids(valid["given_drugs"].gather(derived.first_rows), tables.names.ids)
        given_ids = distinct.gather(pl.Series(derived.given_list))
        positions = [_ints(name, out.values[name], out.known[name], n) for name in INTS]
        frame = pl.DataFrame([
            valid[ROW], valid["patient_id"], *(self.facts.series(c, found[c], n) for c in ("subtype", "her2", "line")),
            given_ids, *positions,
        ])
        masks = [pl.Series(f"{name}#{w}", word[:n].view(np.int64))
                 for name, words in out.masks.items() for w, word in enumerate(words)]
        scalar = frame.select(self.polars.scalars(unnamed)).with_columns(masks)
        lists = [_as_lists(scalar, name, items) for name, items in self.polars.lists.items()]
        return scalar.with_columns(lists).select(OUTPUT_COLUMNS)


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
    return None if program is None or facts is None else NativeEngine(facts, polars, program)


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
