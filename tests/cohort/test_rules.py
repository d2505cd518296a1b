"""rules._as_lists: mask words -> id lists, in the items' order, over one or several words."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcnav.cohort.rules import _as_lists, _words
from mbcnav.cohort.tables import WORD_BITS

ITEMS = [(f"_o_{i}", f"option_{i}") for i in range(WORD_BITS + 8)]   # two mask words


def _frame(rows: list[set[int]], items: list[tuple[str, str]]) -> pl.DataFrame:
    columns = {}
    for w, chunk in enumerate(_words(items)):
        start = w * WORD_BITS
        columns[f"l#{w}"] = pl.Series([sum(1 << (i - start) for i in row if start <= i < start + len(chunk))
                                       for row in rows], dtype=pl.UInt64)
    return pl.DataFrame(columns)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(st.integers(0, len(ITEMS) - 1), max_size=12), max_size=40))
def test_lists_hold_the_set_bits_in_item_order(rows: list[set[int]]) -> None:
    lists = _as_lists(_frame(rows, ITEMS), "l", ITEMS)
    assert lists.name == "l"
    assert lists.dtype == pl.List(pl.Enum([i for _, i in ITEMS]))
    assert lists.to_list() == [[ITEMS[i][1] for i in sorted(row)] for row in rows]


def test_one_word_and_no_rows() -> None:
    items = ITEMS[:3]
    frame = _frame([{2, 0}, set(), {1}], items)
    assert _as_lists(frame, "l", items).to_list() == [["option_0", "option_2"], [], ["option_1"]]
    empty = _as_lists(frame.head(0), "l", items)
    assert empty.len() == 0 and empty.dtype == pl.List(pl.Enum(["option_0", "option_1", "option_2"]))
