"""The Spark engine: the same plan over Spark SQL, for populations beyond one machine.

`local[*]` by default; any cluster with `master` (spark://..., yarn, k8s://...). Parquet input is
read, conformed and checked by Spark itself (`spark_sql`); text formats (CSV, NDJSON, FHIR) are
read and checked by the local reader and handed to Spark as Parquet. Rule conditions go to
`F.expr` as the knowledge base wrote them; the plan's SQL follows.

The JVM gets ``-XX:-DontCompileHugeMethods``: with ~250 conditions Spark's generated code has
methods over HotSpot's 8000-byte JIT limit, which then run interpreted, about 5x slower.
Results are written to a temporary directory beside the target and renamed into place.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from pyspark.sql import types as T

from mbcnav.cohort import read
from mbcnav.cohort.local import Summary, write_errors
from mbcnav.cohort.plan import CONCORDANCE, TRIAL, Plan, build, quote
from mbcnav.cohort.read import no_problems
from mbcnav.cohort.schema import ROW
from mbcnav.cohort.spark_sql import Conformer, DrugMaps, cross_checks, fact_steps
from mbcnav.cohort.tables import ENTRY_CLASSES, qt_names
from mbcnav.cohort.validate import DrugNames
from mbcnav.knowledge.loader import Knowledge, knowledge

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

JVM_OPTIONS = "-XX:-DontCompileHugeMethods"


@dataclass
class Started:
    spark: SparkSession
    seconds: float      # JVM start and session creation


def session(master: str | None = None, app: str = "mbcnav-cohort") -> Started:
    """A SparkSession for cohort evaluation (reuses a running one with the same master)."""
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(master or "local[*]").appName(app)
        .config("spark.driver.extraJavaOptions", JVM_OPTIONS)
        .config("spark.executor.extraJavaOptions", JVM_OPTIONS)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        # Whole-stage code generation fuses each stage into one generated method; over this
        # plan's hundreds of columns that costs more than it saves: 200k patients on local[2]
        # took 59 s with it and 42-46 s without (benchmarks/cohort.py, 2026-11-23).
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return Started(spark, time.perf_counter() - started)


def _expr(text: str, name: str) -> Column:
    from pyspark.sql import functions as F

    return F.expr(text).alias(name)


def _with(frame: DataFrame, step: dict[str, str]) -> DataFrame:
    """Add one step's columns in a single projection (one call into the JVM, not one per column)."""
    kept = [f"`{c}`" for c in frame.columns if c not in step]
    return frame.selectExpr(*kept, *(f"{text} AS `{name}`" for name, text in step.items()))


