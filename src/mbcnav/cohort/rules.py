"""Evaluate the plan locally: the knowledge base's condition texts through `polars.sql_expr`.

Each condition text becomes one boolean column (Polars), then the plan's SQL (status, safety net,
tests, decision point, concordance) runs over those columns as packed bit vectors (`bits`: the
same texts, about five times less CPU than Polars for this much boolean logic), then the
booleans become the output lists in the engine's ranked order. Nothing here loops over patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from mbcnav import vocabulary
from mbcnav.cohort import bits
from mbcnav.cohort.facts import _any_bit, _mask
from mbcnav.cohort.plan import CONCORDANCE, TRIAL, Plan
from mbcnav.cohort.schema import ROW
from mbcnav.cohort.tables import WORD_BITS, NameBits

SUBTYPES = ("hr_positive_her2_negative", "hr_positive_her2_positive", "hr_negative_her2_positive",
            "triple_negative", "unknown")
HER2_CATEGORIES = ("positive", "low", "ultralow", "zero", "unknown")
LIST_COLUMNS = ("options_preferred", "options_alternative", "options_selected_cases", "local_and_supportive",
                "tests_to_consider", "safety_flags")


@dataclass(frozen=True)
class Ruled:
    """One batch after the plan: the columns the answer reads, and the plan's output values."""

    frame: pl.DataFrame
    values: dict[str, bits.Value]


class PolarsPlan:
    """The plan compiled once for every batch: condition texts as Polars expressions, the steps as
    one bit-vector program (`bits.Program`)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.conditions = [pl.sql_expr(text).alias(name) for name, text in plan.conditions.items()]
        self.lists: dict[str, list[tuple[str, str]]] = {
            **{f"options_{tier}": [(f"_o_{i}", i) for i in ids] for tier, ids in plan.options.items()},
            "local_and_supportive": [(f"_o_{i}", i) for i in plan.local],
            "tests_to_consider": [(f"_t_{i}", i) for i in plan.tests],
            "safety_flags": plan.safety_flags(),
        }
        outputs = [c for items in self.lists.values() for c, _ in items]
        self.program = bits.Program(plan.steps, [*outputs, "_decision_point", "_concordance"])

    def given(self, names: NameBits) -> list[pl.Expr]:
        """What the concordance SQL reads about the treatment given (`_g_<drug>`, `_given_n`, ...).

        Brand names count as their generic drugs: the masks below are per typed name.
        """
        masks = [pl.col(f"_gmask{w}") for w in range(names.words)]
        known = {*self.plan.given, *self.plan.not_systemic, TRIAL}
        parts = self.plan.parts
        flags = {f"_g_{d}": _any_bit(masks, names.having(lambda ids, d=d: d in parts(ids)))  # type: ignore[misc]
                 for d in self.plan.given}
        count = pl.sum_horizontal([f.cast(pl.Int32) for f in flags.values()]) if flags else pl.lit(0)
        other = _any_bit(masks, names.having(lambda ids: any(i not in known for i in parts(ids))))
        return [
            *(e.alias(n) for n, e in flags.items()),
            count.alias("_given_n"),
            other.alias("_given_other"),
            _any_bit(masks, names.having(lambda ids: TRIAL in parts(ids))).alias("_given_trial"),
            (pl.col("given_drugs").is_null() | ((count == 0) & ~other)).alias("_given_none"),
        ]

    def given_masks(self, names: NameBits) -> list[pl.Expr]:
        enum = pl.Enum(list(names.names))

        def codes(element: pl.Expr) -> pl.Expr:
            return element.cast(enum, strict=False).to_physical()

        return [_mask(pl.col("given_drugs"), codes, w, names.words).alias(f"_gmask{w}") for w in range(names.words)]

    def evaluate(self, facts: pl.LazyFrame, names: NameBits, ids: Mapping[str, tuple[str, ...]],
                 unnamed: bool = True) -> pl.DataFrame:
        """Facts -> one results row per patient. `ids`: typed drug name -> generic ids."""
        return self.answer(self.rules(facts, names, ids), unnamed)

    def given_columns(self, facts: pl.LazyFrame, names: NameBits, ids: Mapping[str, tuple[str, ...]]) -> pl.DataFrame:
        """Everything read about the treatment given, worked out once per distinct list of names.

        A cohort records few distinct regimens (dozens in 500,000 patients), so the masks, flags
        and generic ids are computed per list and gathered back to the rows by list number: one
        hash join on the names alone instead of list expressions over every row.
        """
        given = facts.select("given_drugs").collect()
        distinct = given.unique().with_row_index("_k")
        number = given.join(distinct, on="given_drugs", how="left", nulls_equal=True, maintain_order="left")["_k"]
        table = distinct.with_columns(self.given_masks(names)).with_columns(self.given(names)).with_columns(
            _generic_ids(distinct["given_drugs"], ids))
        return table.drop("_k", "given_drugs", *(f"_gmask{w}" for w in range(names.words)))[number]

    def rules(self, facts: pl.LazyFrame, names: NameBits, ids: Mapping[str, tuple[str, ...]]) -> Ruled:
        """The condition columns (Polars), then the plan's steps over them (bit vectors)."""
        given = self.given_columns(facts, names, ids)
        frame = pl.concat([facts, given.lazy()], how="horizontal").with_columns(self.conditions)
        read = dict.fromkeys([ROW, *ANSWER_READS, *self.program.inputs])
        collected = frame.select(list(read)).collect()
        return Ruled(collected, self.program.run(collected))

    def answer(self, ruled: Ruled, unnamed: bool) -> pl.DataFrame:
        """The plan's values -> the results columns (ids as lists, positions as labels)."""
        n = ruled.frame.height
        positions = [bits.as_series(c, ruled.values[c], n) for c in ("_decision_point", "_concordance")]
        words = [pl.Series(f"{name}#{w}", bits.mask_word([_true(ruled.values[c]) for c, _ in chunk], n))
                 for name, items in self.lists.items() for w, chunk in enumerate(_words(items))]
        scalar = ruled.frame.with_columns(positions).select(self.scalars(unnamed)).with_columns(words)
        lists = [_as_lists(scalar, name, items) for name, items in self.lists.items()]
        return scalar.with_columns(lists).select(OUTPUT_COLUMNS)

    def scalars(self, unnamed: bool, labelled: bool = False) -> list[pl.Expr]:
        """`unnamed`: some rows have no patient_id (they are named by row number). `labelled`: the
        subtype and HER2 columns already hold the results' Enums, 'unknown' included (a cast
        between Enums goes through their text: ~15 ms per 500,000 rows each)."""
        patient = pl.coalesce(pl.col("patient_id"), pl.format("row-{}", pl.col(ROW))) if unnamed else pl.col(
            "patient_id")
        subtype, her2 = pl.col("subtype"), pl.col("her2")
        if not labelled:
            subtype = subtype.cast(pl.Enum(SUBTYPES)).fill_null("unknown")
            her2 = her2.cast(pl.Enum(HER2_CATEGORIES)).fill_null("unknown")
        return [
            patient.alias("patient_id"),
            pl.col(ROW).alias("row"),
            subtype.alias("subtype"),
            her2.alias("her2_category"),
            _label(pl.col("_decision_point"), self.plan.decision_points).alias("decision_point"),
            pl.col("line").cast(pl.Int32).alias("line"),
            pl.col("_given_ids").alias("given_drugs"),
            _label(pl.col("_concordance"), CONCORDANCE).alias("concordance"),
        ]


