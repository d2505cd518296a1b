"""Shared cohort inputs and the one-patient engine's answers for them (computed once per session)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mbcnav.cohort import synth
from mbcnav.cohort.schema import input_schema
from tests.cohort import wide

SEED = 20261123
N_REALISTIC = 15_000
N_WIDE = 5_000
N_SPARK = 2_000
COMPARED = ("subtype", "her2_category", "decision_point", "line", "options_preferred", "options_alternative",
            "options_selected_cases", "local_and_supportive", "tests_to_consider", "safety_flags", "given_drugs",
            "concordance")


def _expected_chunk(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mbcnav.knowledge.loader import knowledge
    from tests.cohort.reference import expected

    kb = knowledge()
    return [expected(r, kb) for r in records]


def reference(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """engine.evaluate for every record, on both cores (the one-patient engine is the slow part)."""
    chunks = [records[i:i + 1000] for i in range(0, len(records), 1000)]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [row for part in pool.map(_expected_chunk, chunks) for row in part]


def records(path: Path) -> list[dict[str, Any]]:
    """The input's records in row order (a directory: its Parquet files in name order)."""
    if path.is_dir():
        return [r for part in sorted(path.glob("*.parquet")) for r in pl.read_parquet(part).to_dicts()]
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path, schema=input_schema())
    return frame.to_dicts()


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cohort")


@pytest.fixture(scope="session")
def realistic(cohort_dir: Path) -> Path:
    path = cohort_dir / "realistic.parquet"
    synth.write(N_REALISTIC, path, synth.Options(seed=SEED), chunk_rows=4_000)
    return path


@pytest.fixture(scope="session")
def wide_ndjson(cohort_dir: Path) -> Path:
    path = cohort_dir / "wide.ndjson"
    import json

    path.write_text("\n".join(json.dumps(p) for p in wide.profiles(N_WIDE, SEED)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def expected(realistic: Path, wide_ndjson: Path) -> dict[str, list[dict[str, Any]]]:
    """The one-patient engine's answer for every input record, by input file name, in row order."""
    return {p.name: reference(records(p)) for p in (realistic, wide_ndjson)}


N_MALFORMED = 400


@pytest.fixture(scope="session")
def spark_input(cohort_dir: Path, realistic: Path, wide_ndjson: Path) -> Path:
    """A Parquet directory for Spark: the first rows of both parity inputs, then rows with deliberate errors.

    Laid out differently as separate exports often are: the realistic rows in two files of one
    layout (the second named with a space and a percent sign, which Spark's file names encode),
    then the wide rows with age written as text, then the malformed rows without patient_id.
    """
    half = N_SPARK // 2
    path = cohort_dir / "spark"
    path.mkdir()
    malformed = cohort_dir / "malformed.parquet"
    synth.write(N_MALFORMED, malformed, synth.Options(seed=SEED + 1, malformed_rate=0.3))
    columns = input_schema().names()
    first = pl.read_parquet(realistic).head(half).select(columns)
    first.head(half // 3).write_parquet(path / "part-0a.parquet")
    first.tail(half - half // 3).write_parquet(path / "part-0b 100%.parquet")
    wide_part = pl.read_ndjson(wide_ndjson, schema=input_schema()).head(half).select(columns)
    wide_part.with_columns(pl.col("age").cast(pl.String)).write_parquet(path / "part-1.parquet")
    pl.read_parquet(malformed).select(columns).drop("patient_id").write_parquet(path / "part-2 errors.parquet")
    return path


def mismatches(results: pl.DataFrame, wanted: list[dict[str, Any]]) -> Iterator[str]:
    """Rows where the cohort results differ from the engine's, described (results sorted by row)."""
    for row in results.sort("row").iter_rows(named=True):
        want = wanted[row["row"] - 1]
        got = {c: (list(row[c]) if isinstance(row[c], list) else row[c]) for c in COMPARED}
        diff = {c: (got[c], want[c]) for c in COMPARED if got[c] != want[c]}
        if diff:
            yield f"{row['patient_id']} (row {row['row']}): " + "; ".join(
                f"{c}: cohort {a!r} != engine {b!r}" for c, (a, b) in diff.items())
