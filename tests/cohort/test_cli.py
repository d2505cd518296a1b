"""`mbcnav cohort synth | evaluate | report` end to end, through the click group."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from mbcnav.cohort.cli import cohort


def test_synth_evaluate_report(tmp_path: Path) -> None:
    runner = CliRunner()
    source, results, html = tmp_path / "c.parquet", tmp_path / "r.parquet", tmp_path / "report.html"
    done = runner.invoke(cohort, ["synth", "1500", "--out", str(source), "--seed", "3", "--malformed-rate", "0.02"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cohort, ["evaluate", str(source), "--out", str(results), "--batch-rows", "500"])
    assert done.exit_code == 0, done.output
    assert "patients evaluated" in done.stdout and "patients/s" in done.stdout
    assert "rows rejected and skipped" in done.stderr and "evaluating" in done.stderr  # progress bar
    frame = pl.read_parquet(results)
    assert 1_400 < frame.height < 1_500
    assert frame.columns == ["patient_id", "row", "subtype", "her2_category", "decision_point", "line",
                             "options_preferred", "options_alternative", "options_selected_cases",
                             "local_and_supportive", "tests_to_consider", "safety_flags", "given_drugs", "concordance"]
    assert (tmp_path / "r.errors.csv").exists()
    done = runner.invoke(cohort, ["report", str(results), "--html", str(html)])
    assert done.exit_code == 0, done.output
    assert "<svg" in html.read_text()
    # Batches side by side: the same file, row for row.
    again = tmp_path / "threads.parquet"
    done = runner.invoke(cohort, ["evaluate", str(source), "--out", str(again), "--batch-rows", "200",
                                  "--threads", "3", "--quiet"])
    assert done.exit_code == 0, done.output
    assert pl.read_parquet(again).equals(frame)
    done = runner.invoke(cohort, ["evaluate", str(source), "--out", str(again), "--threads", "0"])
    assert done.exit_code == 2 and "--threads" in done.output


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "cohort.xlsx"
    bad.write_bytes(b"PK")
    done = CliRunner().invoke(cohort, ["evaluate", str(bad), "--out", str(tmp_path / "r.parquet")])
    assert done.exit_code == 2 and "unknown format" in done.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_report_on_something_other_than_results_exits_2_and_says_why(tmp_path: Path) -> None:
    runner = CliRunner()
    source, text, html = tmp_path / "c.parquet", tmp_path / "c.ndjson", tmp_path / "report.html"
    assert runner.invoke(cohort, ["synth", "50", "--out", str(source)]).exit_code == 0
    text.write_text('{"sex": "female"}\n', encoding="utf-8")
    done = runner.invoke(cohort, ["report", str(source), "--html", str(html)])  # the input, not its results
    assert done.exit_code == 2 and "not a results file" in done.stderr and "evaluate the cohort first" in done.stderr
    done = runner.invoke(cohort, ["report", str(text), "--html", str(html)])
    assert done.exit_code == 2 and "not a Parquet results file" in done.stderr
    assert not html.exists()


def test_evaluate_refuses_an_output_that_is_not_a_parquet_file(tmp_path: Path) -> None:
    source = tmp_path / "c.ndjson"
    source.write_text('{"sex": "female"}\n', encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(cohort, ["evaluate", str(source), "--out", str(tmp_path / "r.csv")])
    assert done.exit_code == 2 and "ending in .parquet" in done.stderr and not (tmp_path / "r.csv").exists()
    (tmp_path / "spark.parquet").mkdir()
    done = runner.invoke(cohort, ["evaluate", str(source), "--out", str(tmp_path / "spark.parquet")])
    assert done.exit_code == 2 and "is a directory" in done.stderr


def test_spark_engine_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mbcnav.cohort

    source = tmp_path / "c.ndjson"
    source.write_text('{"sex": "female"}\n', encoding="utf-8")
    args = ["evaluate", str(source), "--out", str(tmp_path / "results"), "--engine", "spark"]
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    done = CliRunner().invoke(cohort, args)
    assert done.exit_code == 2 and "needs a Java runtime" in done.stderr
    for name in ("pyspark", "pyspark.sql"):  # as if PySpark were not installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "mbcnav.cohort.spark", raising=False)
    monkeypatch.delattr(mbcnav.cohort, "spark", raising=False)
    done = CliRunner().invoke(cohort, args)
    assert done.exit_code == 2 and "pip install 'mbcnav[spark]'" in done.stderr
    assert not (tmp_path / "results").exists()
