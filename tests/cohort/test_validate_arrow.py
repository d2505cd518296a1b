"""Nested Parquet read in place (validate_arrow, facts.c over Arrow) gives what the Polars path gives.

The Polars path (validate.check, then the evaluator on the validated frame) is the reference:
the same rows rejected with the same messages, the same results for every other row. Inputs are
realistic synthetic Profiles with generated damage (values not allowed, out of range, NaN,
missing required fields, null list items, unknown drugs, the model's cross-field checks, missing
objects), written to Parquet and read back as `mbcnav cohort evaluate` reads them.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbcnav.cohort import local, read, synth, validate_arrow
from mbcnav.cohort.local import Evaluator
from mbcnav.cohort.schema import ROW

ENTRY = {"drugs": ["letrozole", "palbociclib"], "outcome": "progressed", "months": 14.0}
EARLY = {"drugs": ["tamoxifen"], "setting": "adjuvant", "months_since_end": 30.0}
NAN, INF = math.nan, math.inf

# Per field: values to put there, allowed and not (None: left out).
DAMAGE: dict[tuple[str, ...], list[Any]] = {
    ("sex",): ["female", "male", None, "Male", "other"],
    ("age",): [18, 17, 120, 121, None, -3],
    ("menopausal_status",): ["pre", "post", "unknown", None, "late"],
    ("ovarian_function_suppressed",): [True, False, None],
    ("tumor",): [None],
    ("tumor", "er"): ["positive", "low", "negative", "unknown", None, "pos"],
    ("tumor", "pr"): ["positive", None, "low"],
    ("tumor", "her2"): [None, {"ihc": "3+", "ish": "not_amplified"}, {"ihc": "2+", "ish": None},
                        {"ihc": None, "ish": "amplified"}],
    ("tumor", "her2", "ihc"): ["0", "ultralow", "1+", "2+", "3+", "unknown", None, "4+"],
    ("tumor", "her2", "ish"): ["amplified", "not_amplified", "not_done", None, "equivocal"],
    ("tumor", "pik3ca"): ["mutated", None, "present"],
    ("tumor", "esr1"): ["mutated", "wild_type", None],
    ("tumor", "germline_brca"): ["brca1", "brca2", None, "brca3"],
    ("tumor", "pdl1_cps"): [0.0, 10.0, 100.0, 100.5, -0.1, NAN, INF, None],
    ("tumor", "tmb"): [0.0, 12.0, 1000.5, NAN, None],
    ("tumor", "msi"): ["high", None, "low"],
    ("disease",): [None],
    ("disease", "presentation"): ["de_novo", "recurrent", None, "new"],
    ("disease", "sites"): [None, [], ["bone"], ["bone", None], ["moon"], ["brain", "liver"], ["chest_wall"]],
    ("disease", "visceral_crisis"): [True, None],
    ("disease", "brain_metastases"): [None, {"active": True, "symptomatic": None, "count": 0},
                                      {"active": None, "symptomatic": True, "count": 1001},
                                      {"active": False, "symptomatic": False, "count": -1},
                                      {"active": None, "symptomatic": None, "count": None}],
    ("health",): [None],
    ("health", "ecog"): [0, 4, 5, -1, None],
    ("health", "lvef_percent"): [4.9, 5.0, 55.0, 90.0, 90.1, NAN, None],
    ("health", "conditions"): [None, [], ["pregnancy"], ["long_qt", None], ["flu"], ["heart_failure"]],
    ("history",): [None],
    ("history", "metastatic"): [
        None, [], [ENTRY], [{**ENTRY, "outcome": "ongoing"}, ENTRY], [ENTRY, {**ENTRY, "outcome": "ongoing"}],
        [None], [{**ENTRY, "drugs": None}], [{**ENTRY, "drugs": ["notadrug"]}],
        [{**ENTRY, "drugs": ["letrozole", None]}],
        [{**ENTRY, "outcome": "better"}], [{**ENTRY, "months": 600.5}], [{**ENTRY, "drugs": ["Ibrance", "Faslodex"]}],
        [{**ENTRY, "outcome": None, "months": None}]],
    ("history", "early"): [
        None, [], [EARLY], [{**EARLY, "months_since_end": 700.0}], [{**EARLY, "setting": "curative"}],
        [{"drugs": ["doxorubicin", "cyclophosphamide"], "setting": None, "months_since_end": None}], [None],
        [{**EARLY, "drugs": []}]],
    ("current_medications",): [None, [], ["citalopram"], ["aspirin", None], ["ondansetron", "tamoxifen"]],
    ("given_drugs",): [None, [], ["fulvestrant", "palbociclib"], ["notadrug"], [None], ["Kisqali", "letrozole"],
                       ["clinical_trial"]],
    ("patient_id",): [None, "P-x"],
}
PATHS = list(DAMAGE)
DAMAGES = st.lists(st.tuples(st.integers(0, 39), st.sampled_from(PATHS), st.integers(0, 99)), max_size=40)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], pa.Schema]:
    path = tmp_path_factory.mktemp("arrow") / "base.parquet"
    synth.write(40, path, synth.Options(seed=11))
    return pl.read_parquet(path).to_dicts(), pq.read_schema(path)


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    found = Evaluator()
    assert found.native is not None, "CI has a C compiler: the compiled passes must build"
    return found


def _damaged(rows: list[dict[str, Any]], damage: list[tuple[int, tuple[str, ...], int]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(rows)
    for row, path, pick in damage:
        values = DAMAGE[path]
        target = out[row]
        for name in path[:-1]:
            if target.get(name) is None:
                target[name] = {}
            target = target[name]
        target[path[-1]] = copy.deepcopy(values[pick % len(values)])
    return out


def _parts(rows: list[dict[str, Any]], schema: pa.Schema, path: Path) -> list[read.ArrowPart]:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    [batch] = list(read.read_parquet(path, 10_000))
    assert not batch.frames
    return batch.arrow


def _polars_path(ev: Evaluator, part: read.ArrowPart) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    checked = ev.check(part.frame(), part.drug_names)
    results = ev.results(checked.valid, checked.drug_names) if checked.valid.height else None
    return results, checked.problems


def _assert_same(ev: Evaluator, part: read.ArrowPart) -> None:
    done = ev.in_place(part)
    assert done is not None, "in-place reading fell back (validation disagreed, or layout not recognised)"
    results, problems = done
    want_results, want_problems = _polars_path(ev, part)
    sort = [ROW, "field", "message"]
    assert problems.sort(sort).equals(want_problems.sort(sort))
    if want_results is None:
        assert results.height == 0
    else:
        assert results.schema == want_results.schema
        differ = [c for c in results.columns if not results[c].equals(want_results[c])]
        assert not differ, differ


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=DAMAGES)
def test_in_place_rejects_and_answers_as_the_polars_path(
        damage: list[tuple[int, tuple[str, ...], int]], base: tuple[list[dict[str, Any]], pa.Schema], ev: Evaluator,
        tmp_path: Path) -> None:
    rows, schema = base
    [part] = _parts(_damaged(rows, damage), schema, tmp_path / "damaged.parquet")
    assert validate_arrow.canonical(part.batch.schema)
    _assert_same(ev, part)


def test_every_damage_is_found_alone(base: tuple[list[dict[str, Any]], pa.Schema], ev: Evaluator,
                                     tmp_path: Path) -> None:
    """Each listed value on a row of its own (40 rows per file): rejected exactly when check does."""
    rows, schema = base
    damage = [(i % 40, path, pick) for i, (path, pick) in
              enumerate((p, k) for p in PATHS for k in range(len(DAMAGE[p])))]
    rejected = 0
    for start in range(0, len(damage), 40):
        [part] = _parts(_damaged(rows, damage[start:start + 40]), schema, tmp_path / f"one-{start}.parquet")
        _assert_same(ev, part)
        rejected += int(validate_arrow.rejected(part.batch, ev.names.unknown).sum())
    assert rejected >= 40   # the list above holds that many values validation refuses


def test_a_slice_of_a_batch_gives_the_rows_of_the_whole(ev: Evaluator, tmp_path: Path) -> None:
    """Arrow slices start mid-bitmap and mid-list: every input is read from its own offset."""
    path = tmp_path / "many.parquet"
    synth.write(300, path, synth.Options(seed=5, malformed_rate=0.05))
    [batch] = list(read.read_parquet(path, 10_000))
    [part] = batch.arrow
    whole = ev.in_place(part)
    assert whole is not None
    results, problems = whole
    assert problems.height and results.height > 250   # some rows rejected, most evaluated
    for start, length in [(1, 200), (7, 64), (63, 130), (65, 235), (129, 1), (200, 100)]:
        first = part.first_row + start
        sliced = ev.in_place(read.ArrowPart(first, part.batch.slice(start, length), part.drug_names))
        assert sliced is not None, (start, length)
        assert sliced[0].equals(results.filter(pl.col("row").is_between(first, first + length - 1))), (start, length)
        sort = [ROW, "field", "message"]
        assert sliced[1].sort(sort).equals(
            problems.filter(pl.col(ROW).is_between(first, first + length - 1)).sort(sort)), (start, length)


def _hidden(batch: pa.RecordBatch, name: str, rows: Any) -> pa.RecordBatch:
    """`batch` with struct column `name` null on `rows`, its children's values left in place."""
    column = batch.column(name)
    children = [column.field(i) for i in range(column.type.num_fields)]
    mask = np.zeros(batch.num_rows, dtype=np.bool_)
    mask[rows] = True
    hidden = pa.StructArray.from_arrays(children, fields=list(column.type), mask=pa.array(mask))
    return batch.set_column(batch.schema.get_field_index(name), batch.schema.field(name), hidden)


