"""facts.tabulated and Derivation.recode give what the expressions they stand for give, row by row."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcnav.cohort.facts import tabulated
from mbcnav.cohort.local import Evaluator

COLOUR = pl.Enum(["red", "green", "blue"])
SIZE = pl.Enum(["small", "large"])
SCHEMA = pl.Schema({"colour": COLOUR, "size": SIZE, "flag": pl.Boolean, "n": pl.Int64})
ROWS = st.lists(st.fixed_dictionaries({
    "colour": st.none() | st.sampled_from(COLOUR.categories.to_list()),
    "size": st.none() | st.sampled_from(SIZE.categories.to_list()),
    "flag": st.none() | st.booleans(),
    "n": st.none() | st.integers(0, 9),
}), max_size=30)


def build(colour: pl.Expr, size: pl.Expr, flag: pl.Expr, big: pl.Expr) -> pl.Expr:
    return (pl.when(flag).then(pl.lit("flagged"))
            .when((colour == "red") & big).then(pl.lit("big red"))
            .when(colour.is_null() | size.is_null()).then(None)
            .otherwise(pl.concat_str(colour.cast(pl.String), size.cast(pl.String), separator=" ")))


@settings(max_examples=100, deadline=None)
@given(ROWS)
def test_a_tabulated_expression_equals_the_expression(rows: list[dict[str, object]]) -> None:
    frame = pl.DataFrame(rows, schema=SCHEMA)
    inputs = {"colour": pl.col("colour"), "size": pl.col("size"), "flag": pl.col("flag"), "big": pl.col("n") >= 5}
    looked_up = frame.select(tabulated(build, inputs, SCHEMA).alias("x"))["x"]
    direct = frame.select(build(**inputs).alias("x"))["x"]
    assert looked_up.to_list() == direct.to_list()


def test_only_enum_and_boolean_inputs_can_be_tabulated() -> None:
    with pytest.raises(TypeError, match="Enum and Boolean"):
        tabulated(lambda n: n, {"n": pl.col("n")}, SCHEMA)


def test_recode_maps_by_name_and_drops_what_the_target_lacks() -> None:
    derivation = Evaluator().derivation
    er = pl.col("tumor").struct.field("er")
    frame = pl.DataFrame({"tumor": [{"er": v} for v in ("positive", "low", "negative", "unknown", None)]},
                         schema={"tumor": pl.Struct({"er": derivation.schema["tumor"].to_schema()["er"]})})
    recoded = frame.select(derivation.known(er, "er").alias("er"))["er"]
    assert recoded.dtype == derivation.enum("er")
    assert recoded.to_list() == ["positive", "low", "negative", None, None]
