"""The local engine: Polars, batch by batch, results written atomically.

Memory is bounded by the batch (one Parquet row group, or `batch_rows` lines of text), whatever
the input size. Each batch is validated, turned into facts and evaluated set-wise, then appended
to a temporary Parquet file beside the output; only a complete run renames it into place
(`os.replace`), so a crash never leaves a half-written results file. Rejected rows go to
``<results>.errors.csv`` (row number, patient id when readable, field, message), written the same way.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from polars.io.plugins import register_io_source

from mbcnav.cohort import DEFAULT_BATCH_ROWS, EVALUATION_THREADS, read, validate_arrow
from mbcnav.cohort.facts import BatchTables, Derivation
from mbcnav.cohort.native import evaluate as native_engine
from mbcnav.cohort.plan import build
from mbcnav.cohort.rules import PolarsPlan
from mbcnav.cohort.schema import ROW
from mbcnav.cohort.tables import name_bits, qt_names
from mbcnav.cohort.validate import Checked, DrugNames, canonical_schema, check
from mbcnav.knowledge.loader import Knowledge, knowledge

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
KEEP = (ROW, "patient_id", "given_drugs")


@dataclass
class Summary:
    read: int = 0          # records found in the input
    evaluated: int = 0     # patients in the results
    rejected: int = 0      # records reported in the errors file and skipped
    noted: int = 0         # reported, rejecting no record by itself (FHIR lines and resources left out)
    seconds: float = 0.0
    errors_path: Path | None = None

    @property
    def per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds else 0.0


class Evaluator:
    """Knowledge base compiled for cohorts once; `batch` evaluates one validated frame."""

    def __init__(self, kb: Knowledge | None = None, compiled: bool = True) -> None:
        """`compiled`: use the compiled passes (cohort/native) when they build; False: Polars only."""
        self.kb = kb or knowledge()
        self.derivation = Derivation(self.kb.columns, self.kb.drug_classes)
        self.plan = build(self.kb)
        self.polars = PolarsPlan(self.plan)
        self.names = DrugNames()
        self.native = native_engine.build(self.kb, self.derivation, self.polars) if compiled else None

    def check(self, frame: pl.DataFrame, names_hint: set[str] | None = None) -> Checked:
        return check(frame, self.names, names_hint)

    def tables(self, valid: pl.DataFrame, drug_names: Iterable[str]) -> BatchTables:
        meds = valid.select(pl.col("current_medications").explode().drop_nulls().unique()).to_series().to_list()
        return BatchTables(name_bits(drug_names, self.names.known), qt_names(self.kb, meds))

    def in_place(self, part: read.ArrowPart) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """Results and problems of a nested Parquet part read in place by the compiled passes, or
        None when it cannot be (not the Profile's own layout, compiled passes off): then it goes
        through Polars validation as a frame.

        Rows `validate_arrow` rejects are left out and explained by `check` on those rows alone;
        should `check` accept any of them, the two disagree and the part is not read in place.
        """
        batch = part.batch
        if self.native is None or not validate_arrow.canonical(batch.schema):
            return None
        names = part.drug_names
        if names is None or not validate_arrow.lists_are_tight(batch):
            return None
        self.names.learn(sorted(names))
        bad = validate_arrow.rejected(batch, self.names.unknown)
        problems = read.no_problems()
        if bad.any():
            rows = np.flatnonzero(bad)
            frame = pl.from_arrow(batch.filter(pa.array(bad)))
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(pl.Series(ROW, rows + part.first_row, dtype=pl.UInt64))
            checked = self.check(frame, names)
            if checked.valid.height:
                log.warning("rows %s: in-place validation rejects what validation accepts; reading the batch "
                            "through Polars", checked.valid[ROW].head(5).to_list())
                return None
            problems = checked.problems
        results = self.native.results_arrow(batch, part.first_row, self.arrow_tables(batch, names))
        return (results.filter(pl.Series(~bad)) if bad.any() else results), problems

    def arrow_tables(self, batch: pa.RecordBatch, drug_names: Iterable[str]) -> BatchTables:
        """`tables` for a Parquet batch read in place: medicines from their dictionary's few values."""
        meds = batch.column("current_medications").values
        listed = meds.dictionary if pa.types.is_dictionary(meds.type) else pc.unique(meds)
        return BatchTables(name_bits(drug_names, self.names.known),
                           qt_names(self.kb, [m for m in listed.to_pylist() if m is not None]))

    def results(self, valid: pl.DataFrame, drug_names: Iterable[str]) -> pl.DataFrame:
        tables = self.tables(valid, drug_names)
        if self.native is not None:
            return self.native.results(valid, tables, valid["patient_id"].has_nulls())
        facts = self.derivation.stages(valid, tables, KEEP)
        return self.polars.evaluate(facts, tables.names, tables.names.ids, valid["patient_id"].has_nulls())


def batches(path: Path, batch_rows: int, workers: int = 1) -> tuple[str, Iterator[read.Batch]]:
    """The input's batches; `workers`: processes mapping FHIR Bulk Data patients (bulk.read_bulk)."""
    fmt = read.detect(path)
    if fmt == "parquet":
        return fmt, read.read_parquet(path, batch_rows)
    if fmt == "ndjson":
        return fmt, read.read_ndjson(path, batch_rows)
    if fmt == "csv":
        return fmt, read.read_csv(path, batch_rows)
    from mbcnav.cohort import bulk  # FHIR Bulk Data: only imported when asked for

    return fmt, bulk.read_bulk(path, batch_rows, workers)


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A temporary path in the same directory, renamed over `path` only if the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); results are for sharing with a quality team, so
        # they get the mode a plain new file would (or the mode of the file they replace).
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError, IndexError):
        return 0o022


