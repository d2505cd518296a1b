"""Per-patient reductions of list columns (history, sites, conditions) as numpy segment reductions.

A patient's history is a list of entries, each with a list of drug names. The facts need, per
patient, ORs of drug bits, counts of entries with a drug class, and shortest intervals. Polars
answers these with list expressions per row (0.55-0.60 s of CPU per 500,000 patients); laid out
as Arrow does it (flat values and offsets), a count is a difference of running totals and an
OR or minimum one ``ufunc.reduceat`` over the flat values. Names become positions in the batch's
table of names (`tables.NameBits`, so the meaning of a name is decided in one place) through
their Parquet dictionary, once per distinct name (`codes`).

Column names and meanings are those facts.py reads; the parity tests hold them to the
one-patient derivation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from mbcnav.cohort.tables import WORD_BITS, NameBits

Array = npt.NDArray[np.generic]
Offsets = npt.NDArray[np.int64]
NEVER = 1e12  # months: beyond any interval a profile can hold (600 at most)


def reduce(ufunc: np.ufunc, values: Array, offsets: Offsets, identity: float) -> Array:
    """`ufunc` (OR, min) over values[offsets[i]:offsets[i+1]] for each row i; `identity` for none.

    reduceat runs each segment up to the next start and gives an empty one the value at its start;
    an identity appended past the end keeps every start in range, and `where` blanks the empty rows.
    """
    blank = np.array(identity, dtype=values.dtype)
    found: Array = ufunc.reduceat(np.append(values[:int(offsets[-1])], blank), offsets[:-1])
    return np.where(offsets[1:] > offsets[:-1], found, blank)


def count(flags: Array, offsets: Offsets) -> npt.NDArray[np.int32]:
    """How many true values each row's segment holds (differences of a running total)."""
    total = np.zeros(flags.size + 1, dtype=np.int32)
    np.cumsum(flags, out=total[1:])
    return total[offsets[1:]] - total[offsets[:-1]]


def _list(array: pa.Array) -> tuple[Offsets, pa.Array]:
    """A list array's offsets (absolute into its child) and child array."""
    return np.asarray(array.offsets, dtype=np.int64), array.values


def codes(array: pa.Array, values: Sequence[str], missing: int,
          categories: pa.Array | None = None) -> npt.NDArray[np.int64]:
    """Each item's position in `values`; `missing` for a NULL or an item not there.

    Items are text, dictionary-encoded text, or integer codes into `categories` (a Polars
    Categorical's physical values: exporting those costs nothing, exporting the Categorical
    itself ~8 ms per 500,000 lists). Encoded items are looked up once per category, then by
    index: Polars casting 1.5M names to an Enum inside list expressions costs ~20x more.
    """
    if pa.types.is_dictionary(array.type):
        array, categories = array.indices, array.dictionary
    if categories is None:
        return _positions(array, values, missing)
    table = np.append(_positions(categories, values, missing), missing)
    return table[np.asarray(array.fill_null(table.size - 1), dtype=np.int64)]


def _positions(array: pa.Array, values: Sequence[str], missing: int) -> npt.NDArray[np.int64]:
    found = pc.index_in(array.cast(pa.large_string()), value_set=pa.array(list(values), pa.large_string()))
    return np.asarray(found.fill_null(missing), dtype=np.int64)


def _floats(array: pa.Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Values (NULL as NaN) and where they are known."""
    known = np.asarray(array.is_valid(), dtype=np.bool_)
    return np.asarray(array.fill_null(np.nan), dtype=np.float64), known


class Tables:
    """Lookup tables from a drug code: its bit in each mask word, whether it has a class."""

    def __init__(self, names: NameBits, classes: Mapping[str, Sequence[int]]) -> None:
        size = len(names.names) + 1           # the last code: a NULL, no bits, no class
        codes = np.arange(size - 1)
        self.names = names.names
        self.missing = size - 1
        self.words = []
        for w in range(names.words):
            bits = np.zeros(size, dtype=np.int64)
            here = codes // WORD_BITS == w
            bits[:-1][here] = np.left_shift(1, codes[here] % WORD_BITS)
            self.words.append(bits)
        self.classes = {}
        for cls, mask in classes.items():
            has = np.zeros(size, dtype=np.bool_)
            has[:-1] = [bool(mask[c // WORD_BITS] >> (c % WORD_BITS) & 1) for c in range(size - 1)]
            self.classes[cls] = has


def history(arrays: Mapping[str, pa.Array], tables: Tables, counted: Mapping[str, str],
            timed: Sequence[str], categories: Mapping[str, pa.Array | None]) -> dict[str, Array]:
    """The history columns facts.py reads, from the drug codes of each entry.

    `arrays`: ``met`` and ``early`` (per patient, per entry, the drug names), ``progressed`` (per
    metastatic entry) and ``months`` (per early entry). `counted`: class -> column prefix of the
    classes whose early entries are counted; `timed`: those of them whose shortest interval since
    the end of treatment is needed too. `categories`: per array, the text of each code when its
    items are integer codes, else None (`codes`).
    """
    out: dict[str, Array] = {}
    has: dict[str, dict[str, npt.NDArray[np.bool_]]] = {}   # part -> class -> per entry
    patients: dict[str, Offsets] = {}
    for part in ("met", "early"):
        patients[part], drugs = _list(arrays[part])
        entry_offsets, names = _list(drugs)
        values = codes(names, tables.names, tables.missing, categories[part])
        # A patient's drugs are contiguous: from their first entry's first drug to their last's end.
        reach = entry_offsets[patients[part]]
        for w, bits in enumerate(tables.words):
            out[f"_{part}_all{w}"] = reduce(np.bitwise_or, bits[values], reach, 0)
        has[part] = {cls: count(table[values], entry_offsets) > 0 for cls, table in tables.classes.items()}

    met, per_patient = has["met"], patients["met"]
    for cls in ("chemotherapy", "anti_her2", "endocrine"):
        out[f"_met_{cls}_n"] = count(met[cls], per_patient)
    progressed = np.asarray(_list(arrays["progressed"])[1].fill_null(False), dtype=np.bool_)
    out["_met_et_progressed"] = count(met["endocrine"] & progressed, per_patient) > 0

    early, per_patient = has["early"], patients["early"]
    months, known = _floats(_list(arrays["months"])[1])
    out["_early_missing"] = count(~known, per_patient)
    out["_early_min"] = reduce(np.minimum, np.where(known, months, NEVER), per_patient, NEVER)
    for cls, prefix in counted.items():
        out[f"{prefix}_n"] = count(early[cls], per_patient)
        if cls in timed:
            out[f"{prefix}_missing"] = count(early[cls] & ~known, per_patient)
            out[f"{prefix}_min_raw"] = reduce(np.minimum, np.where(early[cls] & known, months, NEVER), per_patient,
                                              NEVER)
    return out


def mask(array: pa.Array, items: Sequence[str], categories: pa.Array | None = None) -> Array:
    """Per row, the OR of 2**position over its list (positions in `items`, fewer than 63)."""
    offsets, listed = _list(array)
    values = codes(listed, items, 63, categories)
    bits = np.where(values < 63, np.left_shift(1, np.minimum(values, 62)), 0)
    return reduce(np.bitwise_or, bits, offsets, 0)


def frame(columns: Mapping[str, Array]) -> pl.DataFrame:
    return pl.DataFrame({name: pl.Series(name, values) for name, values in columns.items()})
