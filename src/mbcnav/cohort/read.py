"""Read cohort files in batches: Parquet, CSV or NDJSON of contract Profiles.

Each batch is a Polars frame with the row number (``_row``, 1-based position of the record in
its file: the line number for NDJSON, the data row for CSV) and the top-level columns as found.
Types are not trusted here: `validate.conform` turns whatever was read into the canonical types
and reports what it could not. Records that cannot even be decoded (a line that is not JSON) are
returned as problems with their row number, never dropped.

- Parquet: nested columns shaped like the Profile (`schema.input_schema`), read one row group at
  a time so memory stays bounded whatever the file size; or a flat export in CSV's layout (dotted
  column names, JSON text for lists and objects), with its columns' own types.
- NDJSON: one Profile object per line (plus the optional `patient_id` and `given_drugs`).
- CSV: one column per scalar field, named by its dotted path (`tumor.her2.ihc`); list and object
  fields (`disease.sites`, `history.metastatic`, `given_drugs`, ...) hold JSON text.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.json as pajson  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mbcnav.cohort import EVALUATION_THREADS
from mbcnav.cohort.schema import ROW, Field, dtype, instance, profile_tree
from mbcnav.profile import ProfileError, profile_json

PROBLEM_SCHEMA = pl.Schema({ROW: pl.UInt64(), "field": pl.String(), "message": pl.String()})
PARQUET_SUFFIXES = (".parquet", ".pq")
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".json")


class InputError(ValueError):
    """The input as a whole cannot be read (missing, unknown format); nothing was evaluated."""


@dataclass
class Batch:
    frames: list[pl.DataFrame]  # _row + columns as read (parts may differ in inferred types)
    problems: pl.DataFrame      # _row, field, message: records that could not be decoded at all
    size: int                   # progress units this batch stands for (rows or bytes)
    drug_names: set[str] | None = None   # every drug name the batch may hold, when the reader knows
    # Reported, but no record is rejected for them: FHIR lines that are not resources (_row null)
    # and resources the mCODE import could not read (_row of their patient, who is still evaluated).
    notes: pl.DataFrame = dataclasses.field(default_factory=lambda: no_problems())
    # Nested Parquet, kept as Arrow: the local engine reads batches in the Profile's own layout in
    # place (validate_arrow.canonical); `all_frames` turns them into frames for everything else.
    arrow: list[ArrowPart] = dataclasses.field(default_factory=list)

    def all_frames(self, parts: list[ArrowPart] | None = None) -> list[pl.DataFrame]:
        """`frames`, and the Arrow parts (all, or `parts`) as frames, consecutive parts of one layout joined."""
        chosen = self.arrow if parts is None else parts
        return [*self.frames, *_joined([part.frame() for part in chosen])] if chosen else self.frames

    @property
    def rows(self) -> int:
        """Records read into frames or parts (not those that could not be decoded)."""
        return sum(f.height for f in self.frames) + sum(int(p.batch.num_rows) for p in self.arrow)


@dataclass(frozen=True)
class ArrowPart:
    """Records of a nested Parquet file as Arrow read them, the first one's row number, and the
    drug names their dictionaries hold (None: names not dictionary-encoded where the Profile has them)."""

    first_row: int
    batch: pa.RecordBatch
    drug_names: set[str] | None

    def frame(self) -> pl.DataFrame:
        frame = pl.from_arrow(self.batch)
        assert isinstance(frame, pl.DataFrame)
        rows = pl.int_range(self.first_row, self.first_row + frame.height, dtype=pl.UInt64)
        return frame.with_columns(rows.alias(ROW))


def problems(rows: list[int | None], field: str, message: str) -> pl.DataFrame:
    return pl.DataFrame(
        {ROW: pl.Series(rows, dtype=pl.UInt64), "field": [field] * len(rows), "message": [message] * len(rows)},
        schema=PROBLEM_SCHEMA,
    )


def no_problems() -> pl.DataFrame:
    return pl.DataFrame(schema=PROBLEM_SCHEMA)


def detect(path: Path) -> str:
    """parquet | ndjson | csv | fhir, from the suffix (a directory: its files)."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
        if any(p.suffix in PARQUET_SUFFIXES for p in files):
            for file in parquet_files(path):
                open_parquet(file)
            return "parquet"
        if any(p.suffix in NDJSON_SUFFIXES for p in files):
            return "fhir"
        raise InputError(f"{path}: a directory must hold Parquet files or FHIR Bulk Data NDJSON files")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix in PARQUET_SUFFIXES:
        for file in parquet_files(path):
            open_parquet(file)
        return "parquet"
    if path.suffix in NDJSON_SUFFIXES:
        return "ndjson"
    if path.suffix == ".csv":
        return "csv"
    raise InputError(f"{path}: unknown format; use .parquet, .csv, .ndjson/.jsonl or a FHIR Bulk Data directory")