class SparkEvaluator:
    """The knowledge base compiled for Spark: plan texts plus the driver-side lookup tables."""

    def __init__(self, spark: SparkSession, kb: Knowledge | None = None) -> None:
        self.spark = spark
        self.kb = kb or knowledge()
        self.plan: Plan = build(self.kb)
        self.names = DrugNames()

    # -- reading and checking ------------------------------------------------------------------

    def read(self, source: Path) -> list[DataFrame]:
        """The input's files, one frame per file layout (columns and types as written).

        Files of one directory may differ (a column only some exports have, a number written as
        text); Spark reads a set of files with one schema, so each layout is read and conformed
        on its own, and only the conformed rows are put together.
        """
        from pyspark.sql import functions as F

        files = read.parquet_files(source)
        layouts: dict[str, list[Path]] = {}
        offsets, start = {}, 0
        for file in files:   # _row: position in the input, across files in name order (from the footers)
            footer = read.open_parquet(file)
            layouts.setdefault(footer.schema_arrow.remove_metadata().to_string(), []).append(file)
            offsets[file] = start
            start += footer.metadata.num_rows
        jvm_path = self.spark.sparkContext._jvm.org.apache.hadoop.fs.Path  # type: ignore[union-attr]
        frames = []
        for group in layouts.values():
            offset = F.lit(offsets[group[0]])
            for file in group[1:]:
                # Spark gives the file's name as in its URI (a space is %20): ask Hadoop for that form.
                name = str(jvm_path(str(file)).toUri().getRawPath()).rsplit("/", 1)[-1]
                offset = F.when(F.col("_metadata.file_name") == name, F.lit(offsets[file])).otherwise(offset)
            rows = self.spark.read.parquet(*[str(f) for f in group])
            frames.append(rows.withColumn(ROW, (F.col("_metadata.row_index") + offset + 1).cast("long")))
        return frames

    def check(self, frames: list[DataFrame], staging: Path) -> tuple[DataFrame, pl.DataFrame]:
        """(valid rows, conformed) and the problems of the rejected ones (collected: they are few).

        Conformed rows are written once to `staging` (Parquet) and read back twice, for the
        problems and for the evaluation, instead of conforming the input twice.
        """
        from pyspark.sql import functions as F

        conformed = [self._conform(frame) for frame in frames]
        staged = conformed[0]
        for other in conformed[1:]:
            staged = staged.unionByName(other)
        staged.write.mode("overwrite").parquet(str(staging))
        staged = self.spark.read.parquet(str(staging))
        rejected = staged.filter("_bad").select(ROW, F.explode("_messages").alias("message")).collect()
        found = pl.DataFrame(
            {ROW: [r[ROW] for r in rejected], "message": [r["message"] for r in rejected]},
            schema={ROW: pl.UInt64, "message": pl.String},
        ).with_columns(pl.col("message").str.split_exact(": ", 1).struct.field("field_0").alias("field")).select(
            ROW, "field", "message")
        return staged.filter("NOT _bad").drop("_bad", "_messages"), found

    def _conform(self, frame: DataFrame) -> DataFrame:
        """Canonical columns, `_bad` and the field-named `_messages` of one file layout."""
        from pyspark.sql import functions as F

        nodes = Conformer(self.names.unknown).frame(frame.schema)
        checks = [c for node in nodes.values() for c in node.checks]
        values = [_expr(node.value, name) for name, node in nodes.items() if not name.startswith("_extra_")]
        bad = " OR ".join(f"COALESCE({b}, FALSE)" for b, _ in checks) or "FALSE"
        messages = "filter(array(" + ", ".join(f"CASE WHEN COALESCE({b}, FALSE) THEN {m} END" for b, m in checks) + (
            "), m -> m IS NOT NULL)") if checks else "CAST(array() AS ARRAY<STRING>)"
        staged = frame.select(F.col(ROW), *values, _expr(bad, "_bad"), _expr(messages, "_messages"))
        cross = cross_checks()
        cross_bad = " OR ".join(f"COALESCE({b}, FALSE)" for b, _ in cross)
        cross_messages = "filter(array(" + ", ".join(f"CASE WHEN COALESCE({b}, FALSE) THEN {m} END"
                                                     for b, m in cross) + "), m -> m IS NOT NULL)"
        return staged.withColumn("_bad", F.expr(f"_bad OR {cross_bad}")).withColumn(
            "_messages", F.expr(f"concat(_messages, {cross_messages})"))

    def learn_names(self, source: Path, frames: list[DataFrame]) -> None:
        """Look up every distinct drug name of the input once, before conforming (it checks them).

        From the Parquet dictionaries on the driver when the files allow it (a Spark job cost
        about 7 s for 200k patients here), else with Spark.
        """
        names = read.parquet_drug_names(read.parquet_files(source))
        if names is None:
            names = {n for frame in frames for n in self._drug_names(frame)}
        self.names.learn(sorted(names))

    def _drug_names(self, frame: DataFrame) -> list[str]:
        """Distinct drug names (history and given_drugs) in one Spark job."""
        schema = {f.name: f.dataType for f in frame.schema.fields}
        lists: list[str] = []
        history = schema.get("history")
        if isinstance(history, T.StructType):
            for part in ("early", "metastatic"):
                entries = next((f.dataType for f in history.fields if f.name == part), None)
                if isinstance(entries, T.ArrayType) and isinstance(entries.elementType, T.StructType) and any(
                        f.name == "drugs" for f in entries.elementType.fields):
                    lists.append(f"flatten(transform(history.{part}, e -> COALESCE(CAST(e.drugs AS ARRAY<STRING>), "
                                 "array())))")
        if isinstance(schema.get("given_drugs"), T.ArrayType):
            lists.append("CAST(given_drugs AS ARRAY<STRING>)")
        if not lists:
            return []
        names = "flatten(array(" + ", ".join(f"COALESCE({x}, array())" for x in lists) + "))"
        rows = frame.selectExpr(f"explode({names}) AS name").distinct().collect()
        return sorted(str(r["name"]) for r in rows if r["name"] is not None)

    # -- evaluating ------------------------------------------------------------------------------

    def results(self, valid: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        known = dict(self.names.known)
        flags = [*(f"class:{c}" for c in dict.fromkeys([*self.kb.drug_classes.flag_classes, *ENTRY_CLASSES])),
                 *(f"drug:{d}" for d in self.kb.drug_classes.flag_drugs)]
        maps = DrugMaps(known, flags, self.kb.drug_classes)
        meds = [r[0] for r in valid.select(F.explode("current_medications")).distinct().collect() if r[0]]
        frame = valid
        for step in fact_steps(self.kb.columns, maps, qt_names(self.kb, meds)):
            frame = _with(frame, step)
        for step in self._given(known):
            frame = _with(frame, step)
        frame = _with(frame, self.plan.conditions)
        for step in self.plan.steps:
            frame = _with(frame, step)
        return frame.select(*self._outputs())

    def _given(self, known: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
        """What the concordance SQL reads about the treatment given, brand names as their generic ids."""
        parts = {n: sorted(self.plan.parts(v)) for n, v in known.items()}
        ids = "map(" + ", ".join(
            f"{quote(n)}, array({', '.join(quote(i) for i in v)})" for n, v in parts.items()) + ")" if parts else \
            "map()"
        generic = f"flatten(transform(given_drugs, g -> COALESCE(try_element_at({ids}, g), array(g))))"
        every = ", ".join(quote(d) for d in [*self.plan.given, *self.plan.not_systemic, TRIAL])
        universe = ", ".join(quote(d) for d in self.plan.given) or "NULL"
        flags = {f"_g_{d}": f"COALESCE(array_contains(_given_ids, {quote(d)}), FALSE)" for d in self.plan.given}
        flags["_given_n"] = f"COALESCE(size(array_distinct(filter(_given_ids, x -> x IN ({universe})))), 0)"
        flags["_given_other"] = f"COALESCE(exists(_given_ids, x -> NOT x IN ({every})), FALSE)"
        flags["_given_trial"] = f"COALESCE(array_contains(_given_ids, {quote(TRIAL)}), FALSE)"
        names = "map(" + ", ".join(
            f"{quote(n)}, array({', '.join(quote(i) for i in v)})" for n, v in known.items()) + ")" if known else \
            "map()"
        as_typed = f"flatten(transform(given_drugs, g -> COALESCE(try_element_at({names}, g), array(g))))"
        return [{"_given_ids": generic, "_given_generic": as_typed}, flags,
                {"_given_none": "given_drugs IS NULL OR (_given_n = 0 AND NOT _given_other)"}]

    def _outputs(self) -> list[Column]:
        p = self.plan

        def ids(items: list[tuple[str, str]]) -> str:
            if not items:
                return "CAST(array() AS ARRAY<STRING>)"
            present = ", ".join(f"IF({c}, {quote(i)}, NULL)" for c, i in items)
            return f"filter(array({present}), x -> x IS NOT NULL)"

        def label(position: str, labels: tuple[str, ...] | list[str]) -> str:
            return f"element_at(array({', '.join(quote(x) for x in labels)}), CAST({position} AS INT) + 1)"

        lists = {
            **{f"options_{t}": [(f"_o_{i}", i) for i in p.options[t]] for t in p.options},
            "local_and_supportive": [(f"_o_{i}", i) for i in p.local],
            "tests_to_consider": [(f"_t_{i}", i) for i in p.tests],
            "safety_flags": p.safety_flags(),
        }
        texts = {
            "patient_id": f"COALESCE(patient_id, concat('row-', CAST({ROW} AS STRING)))",
            "row": ROW,
            "subtype": "COALESCE(subtype, 'unknown')",
            "her2_category": "COALESCE(her2, 'unknown')",
            "decision_point": label("_decision_point", p.decision_points),
            "line": "CAST(line AS INT)",
            **{name: ids(items) for name, items in lists.items()},
            "given_drugs": "CASE WHEN given_drugs IS NULL THEN NULL ELSE array_distinct(_given_generic) END",
            "concordance": label("_concordance", CONCORDANCE),
        }
        return [_expr(t, n) for n, t in texts.items()]


def evaluate(
    source: Path,
    out: Path,
    *,
    master: str | None = None,
    started: Started | None = None,
    progress: Callable[[int], None] | None = None,
    kb: Knowledge | None = None,
) -> tuple[Summary, float]:
    """INPUT -> RESULTS (a Parquet directory written by Spark); returns the summary and the JVM start time."""
    began = time.perf_counter()
    started = started or session(master)
    ev = SparkEvaluator(started.spark, kb)
    fmt = read.detect(source)
    problems: list[pl.DataFrame] = []
    notes = no_problems()
    with tempfile.TemporaryDirectory(prefix=".mbcnav-spark-", dir=out.parent) as staging:
        parquet = source
        if fmt != "parquet" or read.flat_layout(source):  # Spark reads nested Parquet; the rest is staged
            parquet, found, notes = _stage_text(source, Path(staging) / "input.parquet")
            problems.append(found)
        frames = ev.read(parquet)
        ev.learn_names(parquet, frames)
        valid, found = ev.check(frames, Path(staging) / "conformed")
        problems.append(found)
        results = ev.results(valid)
        target = Path(staging) / "results"
        results.write.mode("overwrite").parquet(str(target))
        _replace(target, out)
    summary = Summary()
    summary.evaluated = pl.scan_parquet(out / "*.parquet").select(pl.len()).collect().item()
    summary.rejected = pl.concat([p.select(ROW) for p in problems]).n_unique() if problems else 0
    summary.noted = notes.height
    summary.read = summary.evaluated + summary.rejected
    summary.errors_path = write_errors(out, [*problems, notes])
    if progress:
        progress(summary.read)
    summary.seconds = time.perf_counter() - began
    return summary, started.seconds


def _stage_text(source: Path, target: Path) -> tuple[Path, pl.DataFrame, pl.DataFrame]:
    """CSV / NDJSON / FHIR / flat Parquet: read and check locally, hand the valid rows to Spark as Parquet.

    Returns the Parquet path, the problems of rejected rows, and the notes (read.Batch.notes).
    """
    from mbcnav.cohort.local import Evaluator, batches

    ev = Evaluator()
    _, found = batches(source, 1_000_000)
    frames, problems, notes = [], [no_problems()], [no_problems()]
    for batch in found:
        problems.append(batch.problems)
        notes.append(batch.notes)
        for frame in batch.all_frames():
            checked = ev.check(frame)
            problems.append(checked.problems)
            frames.append(checked.valid)
    valid = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    valid.write_parquet(target)
    return target, pl.concat(problems), pl.concat(notes)


def _replace(staged: Path, out: Path) -> None:
    """Rename the finished results over `out`; an existing target is moved aside first, then removed."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
        staged.rename(out)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        staged.rename(out)