def errors_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".parquet") + ".errors.csv")


def write_errors(out: Path, reported: list[pl.DataFrame]) -> Path | None:
    """RESULTS.errors.csv (row, field, message; by row, lines without a row last), or None if empty."""
    target = errors_path(out)
    found = [frame for frame in reported if frame.height]
    if not found:
        target.unlink(missing_ok=True)  # a stale errors file from an earlier run would mislead
        return None
    with atomic(target) as tmp:
        pl.concat(found).sort(ROW, maintain_order=True, nulls_last=True).rename({ROW: "row"}).write_csv(tmp)
    return target


def evaluate(
    source: Path,
    out: Path,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    evaluator: Evaluator | None = None,
    workers: int = 1,
    threads: int = EVALUATION_THREADS,
) -> Summary:
    """INPUT -> RESULTS.parquet (+ RESULTS.errors.csv when rows were rejected).

    `workers` > 1 maps FHIR Bulk Data patients in that many processes (spawned: a script calling
    this needs the `if __name__ == "__main__":` guard, as for any multiprocessing; the CLI has it).

    The next batch is read in a background thread (Arrow releases the GIL) while `threads`
    batches are evaluated at once (Polars and numpy release it too; numpy's part runs on one
    core, so a second batch keeps the other busy). Results are written in input order: they
    stream into Polars' Parquet sink, which encodes and writes them on its own threads (about
    half the CPU time of Arrow's writer for these list columns).
    """
    started = time.perf_counter()
    ev = evaluator or Evaluator()
    summary = Summary()
    problems: list[pl.DataFrame] = []
    _, source_batches = batches(source, batch_rows, workers)
    failure: list[BaseException] = []

    def finish(done: Future[Evaluated]) -> Iterator[pl.DataFrame]:
        evaluated = done.result()
        evaluated.add_to(summary, problems)
        if evaluated.frame is not None:
            yield evaluated.frame
        if progress:
            progress(evaluated.size)

    def results(upcoming: Future[read.Batch | None]) -> Iterator[pl.DataFrame]:
        try:
            with ThreadPoolExecutor(max(1, threads)) as evaluating:
                running: deque[Future[Evaluated]] = deque()
                while (batch := upcoming.result()) is not None:
                    upcoming = reading.submit(next, source_batches, None)
                    running.append(evaluating.submit(_evaluate_batch, ev, batch))
                    if len(running) >= threads:
                        yield from finish(running.popleft())
                while running:
                    yield from finish(running.popleft())
        except BaseException as err:   # the sink reports it as its own error: keep the original
            failure.append(err)
            raise

    with ThreadPoolExecutor(1) as reading:
        # The first batch is read while the results' schema is worked out (~0.25 s on a first run).
        first = reading.submit(next, source_batches, None)
        schema = result_schema(ev)
        with atomic(out) as tmp:
            try:
                register_io_source(lambda *_: results(first), schema=schema).sink_parquet(
                    tmp, compression="lz4", statistics=False)
            except Exception:
                if failure:
                    raise failure[0] from None
                raise
    summary.errors_path = write_errors(out, problems)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class Evaluated:
    """One batch's results and what it adds to the summary (merged in input order)."""

    frame: pl.DataFrame | None
    problems: list[pl.DataFrame]
    size: int
    read: int
    rejected: int
    noted: int

    def add_to(self, summary: Summary, problems: list[pl.DataFrame]) -> None:
        problems.extend(self.problems)
        summary.read += self.read
        summary.rejected += self.rejected
        summary.noted += self.noted
        summary.evaluated += 0 if self.frame is None else self.frame.height


def _evaluate_batch(ev: Evaluator, batch: read.Batch) -> Evaluated:
    in_place = [(part, ev.in_place(part)) for part in batch.arrow]
    frames = batch.all_frames([part for part, done in in_place if done is None])
    checked = [ev.check(frame, batch.drug_names) for frame in frames]
    undecodable = batch.problems.select(ROW).unique()
    # A row with a cell that could not be decoded is rejected as a whole (CSV JSON cells).
    valid = [c.valid.join(undecodable, on=ROW, how="anti") if undecodable.height else c.valid
             for c in checked if c.valid.height]
    found = [batch.problems, *(c.problems for c in checked), *(done[1] for _, done in in_place if done)]
    parts = [done[0] for _, done in in_place if done and done[0].height]
    if valid:
        names = {n for c in checked for n in c.drug_names}
        # Parts of a batch (files of different layouts, NDJSON lines read by kind) in input order.
        joined = pl.concat(valid, how="vertical_relaxed")
        parts.append(ev.results(joined.sort(ROW) if len(valid) > 1 else joined, names))
    frame = None
    if parts:
        frame = pl.concat(parts).sort("row") if len(parts) > 1 else parts[0]
    return Evaluated(
        frame=frame,
        problems=[f for f in [*found, batch.notes] if f.height],
        size=batch.size,
        read=batch.rows + batch.problems.select(ROW).n_unique(),
        rejected=pl.concat([f.select(ROW) for f in found]).n_unique(),
        noted=batch.notes.height,
    )


def result_schema(ev: Evaluator) -> pl.Schema:
    """The results file's schema, from evaluating no rows (the same for every batch)."""
    empty = pl.DataFrame(schema=canonical_schema()).with_columns(pl.lit(0, pl.UInt64).alias(ROW))
    return ev.results(empty, []).schema