def open_parquet(file: Path, read_dictionary: list[str] | None = None) -> pq.ParquetFile:
    """The file's Parquet reader, or an InputError naming the file (empty, cut short, not Parquet)."""
    try:
        return pq.ParquetFile(file, read_dictionary=read_dictionary)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{file}: not a readable Parquet file ({err})") from None


def parquet_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in PARQUET_SUFFIXES) if path.is_dir() else [path]


def flat_layout(path: Path) -> bool:
    """Is any Parquet file a flat export (dotted column names, CSV's layout)?"""
    return any("." in name for file in parquet_files(path) for name in open_parquet(file).schema_arrow.names)


def total(path: Path, fmt: str) -> int:
    """Progress units for the whole input: rows for Parquet (footer) and CSV (a count), else bytes."""
    if fmt == "parquet":
        return sum(open_parquet(p).metadata.num_rows for p in parquet_files(path))
    if fmt == "csv":
        return int(pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item())
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _dictionary_columns(file: Path) -> list[str]:
    """Text leaves to keep dictionary-encoded: enumerations and drug names repeat a few values, and
    decoding them to strings costs more than the whole rule evaluation (patient ids do not repeat)."""
    schema = open_parquet(file).schema
    return [c.path for c in schema if c.physical_type == "BYTE_ARRAY" and c.path != "patient_id"]


def read_parquet(path: Path, batch_rows: int) -> Iterator[Batch]:
    """Batches of about `batch_rows`, assembled from whole row groups (or slices of large ones).

    Arrow cannot hand out a batch that spans row groups while keeping nested columns
    dictionary-encoded, so row groups are read one by one and joined here.
    """
    start = 1
    pending: list[pl.DataFrame] = []
    parts: list[ArrowPart] = []
    flat_problems: list[pl.DataFrame] = [no_problems()]
    names: set[str] | None = set()
    size = 0
    for file in parquet_files(path):
        reader = open_parquet(file, _dictionary_columns(file))
        flat = any("." in name for name in reader.schema_arrow.names)   # a flat export: CSV's layout, typed
        for group in range(reader.metadata.num_row_groups):
            for record_batch in _record_batches(reader, file, group, batch_rows):
                found = dictionary_drug_names(record_batch)
                names = None if names is None or found is None else names | found
                if flat:
                    frame, found_here = _nest(ArrowPart(start, record_batch, found).frame(), profile_tree())
                    flat_problems.append(found_here)
                    pending.append(frame)
                else:
                    parts.append(ArrowPart(start, record_batch, found))
                start += record_batch.num_rows
                size += record_batch.num_rows
                if size >= batch_rows:
                    yield Batch(_joined(pending), pl.concat(flat_problems), size, names, arrow=parts)
                    pending, parts, flat_problems, size, names = [], [], [no_problems()], 0, set()
    if pending or parts:
        yield Batch(_joined(pending), pl.concat(flat_problems), size, names, arrow=parts)


