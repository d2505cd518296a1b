"""The program's per-row mask words -> the results' list columns of ids (id_lists.c), and Enum
columns from codes.

Both are handed to Polars as Arrow arrays of the Enum's own export type (dictionary codes
carrying Polars' Enum metadata), so they arrive as `Enum` / `List(Enum)` without a cast (a cast
between Enums goes through their text: ~10 ms per 500,000 values).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from mbcnav.cohort import native
from mbcnav.cohort.tables import WORD_BITS


class IdLists:
    """id_lists.c, loaded, and per list column the Arrow type and dictionary Polars expects."""

    def __init__(self, lib: ctypes.CDLL, lists: Mapping[str, Sequence[str]]) -> None:
        self.fn = lib.mbcnav_id_lists
        self.fn.restype = ctypes.c_int64
        self.fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.c_int64]
        self.arena = native.Arena()
        self.types: dict[str, tuple[pa.DataType, pa.Array, int]] = {}
        for name, ids in lists.items():
            template = pl.Series(name, [list(ids[:1])], dtype=pl.List(pl.Enum(list(ids))))
            exported = template.to_arrow(compat_level=pl.CompatLevel.newest())
            self.types[name] = (exported.type, exported.values.dictionary, len(ids))

    def fits(self, n: int) -> bool:
        """Can `n` rows' lists be built here (32-bit offsets: fewer than 2^31 items a column)?"""
        return n * max((items for _, _, items in self.types.values()), default=0) + 8 < 2**31

    def series(self, name: str, words: Sequence[npt.NDArray[np.uint64]], n: int) -> pl.Series:
        """The list column `name` for `n` rows from its mask words.

        Polars copies both buffers on the way in (codes into its own Enum, 32-bit offsets to
        64-bit ones), so they are this thread's, reused batch after batch: fresh ones cost a page
        fault per 4 KiB, more than building the lists.
        """
        kind, dictionary, items = self.types[name]
        offsets = self.arena.take(f"{name}/offsets", n + 1, np.int32)
        codes = self.arena.take(f"{name}/codes", n * items + 8, np.uint8)
        pointers = (ctypes.c_void_p * len(words))(*(int(w.ctypes.data) for w in words))
        count = self.fn(n, pointers, len(words), WORD_BITS, offsets.ctypes.data, codes.ctypes.data, codes.size)
        if count < 0:
            raise RuntimeError(f"{name}: more items than its {items} ids allow")
        values = pa.DictionaryArray.from_arrays(pa.array(codes[:count]), dictionary, ordered=kind.value_type.ordered)
        return pl.Series(name, pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(kind.value_field)))


def enum_series(name: str, codes: npt.NDArray[np.uint8], categories: Sequence[str]) -> pl.Series:
    """An Enum column from its codes (positions in `categories`, at most 255 of them). Polars
    reads the Enum from the field's metadata, so the array goes in as a one-column batch."""
    field, dictionary = _enum_field(tuple(categories))
    array = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary, ordered=field.type.ordered)
    frame = pl.from_arrow(pa.RecordBatch.from_arrays([array], schema=pa.schema([field])))
    assert isinstance(frame, pl.DataFrame)
    return frame.to_series().alias(name)


@cache
def _enum_field(categories: tuple[str, ...]) -> tuple[pa.Field, pa.Array]:
    example = pl.DataFrame({"x": pl.Series([categories[0]], dtype=pl.Enum(list(categories)))})
    exported = example.to_arrow(compat_level=pl.CompatLevel.newest())
    return exported.schema.field("x"), exported.column("x").chunk(0).dictionary


def build(lists: Mapping[str, Sequence[str]]) -> IdLists | None:
    """id_lists.c compiled (or None: the lists are then built in Polars), when every list has at
    most 255 ids (one byte per code, as Polars stores such an Enum)."""
    if any(len(ids) > 255 for ids in lists.values()):
        return None
    source = (native.HERE / "id_lists.c").read_text(encoding="utf-8")
    lib = native.library("id_lists", {"id_lists.c": source})
    return None if lib is None else IdLists(lib, lists)