def test_values_under_a_missing_object_are_read_as_missing(base: tuple[list[dict[str, Any]], pa.Schema],
                                                           ev: Evaluator, tmp_path: Path) -> None:
    """Arrow may keep values under a null struct (Parquet never does): they must not count."""
    rows, schema = base
    [part] = _parts(rows, schema, tmp_path / "base.parquet")
    replaced = _hidden(part.batch, "tumor", slice(None, None, 3))
    assert replaced.column("tumor").field("er").null_count < replaced.num_rows // 3   # values kept under nulls
    _assert_same(ev, read.ArrowPart(part.first_row, replaced, part.drug_names))
    # Lists under a missing object would be read by their offsets: such a batch goes through Polars.
    with_lists = _hidden(part.batch, "history", slice(None, None, 3))
    assert not validate_arrow.lists_are_tight(with_lists)
    assert ev.in_place(read.ArrowPart(part.first_row, with_lists, part.drug_names)) is None


def _junk_under_nulls(column: pa.DictionaryArray) -> pa.DictionaryArray:
    """`column` with a dictionary index far out of range under each missing value (Arrow allows
    any value there; Parquet's reader writes 0)."""
    indices = column.indices
    values = np.asarray(indices.fill_null(0), dtype=np.int32).copy()
    values[np.asarray(indices.is_null())] = 2**31 - 1
    junk = pa.Array.from_buffers(pa.int32(), len(indices), [indices.buffers()[0], pa.py_buffer(values)],
                                 offset=0)
    return pa.DictionaryArray.from_arrays(junk, column.dictionary)