OUTPUT_COLUMNS = ("patient_id", "row", "subtype", "her2_category", "decision_point", "line", *LIST_COLUMNS,
                  "given_drugs", "concordance")


# Columns `scalars` reads besides the plan's values.
ANSWER_READS = ("patient_id", "subtype", "her2", "line", "_given_ids")


def _words(items: Sequence[tuple[str, str]]) -> list[Sequence[tuple[str, str]]]:
    """The items in mask words of up to 62 (an Int64 stays positive), at least one word."""
    return [items[start:start + WORD_BITS] for start in range(0, max(len(items), 1), WORD_BITS)]


def _true(value: bits.Value) -> bits.Bytes:
    """Which rows hold TRUE (a list takes an item only then, not when it is NULL)."""
    if not isinstance(value, bits.Bool3):
        raise bits.PlanSyntaxError(f"a list item must be a boolean, not {type(value).__name__}")
    return value.t


def _as_lists(frame: pl.DataFrame, name: str, items: Sequence[tuple[str, str]]) -> pl.Series:
    """Mask words -> list of ids in the given order, through the few distinct masks a cohort has.

    Building a list per row from dozens of booleans costs more than everything before it; a
    cohort has only a few thousand distinct combinations, so each is spelled out once (through
    Arrow: Polars takes ~7 µs per list it converts from Python) and gathered to the rows.
    """
    parts = []
    for w, chunk in enumerate(_words(items)):
        ids = [i for _, i in chunk]
        encoded = pc.dictionary_encode(frame[f"{name}#{w}"].to_arrow())
        table = [[ids[b] for b in range(len(ids)) if m >> b & 1] for m in encoded.dictionary.to_pylist()]
        lists = pl.Series(pa.array(table, pa.list_(pa.string()))).cast(pl.List(pl.Enum(ids)))
        parts.append(lists.gather(pl.Series(encoded.indices)))
    if len(parts) == 1:
        return parts[0].alias(name)
    every = pl.List(pl.Enum([i for _, i in items]))
    return pl.select(pl.concat_list([p.cast(every) for p in parts]).alias(name)).to_series()


@cache
def given_ids_type() -> pl.List:
    """The results' `given_drugs`: generic ids of the vocabulary, as an Enum (written as a few
    dictionary codes per page; as text they cost twice the CPU to write)."""
    return pl.List(pl.Enum(sorted({i for ids in vocabulary.names().values() for i in ids})))


@cache
def _given_id_set() -> frozenset[str]:
    return frozenset(given_ids_type().inner.categories)   # type: ignore[union-attr]


def _generic_ids(given: pl.Series, ids: Mapping[str, tuple[str, ...]]) -> pl.Series:
    """Lists of given drug names -> their generic ids, each once, in order (brand names resolved).

    A name outside the vocabulary has no id: only rows validation rejects can hold one (the
    compiled passes evaluate them with the rest and leave them out afterwards).
    """
    known = _given_id_set()
    resolved = [None if names is None else list(dict.fromkeys(i for n in names for i in ids.get(n, (n,)) if i in known))
                for names in given.to_list()]
    return pl.Series("_given_ids", resolved, dtype=given_ids_type())


def _label(position: pl.Expr, labels: Sequence[str]) -> pl.Expr:
    """Position -> its label, as an Enum (the plan answers with positions)."""
    return pl.lit(pl.Series(labels, dtype=pl.Enum(list(labels)))).gather(position)
