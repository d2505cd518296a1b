"""Equality is the contract: cohort results = the one-patient engine's, patient by patient.

20,000 generated patients on the local engine (15,000 realistic, 5,000 drawn over every value the
contract allows, brand names and unknowns included), and 2,000 of them on Spark (local[2], one
session for this module), plus 400 rows with deliberate errors: both engines must reject exactly
the rows the Profile model rejects, naming the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mbcnav.cohort import local, synth
from mbcnav.cohort.tables import WORD_BITS, name_bits
from mbcnav.cohort.validate import DrugNames
from mbcnav.knowledge.loader import knowledge
from mbcnav.profile import ProfileError, parse_profile
from mbcnav.vocabulary import catalogue_entries, normalise_drug
from tests.cohort import wide
from tests.cohort.conftest import N_MALFORMED, N_REALISTIC, N_SPARK, N_WIDE, SEED, mismatches, records
from tests.cohort.reference import expected as engine_expected
from tests.cohort.reference import strip_nulls


def _profile_rejects(rows: list[dict[str, Any]]) -> set[int]:
    rejected = set()
    for number, row in enumerate(rows, 1):
        try:
            parse_profile(strip_nulls({k: v for k, v in row.items() if k not in ("patient_id", "given_drugs")}))
        except ProfileError:
            rejected.add(number)
    return rejected


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from mbcnav.cohort.spark import session

    started = session("local[2]")
    yield started
    started.spark.stop()


def test_local_engine_equals_the_one_patient_engine_on_20000_patients(
    realistic: Path, wide_ndjson: Path, expected: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    evaluated = 0
    for source in (realistic, wide_ndjson):
        out = tmp_path / f"{source.stem}.results.parquet"
        summary = local.evaluate(source, out, batch_rows=6_000)
        assert summary.rejected == 0, summary.errors_path and summary.errors_path.read_text()[:2000]
        results = pl.read_parquet(out)
        wrong = list(mismatches(results, expected[source.name]))
        assert not wrong, f"{len(wrong)} of {results.height} differ, e.g.\n" + "\n".join(wrong[:10])
        evaluated += results.height
    assert evaluated == N_REALISTIC + N_WIDE >= 20_000


def test_more_drug_names_than_one_mask_word(tmp_path: Path) -> None:
    """Names are bits in 62-bit words: a batch with every catalogue name and brand needs several."""
    catalogue = [n for e in catalogue_entries() for n in [e["id"], *e.get("brands", [])]]
    rows = wide.profiles(600, SEED, drugs=catalogue, given=[*catalogue, "clinical_trial", "radiation"])
    assert name_bits(catalogue, DrugNames(known={n: normalise_drug(n) for n in catalogue}).known).words >= 2
    source = tmp_path / "many-names.ndjson"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    summary = local.evaluate(source, tmp_path / "many-names.parquet")
    assert summary.rejected == 0, summary.errors_path and summary.errors_path.read_text()[:2000]
    used = {d for r in rows for e in [*r["history"]["early"], *r["history"]["metastatic"]] for d in e["drugs"]}
    assert len(used) > 2 * WORD_BITS
    kb = knowledge()
    wrong = list(mismatches(pl.read_parquet(tmp_path / "many-names.parquet"), [engine_expected(r, kb) for r in rows]))
    assert not wrong, f"{len(wrong)} of {len(rows)} differ, e.g.\n" + "\n".join(wrong[:10])


def test_unknowns_are_exercised(expected: dict[str, list[dict[str, Any]]]) -> None:
    """The parity above is only as good as its coverage: every output value and test occurs."""
    rows = [r for part in expected.values() for r in part]
    assert {r["subtype"] for r in rows} >= {"unknown", "triple_negative", "hr_positive_her2_negative"}
    assert {r["her2_category"] for r in rows} == {"positive", "low", "ultralow", "zero", "unknown"}
    assert {r["concordance"] for r in rows} == {"concordant", "discordant", "unknown"}
    tests = {t for r in rows for t in r["tests_to_consider"]}
    assert {"esr1_ctdna", "pik3ca_akt1_pten", "receptors", "her2_scoring", "germline_brca"} <= tests
    flags = {f for r in rows for f in r["safety_flags"]}
    assert flags >= {"pregnancy_contraindicated_drugs", "spinal_cord_compression"}


def test_spark_engine_equals_the_one_patient_engine_and_rejects_what_the_model_rejects(
    spark: Any, spark_input: Path, expected: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from mbcnav.cohort.spark import evaluate

    rows = records(spark_input)
    half = N_SPARK // 2  # spark_input: the first rows of each parity input, then malformed ones
    tail = rows[N_SPARK:]
    rejected = {N_SPARK + n for n in _profile_rejects(tail)}
    assert len(rejected) > 0.2 * N_MALFORMED
    kb = knowledge()
    wanted = expected["realistic.parquet"][:half] + expected["wide.ndjson"][:half] + [
        {} if N_SPARK + n in rejected else engine_expected(r, kb) for n, r in enumerate(tail, 1)]

    spark_summary, _ = evaluate(spark_input, tmp_path / "spark.parquet", started=spark)
    local_summary = local.evaluate(spark_input, tmp_path / "local.parquet")
    results = pl.read_parquet(tmp_path / "spark.parquet" / "*.parquet")
    assert results.height == spark_summary.evaluated == len(rows) - len(rejected)
    local_results = pl.read_parquet(tmp_path / "local.parquet")
    for engine_results in (results, local_results):
        wrong = list(mismatches(engine_results, wanted))
        assert not wrong, f"{len(wrong)} of {engine_results.height} differ, e.g.\n" + "\n".join(wrong[:10])
    # Row numbers run across the directory's files in name order, on both engines.
    assert results.sort("row")[["row", "patient_id"]].cast({"row": pl.UInt64}).equals(
        local_results.sort("row")[["row", "patient_id"]])

    assert local_summary.errors_path and spark_summary.errors_path
    local_errors = pl.read_csv(local_summary.errors_path)
    spark_errors = pl.read_csv(spark_summary.errors_path)
    assert set(local_errors["row"]) == set(spark_errors["row"]) == rejected
    by_row = local_errors.group_by("row").agg(pl.col("field").sort()).sort("row")
    assert by_row.equals(spark_errors.group_by("row").agg(pl.col("field").sort()).sort("row"))


def test_spark_finds_the_same_drug_names_as_the_parquet_dictionaries(
    spark: Any, spark_input: Path, tmp_path: Path
) -> None:
    """The driver reads names from the files' dictionaries; Spark's own search is the fallback."""
    from mbcnav.cohort import read
    from mbcnav.cohort.spark import SparkEvaluator

    ev = SparkEvaluator(spark.spark)
    from_files = read.parquet_drug_names(read.parquet_files(spark_input))
    assert from_files is not None and len(from_files) > 30
    assert {n for frame in ev.read(spark_input) for n in ev._drug_names(frame)} == from_files
    odd = tmp_path / "odd.parquet"   # numbers where names belong: no dictionary of names to read
    pl.DataFrame({"sex": ["female"], "given_drugs": [[7, 8]]}).write_parquet(odd)
    assert read.parquet_drug_names([odd]) is None
    frames = ev.read(odd)
    ev.learn_names(odd, frames)
    assert ev._drug_names(frames[0]) == ["7", "8"] and {"7", "8"} <= set(ev.names.unknown)


def test_spark_takes_text_and_flat_inputs_through_the_local_check(spark: Any, tmp_path: Path) -> None:
    """NDJSON and a flat Parquet export are checked locally and handed to Spark as nested Parquet."""
    from mbcnav.cohort.spark import evaluate

    ndjson, csv = tmp_path / "c.ndjson", tmp_path / "c.csv"
    synth.write(300, ndjson, synth.Options(seed=11, malformed_rate=0.05))
    synth.write(300, csv, synth.Options(seed=11, malformed_rate=0.05))
    flat = tmp_path / "flat.parquet"
    pl.read_csv(csv, infer_schema_length=None).write_parquet(flat)
    for source in (ndjson, flat):
        spark_summary, _ = evaluate(source, tmp_path / f"{source.stem}-spark", started=spark)
        local_summary = local.evaluate(source, tmp_path / f"{source.stem}-local.parquet")
        assert (spark_summary.evaluated, spark_summary.rejected) == (local_summary.evaluated, local_summary.rejected)
        assert local_summary.rejected > 5
        spark_rows = pl.read_parquet(tmp_path / f"{source.stem}-spark" / "*.parquet").sort("row")
        local_rows = pl.read_parquet(tmp_path / f"{source.stem}-local.parquet").sort("row")
        for column in ("patient_id", "options_preferred", "tests_to_consider", "concordance"):
            assert spark_rows[column].cast(local_rows[column].dtype).to_list() == local_rows[column].to_list()
        assert spark_summary.errors_path and local_summary.errors_path
        assert pl.read_csv(spark_summary.errors_path).equals(pl.read_csv(local_summary.errors_path))


def test_both_engines_refuse_a_list_where_one_value_belongs_and_null_list_items(spark: Any, tmp_path: Path) -> None:
    from mbcnav.cohort.spark import evaluate

    source = tmp_path / "odd.parquet"
    pl.DataFrame({"patient_id": ["a", "b", "c", "d"], "sex": [["female"], None, [], ["female"]],
                  "tumor": [{"er": "positive"}] * 4}).write_parquet(source)
    sites = tmp_path / "sites.parquet"
    pl.DataFrame({"sex": ["female"] * 3, "disease": [{"sites": ["bone"]}, {"sites": [None, "liver"]}, {"sites": []}]},
                 schema_overrides={"disease": pl.Struct({"sites": pl.List(pl.String)})}).write_parquet(sites)
    for path in (source, sites):
        local_summary = local.evaluate(path, tmp_path / f"{path.stem}-local.parquet")
        spark_summary, _ = evaluate(path, tmp_path / f"{path.stem}-spark", started=spark)
        assert local_summary.errors_path and spark_summary.errors_path
        local_errors = pl.read_csv(local_summary.errors_path)
        assert local_errors.equals(pl.read_csv(spark_summary.errors_path))
        assert (spark_summary.evaluated, spark_summary.rejected) == (local_summary.evaluated, local_summary.rejected)
    assert local_errors.to_dicts() == [{"row": 2, "field": "disease.sites[0]",
                                        "message": "disease.sites[0]: an item cannot be empty (null)"}]
