"""`mbcnav cohort evaluate | synth | report`: the same rules over whole populations.

Registered on the main command group in mbcnav/cli.py (``main.add_command(cohort)``). Input that
cannot be read at all exits with status 2; rows that are malformed are reported and skipped, and
the run goes on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import click

from mbcnav.cohort import DEFAULT_BATCH_ROWS, EVALUATION_THREADS

if TYPE_CHECKING:
    from mbcnav.cohort.local import Evaluator

# Polars, Arrow and Spark are imported inside the commands: `mbcnav recommend` must not pay for them.


def _fail(message: str) -> NoReturn:
    click.echo(f"mbcnav: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cohort() -> None:
    """Evaluate many patients at once: eligibility, test gaps, guideline concordance.

    Uses the same rule texts as the one-patient engine, evaluated set-wise.
    """


@cohort.command()
@click.argument("source", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Results: a .parquet file (local engine), a directory of part files (Spark).")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: Polars on this machine; spark: Spark (local[*] unless --master).")
@click.option("--master", default=None, help="Spark master URL, e.g. spark://host:7077 (engine spark).")
@click.option("--batch-rows", default=DEFAULT_BATCH_ROWS, show_default=True, type=click.IntRange(min=1),
              help="Rows per batch (local engine); memory grows with it.")
@click.option("--threads", default=EVALUATION_THREADS, show_default=True, type=click.IntRange(min=1),
              help="Batches evaluated at once (local engine); each adds about 0.15 GiB per 250k rows.")
@click.option("--workers", default=os.cpu_count() or 1, show_default="all cores", type=click.IntRange(min=1),
              help="Processes mapping FHIR Bulk Data patients to profiles (the mCODE import is per patient).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(source: Path, out: Path, engine: str, master: str | None, batch_rows: int, threads: int, workers: int,
             quiet: bool) -> None:
    """Evaluate every patient in INPUT and write one row per patient to --out.

    INPUT is Parquet, CSV or NDJSON of contract Profiles (optional extra fields: patient_id, and
    given_drugs = the treatment actually given for the current decision point), or a directory of
    Parquet part files or of FHIR Bulk Data NDJSON. Parquet may be nested like the Profile or
    flat like the CSV (dotted column names). Malformed rows are listed in RESULTS.errors.csv and
    skipped; see docs/cohort.md.
    """
    from mbcnav.cohort import keep_freed_memory

    keep_freed_memory()   # before Polars loads: this process only runs the batch
    from mbcnav.cohort import local, read
    from mbcnav.cohort.read import InputError

    if engine == "local" and out.suffix != ".parquet":  # Spark writes a directory of part files instead
        _fail(f"{out}: results are written as one Parquet file; give a name ending in .parquet")
    if engine == "local" and out.is_dir():
        _fail(f"{out} is a directory (Spark results?); give a file name, or remove it first")
    try:
        fmt = read.detect(source)
        total = read.total(source, fmt)
    except InputError as err:
        _fail(str(err))
    unit = "rows" if fmt in ("parquet", "csv") else "bytes"
    evaluator = _local_engine(quiet) if engine == "local" else None
    with click.progressbar(length=total, label=f"evaluating ({unit})", file=sys.stderr,
                           hidden=quiet or engine == "spark") as bar:
        try:
            if engine == "spark":
                spark = _spark_engine()
                summary, jvm = spark.evaluate(source, out, master=master, progress=bar.update)
                click.echo(f"Spark session started in {jvm:.1f} s", err=True)
            else:
                summary = local.evaluate(source, out, batch_rows=batch_rows, progress=bar.update, workers=workers,
                                         threads=threads, evaluator=evaluator)
        except InputError as err:
            _fail(str(err))
    click.echo(
        f"{summary.evaluated:,} patients evaluated in {summary.seconds:.1f} s "
        f"({summary.per_second:,.0f} patients/s) -> {out}"
    )
    if summary.rejected:
        click.echo(f"{summary.rejected:,} rows rejected and skipped; each is listed with its row number and "
                   f"field in {summary.errors_path}", err=True)
    if summary.noted:
        click.echo(f"{summary.noted:,} FHIR lines or resources could not be read and were left out (the rest of "
                   f"each patient's record was used); also listed in {summary.errors_path}", err=True)
    if summary.rejected or summary.noted:
        _show_errors(summary.errors_path)


def _local_engine(quiet: bool) -> Evaluator:
    """The local engine, its compiled passes built (or loaded from the cache) before the progress bar."""
    import time

    from mbcnav.cohort import local, native

    started = time.perf_counter()
    evaluator = local.Evaluator()
    seconds = time.perf_counter() - started
    if evaluator.native is None and native.enabled():
        click.echo("The compiled passes could not be built (no C compiler?): evaluating on the slower Polars "
                   "path; install gcc for about 1.5x the speed.", err=True)
    elif seconds > 2 and not quiet:
        click.echo(f"Compiled the cohort engine for this knowledge base in {seconds:.1f} s (first use; kept in "
                   f"{native.cache_dir()}).", err=True)
    return evaluator


def _spark_engine() -> ModuleType:
    """mbcnav.cohort.spark, or a plain reason why Spark cannot run here (PySpark, Java)."""
    import shutil

    try:
        from mbcnav.cohort import spark
    except ImportError:
        _fail("the Spark engine needs PySpark: pip install 'mbcnav[spark]' (or use --engine local)")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        _fail("the Spark engine needs a Java runtime (17 or newer): install one (Debian: default-jre-headless) "
              "or set JAVA_HOME (or use --engine local)")
    return spark


def _show_errors(path: Path | None, limit: int = 5) -> None:
    import polars as pl

    if path is None:
        return
    for row in pl.read_csv(path, n_rows=limit).iter_rows(named=True):
        where = f"row {row['row']}" if row["row"] is not None else row["field"]
        click.echo(f"  {where}: {row['message']}", err=True)


@cohort.command()
@click.argument("n", type=click.IntRange(min=1))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output file: .parquet, .ndjson/.jsonl or .csv.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same cohort.")
@click.option("--malformed-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of rows with one deliberate error (to test bad-input handling).")
@click.option("--given-rate", default=0.8, show_default=True, type=click.FloatRange(0, 1),
              help="Share of patients whose current-line treatment is recorded (given_drugs).")
def synth(n: int, out: Path, seed: int, malformed_rate: float, given_rate: float) -> None:
    """Write N synthetic patients (realistic subtype, biomarker and treatment mix; sources in the code)."""
    from mbcnav.cohort import synth as generator

    if out.suffix not in (".parquet", ".pq", ".ndjson", ".jsonl", ".csv"):
        _fail(f"{out}: use .parquet, .ndjson, .jsonl or .csv")
    options = generator.Options(seed=seed, malformed_rate=malformed_rate, given_rate=given_rate)
    with click.progressbar(length=n, label="generating", file=sys.stderr) as bar:
        generator.write(n, out, options, progress=bar.update)
    click.echo(f"{n:,} synthetic patients -> {out}")


@cohort.command()
@click.argument("results", type=click.Path(exists=True, path_type=Path))
@click.option("--html", "html", required=True, type=click.Path(path_type=Path), help="Report file to write.")
def report(results: Path, html: Path) -> None:
    """A self-contained HTML report of RESULTS for a quality team (charts are inline SVG)."""
    from mbcnav.cohort import report as reporting

    try:
        reporting.write(results, html)
    except reporting.ReportError as err:
        _fail(str(err))
    click.echo(f"report -> {html}")
