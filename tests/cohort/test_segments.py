"""Segment reductions agree with plain Python over any list layout, empty and sliced lists included.

The parity tests hold the history facts built on them to the one-patient engine; these pin the
edge cases that realistic cohorts rarely hit (every row empty, empty rows at either end).
"""

from __future__ import annotations

from functools import reduce as fold

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcnav.cohort import segments

LISTS = st.lists(st.lists(st.integers(0, 61), max_size=5), max_size=30)


def _layout(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    values = np.array([v for r in rows for v in r], dtype=np.int64)
    return values, offsets


@settings(max_examples=300, deadline=None)
@given(rows=LISTS)
def test_or_min_and_count_per_row(rows: list[list[int]]) -> None:
    values, offsets = _layout(rows)
    bits = np.left_shift(1, values)
    assert segments.reduce(np.bitwise_or, bits, offsets, 0).tolist() == [
        fold(lambda a, b: a | b, (1 << v for v in r), 0) for r in rows]
    assert segments.reduce(np.minimum, values.astype(np.float64), offsets, 1e12).tolist() == [
        min(r, default=1e12) for r in rows]
    assert segments.count(values % 3 == 0, offsets).tolist() == [sum(v % 3 == 0 for v in r) for r in rows]


ITEMS = [f"item{k}" for k in range(62)]


def _named(rows: list[list[str | None] | None], dictionary: bool) -> pa.Array:
    """Lists of item names, as plain text or dictionary-encoded (Parquet's and Polars' Categoricals)."""
    text = pa.large_list(pa.large_string())
    array = pa.array(rows, type=text)
    return array.cast(pa.large_list(pa.dictionary(pa.int32(), pa.large_string()))) if dictionary else array


@settings(max_examples=100, deadline=None)
@given(rows=LISTS.filter(lambda r: len(r) >= 2), dictionary=st.booleans(), data=st.data())
def test_masks_of_a_sliced_arrow_list(rows: list[list[int]], dictionary: bool, data: st.DataObject) -> None:
    """A slice keeps the whole child array: its offsets still point into it."""
    start = data.draw(st.integers(0, len(rows) - 1))
    array = _named([[ITEMS[v] for v in r] for r in rows], dictionary).slice(start)
    assert segments.mask(array, ITEMS).tolist() == [
        fold(lambda a, b: a | b, (1 << v for v in r), 0) for r in rows[start:]]


def test_null_and_unknown_items_add_nothing() -> None:
    for dictionary in (False, True):
        array = _named([["item0", None, "item2", "other"], None, [], [None]], dictionary)
        assert pa.types.is_dictionary(array.type.value_type) == dictionary
        assert segments.mask(array, ITEMS).tolist() == [0b101, 0, 0, 0]
        assert segments.codes(array.values, ITEMS, 99).tolist() == [0, 99, 2, 99, 99]


def test_integer_codes_are_read_through_their_categories() -> None:
    """A Polars Categorical exported as its codes: each code names an entry of `categories`."""
    categories = pa.array(["other", "item2", "item0"], type=pa.large_string())
    array = pa.array([[2, None, 1, 0], None, [], [None]], type=pa.large_list(pa.uint32()))
    assert segments.mask(array, ITEMS, categories).tolist() == [0b101, 0, 0, 0]
    assert segments.codes(array.values, ITEMS, 99, categories).tolist() == [0, 99, 2, 99, 99]