def test_indices_under_missing_values_are_never_read(base: tuple[list[dict[str, Any]], pa.Schema],
                                                     ev: Evaluator, tmp_path: Path) -> None:
    rows, schema = base
    rows = copy.deepcopy(rows)
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["menopausal_status"] = None
            row["tumor"]["er"] = None
    [part] = _parts(rows, schema, tmp_path / "nulls.parquet")
    batch = part.batch
    status = batch.column("menopausal_status")
    assert status.null_count >= len(rows) // 3
    tumor = batch.column("tumor")
    er = tumor.type.get_field_index("er")
    children = [_junk_under_nulls(tumor.field(i)) if i == er else tumor.field(i) for i in range(tumor.type.num_fields)]
    junk = batch.set_column(batch.schema.get_field_index("menopausal_status"), "menopausal_status",
                            _junk_under_nulls(status))
    junk = junk.set_column(junk.schema.get_field_index("tumor"), "tumor",
                           pa.StructArray.from_arrays(children, fields=list(tumor.type), mask=tumor.is_null()))
    assert validate_arrow.canonical(junk.schema)
    _assert_same(ev, read.ArrowPart(part.first_row, junk, part.drug_names))


def test_other_layouts_go_through_polars_validation(base: tuple[list[dict[str, Any]], pa.Schema],
                                                    ev: Evaluator, tmp_path: Path) -> None:
    rows, schema = base
    [part] = _parts(rows, schema, tmp_path / "base.parquet")
    batch = part.batch
    as_float = batch.set_column(batch.schema.get_field_index("age"), "age", pa.compute.cast(batch.column("age"),
                                                                                            pa.float64()))
    extra = batch.append_column("note", pa.array(["x"] * batch.num_rows))
    missing = batch.drop_columns(["given_drugs"])
    for other in (as_float, extra, missing):
        assert not validate_arrow.canonical(other.schema)
        assert ev.in_place(read.ArrowPart(1, other, part.drug_names)) is None


def test_a_disagreement_falls_back_to_polars_and_loses_no_row(
        base: tuple[list[dict[str, Any]], pa.Schema], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the in-place check reject a row validation accepts, the batch goes through Polars."""
    rows, schema = base
    path = tmp_path / "base.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    real = validate_arrow.rejected

    def too_strict(batch: pa.RecordBatch, unknown: Any) -> Any:
        found = real(batch, unknown)
        found[0] = True
        return found

    monkeypatch.setattr(validate_arrow, "rejected", too_strict)
    summary = local.evaluate(path, tmp_path / "out.parquet")
    assert (summary.evaluated, summary.rejected) == (40, 0)
    assert pl.read_parquet(tmp_path / "out.parquet")["row"].to_list() == list(range(1, 41))