def _record_batches(reader: pq.ParquetFile, file: Path, group: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """One row group's batches; damaged data (a file cut or overwritten after its footer) is an InputError."""
    # Arrow's decoding threads cost ~20% more CPU than one; they only pay where cores are idle.
    spare = (os.cpu_count() or 1) > EVALUATION_THREADS + 1
    batches = reader.iter_batches(batch_size=batch_rows, row_groups=[group], use_threads=spare)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{file}: row group {group + 1} of {reader.metadata.num_row_groups} cannot be read "
                             f"({err})") from None
        yield batch


def _joined(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """Consecutive parts with the same columns and types as one frame; the others stay apart.

    Files in one directory may differ (a column only some exports have, a number written as
    text): each part is then validated on its own and only the valid rows are joined.
    """
    groups: list[list[pl.DataFrame]] = []
    for frame in frames:
        if groups and groups[-1][0].schema == frame.schema:
            groups[-1].append(frame)
        else:
            groups.append([frame])
    return [pl.concat(group) if len(group) > 1 else group[0] for group in groups]


def _unified(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """Consecutive parts as one frame wherever their types have a common type that reads every
    value as written (a number and text -> text, an integer and a float -> float, a field missing
    in one part -> null there); the others stay apart and are validated on their own.

    NDJSON lines read by kind (`_odd_block`) come in a few parts per block; each part validated
    alone would cost ~30 ms. Parts whose types `_clash` are never merged (Polars would read text
    as a one-item list, or `"age": true` as an age of one). Merging is tried on the data itself:
    Polars accepts some casts on empty columns that fail on values.
    """
    out: list[pl.DataFrame] = []
    for frame in frames:
        merged = _common(out[-1], frame) if out else None
        if merged is None:
            out.append(frame)
        else:
            out[-1] = merged
    return [f.sort(ROW) for f in out] if len(frames) > len(out) else out


def _common(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame | None:
    if any(_clash(left.schema[name], right.schema[name]) for name in set(left.columns) & set(right.columns)):
        return None
    try:
        return pl.concat([left, right], how="diagonal_relaxed")
    except pl.exceptions.PolarsError:
        return None


def _clash(a: pl.DataType, b: pl.DataType) -> bool:
    """Types Polars would join by changing what a value says: an object or a list beside a single
    value (text read as a one-item list), or a yes/no beside numbers (true read as 1)."""
    if isinstance(a, pl.Null) or isinstance(b, pl.Null):
        return False
    if isinstance(a, pl.Struct) or isinstance(b, pl.Struct):
        if not (isinstance(a, pl.Struct) and isinstance(b, pl.Struct)):
            return True
        inner = {f.name: f.dtype for f in b.fields}
        return any(_clash(instance(f.dtype), instance(inner[f.name])) for f in a.fields if f.name in inner)
    if isinstance(a, pl.List) or isinstance(b, pl.List):
        if not (isinstance(a, pl.List) and isinstance(b, pl.List)):
            return True
        return _clash(instance(a.inner), instance(b.inner))
    return (a == pl.Boolean and b.is_numeric()) or (b == pl.Boolean and a.is_numeric())


# Where drug names sit in nested Parquet (history entries, the treatment given).
DRUG_LEAVES = ("history.early.list.element.drugs.list.element", "history.metastatic.list.element.drugs.list.element",
               "given_drugs.list.element")


def parquet_drug_names(files: list[Path]) -> set[str] | None:
    """The distinct drug names of nested Parquet files, read from the name columns' dictionaries
    alone (1M patients: about 0.3 s); None when a file holds them in another shape."""
    names: set[str] = set()
    for file in files:
        leaves = [c.path for c in open_parquet(file).schema if c.path in DRUG_LEAVES]
        if not leaves:
            continue
        reader = open_parquet(file, leaves)
        for group in range(reader.metadata.num_row_groups):
            for batch in reader.iter_batches(columns=leaves, row_groups=[group]):
                found = dictionary_drug_names(batch)
                if found is None:
                    return None
                names |= found
    return names


def dictionary_drug_names(batch: pa.RecordBatch) -> set[str] | None:
    """Drug names from the dictionaries of the drug columns: a few values, however many rows.

    None when a drug column is not a dictionary-encoded list of names where the Profile has one
    (a flat export, text where a list belongs, ...): then validation finds the names itself, and
    says what is wrong with the shape.
    """
    schema = batch.schema
    columns: list[pa.Array | None] = []
    if "history" in schema.names:
        history = batch.column("history")
        if not pa.types.is_struct(history.type):
            return None
        for part in ("early", "metastatic"):
            if history.type.get_field_index(part) < 0:
                continue
            entries = _items(history.field(part))
            if entries is None or not pa.types.is_struct(entries.type):
                return None
            if entries.type.get_field_index("drugs") >= 0:
                columns.append(_items(entries.field("drugs")))
    if "given_drugs" in schema.names:
        columns.append(_items(batch.column("given_drugs")))
    out: set[str] = set()
    for column in columns:
        if column is None or not pa.types.is_dictionary(column.type):
            return None
        out.update(v for v in column.dictionary.to_pylist() if v is not None)
    return out


def _items(array: pa.Array) -> pa.Array | None:
    """The items of a list column; None when the column is not a list."""
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        return array.values
    return None


def _decode_as(part: pl.DataFrame, column: str, target: pl.DataType) -> tuple[pl.DataFrame, pl.DataFrame]:
    """JSON text -> the field's own type (CSV cells); rows that do not fit are problems."""
    try:
        return part.with_columns(pl.col(column).str.json_decode(target)), no_problems()
    except pl.exceptions.PolarsError as err:
        if part.height == 1:
            found = problems([int(part[ROW][0])], column, _shape_message(column, target, str(part[column][0]), err))
            return part.clear().with_columns(pl.col(column).cast(target)), found
    half = part.height // 2
    left, left_problems = _decode_as(part.slice(0, half), column, target)
    right, right_problems = _decode_as(part.slice(half), column, target)
    return pl.concat([left, right]), pl.concat([left_problems, right_problems])


def _shape_message(column: str, target: pl.DataType, text: str, err: Exception) -> str:
    """What a cell holding list or object text should look like, and what it held."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    if isinstance(target, pl.List):
        inner = target.inner
        example = (f'[{{"{inner.fields[0].name}": ...}}]' if isinstance(inner, pl.Struct) else
                   '["letrozole", "palbociclib"]' if "drugs" in column or column.endswith("medications") else
                   '["bone", "liver"]' if column.endswith("sites") else '["...", "..."]')
        return f"{column}: must be a JSON list such as {example}, not '{shown}'"
    if isinstance(target, pl.Struct):
        return f"{column}: must be a JSON object such as {{\"{target.fields[0].name}\": ...}}, not '{shown}'"
    return f"{column}: cannot be read as JSON ({str(err).splitlines()[0]}): '{shown}'"


def read_ndjson(path: Path, batch_rows: int) -> Iterator[Batch]:
    line_no = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.readlines(max(1, batch_rows) * 512)  # a size hint: ~batch_rows average lines
            if not chunk:
                return
            if line_no == 0 and chunk[0].startswith(b"\xef\xbb\xbf"):  # a byte order mark (Windows tools)
                chunk[0] = chunk[0][3:]
            rows = np.arange(line_no + 1, line_no + 1 + len(chunk), dtype=np.uint64)
            line_no += len(chunk)
            yield _json_lines(rows, chunk, sum(len(c) for c in chunk))


NOT_AN_OBJECT = "not a JSON object (each line must hold one profile)"
_ODD_BLOCK = 10_000   # lines per block when a batch holds a line Arrow cannot read


def _json_lines(rows: npt.NDArray[np.uint64], lines: list[bytes], size: int) -> Batch:
    """One JSON object per line -> frames, and problems naming the lines that are not profiles.

    Arrow's JSON reader decodes the whole batch at once on all cores (200k profiles: about 1.4 s,
    against about 8 s for Polars' `json_decode`). It refuses a batch where a field changes type
    between lines (a number here, text there), where a line is not JSON, or where an object gives
    one key twice; then the batch is read in blocks, and a block Arrow refuses is halved until
    each part reads (`_odd_block`); parts keep their own types (validation unifies them).
    """
    firsts = np.frombuffer(b"".join([line[:1] or b" " for line in lines]), dtype=np.uint8)
    good = firsts == ord("{")
    bad_rows: list[int | None] = []
    if not good.all():   # blank lines, leading spaces, or lines that are not objects: look closer
        for i in np.flatnonzero(~good):
            text = lines[i].strip()
            if text[:1] == b"{":
                good[i] = True
            elif text:
                bad_rows.append(int(rows[i]))
        lines = list(compress(lines, good))
        rows = rows[good]
    found = [problems(bad_rows, "record", NOT_AN_OBJECT)]
    frame = _arrow_json(rows, lines)
    frames = [frame] if frame is not None else []
    if frame is None:
        for start in range(0, len(lines), _ODD_BLOCK):
            part, part_problems = _odd_block(rows[start:start + _ODD_BLOCK], lines[start:start + _ODD_BLOCK])
            frames += part
            found.append(part_problems)
    return Batch(_unified(frames), pl.concat(found), size)


def _arrow_json(rows: npt.NDArray[np.uint64], lines: list[bytes]) -> pl.DataFrame | None:
    """The lines as one frame (_row first), or None when Arrow refuses any of them."""
    if not lines:
        return None
    data = b"\n".join(lines)
    try:
        table = pajson.read_json(pa.BufferReader(data))
        if _has_dates(table.schema):   # Arrow reads text like "2024-01-01" as a date: read it as text
            options = pajson.ParseOptions(explicit_schema=_dates_as_text(table.schema),
                                          unexpected_field_behavior="infer")
            table = pajson.read_json(pa.BufferReader(data), parse_options=options)
        # Arrow 26 builds a broken list from `[null, "liver"]` on a line of its own (offsets past
        # the values): such a batch is refused like any other (75 ms per 200k profiles).
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(lines):
        return None   # a line held two objects: let Polars say so
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.insert_column(0, pl.Series(ROW, rows, dtype=pl.UInt64))


def _is_date(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t))


def _has_dates(schema: pa.Schema) -> bool:
    def found(t: pa.DataType) -> bool:
        return _is_date(t) or any(found(t.field(i).type) for i in range(t.num_fields))
    return any(found(f.type) for f in schema)


def _dates_as_text(schema: pa.Schema) -> pa.Schema:
    def text(t: pa.DataType) -> pa.DataType:
        if _is_date(t):
            return pa.string()
        if pa.types.is_struct(t):
            return pa.struct([pa.field(t.field(i).name, text(t.field(i).type)) for i in range(t.num_fields)])
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return pa.list_(text(t.value_type))
        return t
    return pa.schema([pa.field(f.name, text(f.type)) for f in schema])


def _odd_block(rows: npt.NDArray[np.uint64], lines: list[bytes]) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """Lines Arrow refused together: each line is read alone once (Python's json, which names a
    repeated key), then lines whose fields have the same kinds (number, text, yes/no, list,
    object) are read by Arrow together.

    Arrow never coerces: a field that is text on one line and a list on another makes it refuse,
    where Polars' inference would give every line one type (`"female"` read as `["female"]`,
    `true` beside numbers as 1). Grouping by kind keeps that exactness at the price of one Python
    parse per line of a refused block (~25 µs), only in blocks that need it.
    """
    frame = _arrow_json(rows, lines)
    if frame is not None:
        return [frame], no_problems()
    found = [no_problems()]
    groups: list[tuple[dict[str, str], list[int]]] = []   # each group's kinds so far, and its lines
    placed: dict[frozenset[tuple[str, str]], int] = {}     # a line's kinds -> its group
    alone: list[int] = []
    for i, line in enumerate(lines):
        try:
            data = profile_json(line)
        except ProfileError as err:   # a key given twice, each named
            found += [problems([int(rows[i])], m.split(": ", 1)[0], m) for m in err.problems]
            continue
        except ValueError:
            data = None
        if not isinstance(data, dict):
            found.append(problems([int(rows[i])], "record", NOT_AN_OBJECT))
            continue
        kinds: dict[str, str] = {}
        if not _kinds(data, "", kinds):
            alone.append(i)
            continue
        signature = frozenset(kinds.items())
        known = placed.get(signature)
        if known is None:
            known = next((g for g, (seen, _) in enumerate(groups)
                          if all(seen.get(path, kind) == kind for path, kind in kinds.items())), len(groups))
            if known == len(groups):
                groups.append(({}, []))
            groups[known][0].update(kinds)
            placed[signature] = known
        groups[known][1].append(i)
    frames: list[pl.DataFrame] = []
    for _, members in groups:
        part = _arrow_json(rows[members], [lines[i] for i in members])
        if part is None:
            alone += members
        else:
            frames.append(part)
    for i in sorted(alone):
        part_frames, part_problems = _one_line(int(rows[i]), lines[i])
        frames += part_frames
        found.append(part_problems)
    return frames, pl.concat(found)


_KIND = {bool: "yes/no", int: "number", float: "number", str: "text", list: "list", dict: "object"}


def _kinds(value: dict[str, Any] | list[Any], path: str, out: dict[str, str]) -> bool:
    """Each field's kind of JSON value into `out` (nulls fit any kind); False when one of the
    line's own lists mixes kinds of items (Arrow cannot read such a line at all)."""
    pairs = value.items() if isinstance(value, dict) else [("", item) for item in value]
    inside = path + "." if isinstance(value, dict) else path + "[]"
    for key, item in pairs:
        if item is None:
            continue
        where = inside + key
        kind = _KIND[type(item)]
        if out.setdefault(where, kind) != kind:
            return False
        if (kind == "object" or kind == "list") and not _kinds(item, where, out):
            return False
    return True


def _one_line(row: int, line: bytes) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """A line Arrow cannot read: a repeated key (named), not a JSON object, or a list that mixes
    kinds of items (`["bone", 1]`), which Polars reads as the one-patient parser would see it."""
    try:
        data = profile_json(line)
    except ProfileError as err:
        return [], pl.concat([problems([row], m.split(": ", 1)[0], m) for m in err.problems])
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return [], problems([row], "record", NOT_AN_OBJECT)
    try:
        decoded = pl.Series("record", [line.decode()]).str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError as err:
        return [], problems([row], "record", f"cannot be read as JSON: {str(err).splitlines()[0]}")
    frame = pl.DataFrame({ROW: pl.Series([row], dtype=pl.UInt64), "record": decoded})
    return [frame.select(ROW, pl.col("record").struct.unnest())], no_problems()


def read_csv(path: Path, batch_rows: int) -> Iterator[Batch]:
    tree = profile_tree()
    scan = pl.scan_csv(path, infer_schema=False, row_index_name=ROW, row_index_offset=1)
    for chunk in scan.collect_batches(chunk_size=batch_rows):
        raw = chunk.with_columns(pl.col(ROW).cast(pl.UInt64))
        frame, found = _nest(raw, tree)
        yield Batch([frame], found, raw.height)


def _nest(raw: pl.DataFrame, tree: Field) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dotted columns (CSV, flat Parquet) -> nested columns; JSON text in list and object fields is decoded.

    Typed columns (a flat Parquet export) keep their type: only text is trimmed or decoded.
    """
    found = [no_problems()]
    flat = raw.select(ROW)
    for name in raw.columns:
        if name == ROW:
            continue
        node = _find(tree, tuple(name.split(".")))
        text = isinstance(raw.schema[name], pl.String | pl.Categorical | pl.Enum)
        value = pl.col(name)
        if text:  # an empty cell is a missing value
            value = value.cast(pl.String)
            value = pl.when(value.str.strip_chars() == "").then(None).otherwise(value).alias(name)
        if text and node is not None and node.kind in ("list", "struct"):
            part = raw.select(ROW, value).filter(pl.col(name).is_not_null())
            target = dtype(node)
            if _has_struct(target):   # only objects have keys to repeat
                part, repeated = _without_repeated_keys(part, name)
                found.append(repeated)
            part, problem = _decode_as(part, name, target)
            found.append(problem)
            flat = flat.join(part, on=ROW, how="left")
        else:
            flat = flat.with_columns(raw.select(value).to_series())
    return flat.select(ROW, *_assemble(flat.columns)), pl.concat(found)


def _has_struct(target: pl.DataType | pl.datatypes.DataTypeClass) -> bool:
    if isinstance(target, pl.Struct):
        return True
    return isinstance(target, pl.List) and _has_struct(target.inner)


def _without_repeated_keys(part: pl.DataFrame, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """JSON cells that give a key twice are problems naming the key's path, as for NDJSON lines.

    Arrow reads the column's cells at once and refuses a repeated key, so in the usual case (none)
    that one read is the whole cost; when it refuses, each cell is read alone.
    """
    if part.height == 0:
        return part, no_problems()
    cells = part.select(pl.format('{{"v": {}}}', pl.col(name)).str.join("\n")).item()
    try:
        pajson.read_json(pa.BufferReader(cells.encode()))
        return part, no_problems()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    found = [no_problems()]
    for row, cell in part.select(ROW, name).iter_rows():
        try:
            profile_json('{"v": ' + cell + "}")
        except ProfileError as err:
            found += [problems([row], name + m.split(": ", 1)[0][1:], name + m[1:]) for m in err.problems]
        except ValueError:
            continue   # not JSON: `_decode_as` says what the cell should look like
    rejected = pl.concat(found)
    return part.join(rejected.select(ROW), on=ROW, how="anti"), rejected


def _find(tree: Field, path: tuple[str, ...]) -> Field | None:
    node: Field | None = tree
    for part in path:
        if node is None or node.kind != "struct":
            return None
        node = next((f for f in node.fields if f.name == part), None)
    return node


def _assemble(columns: list[str]) -> list[pl.Expr]:
    """Group dotted names into nested structs: tumor.er + tumor.her2.ihc -> tumor{er, her2{ihc}}."""
    groups: dict[str, list[str]] = {}
    for name in columns:
        if name != ROW:
            groups.setdefault(name.split(".", 1)[0], []).append(name)
    out: list[pl.Expr] = []
    for head, names in groups.items():
        out.append(_struct(head, [n for n in names]).alias(head))
    return out


def _struct(prefix: str, names: list[str]) -> pl.Expr:
    """A CSV row cannot say "an empty object": an object whose cells are all empty is missing."""
    if names == [prefix]:
        return pl.col(prefix)
    children: dict[str, list[str]] = {}
    for name in names:
        rest = name[len(prefix) + 1:]
        children.setdefault(rest.split(".", 1)[0], []).append(name)
    parts = [_struct(f"{prefix}.{child}", sub).alias(child) for child, sub in children.items()]
    empty = pl.all_horizontal([pl.col(n).is_null() for n in names])
    return pl.when(empty).then(None).otherwise(pl.struct(parts))
