"""Cohort evaluation speed: patients/second and peak memory, next to a raw scan of the same input.

    .venv/bin/python benchmarks/cohort.py                       # 1M and 10M, local engine
    .venv/bin/python benchmarks/cohort.py --sizes 1000000 --spark 1000000
    .venv/bin/python benchmarks/cohort.py --sizes 1000000 --compare   # Polars vs DuckDB on the rules
    .venv/bin/python benchmarks/cohort.py --sizes 1000000 --stages    # CPU per pipeline stage
    .venv/bin/python benchmarks/cohort.py --sizes '' --text 200000     # NDJSON and CSV input

Each measurement runs in its own process, so its peak RSS is its own. Synthetic inputs are made
once and kept in --dir (seeded: the same files every time). The floor is a scan of the same
Parquet file with the same reader settings that does nothing else: evaluation cannot beat it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mbcnav.cohort import DEFAULT_BATCH_ROWS, EVALUATION_THREADS

HERE = Path(__file__).resolve().parent
GIB = 2**30


def _child(code: str) -> dict[str, float]:
    """Run `code` in a fresh interpreter; it prints a JSON dict; add its peak RSS (GiB).

    Peak RSS is VmHWM from /proc: getrusage's ru_maxrss survives exec, so a child started from a
    big parent would report the parent's size.
    """
    wrapper = code + "\nimport json as _j\n" \
        "_hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n" \
        "print(_j.dumps({**RESULT, 'rss': _hwm / 2**20}))"
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def synthetic(n: int, folder: Path, seed: int = 1, suffix: str = ".parquet") -> Path:
    path = folder / f"synthetic-{n}-seed{seed}{suffix}"
    if not path.exists():
        started = time.perf_counter()
        from mbcnav.cohort import synth

        synth.write(n, path, synth.Options(seed=seed))
        print(f"  generated {n:,} synthetic patients in {time.perf_counter() - started:.1f} s -> {path}")
    return path


SCAN = """
import time
from pathlib import Path
from mbcnav.cohort import local
started, cpu = time.perf_counter(), time.process_time()
rows = sum(b.rows for b in local.batches(Path({path!r}), {batch})[1])
RESULT = {{'seconds': time.perf_counter() - started, 'cpu': time.process_time() - cpu, 'rows': rows}}
"""

BUILD = """
import os, time
os.environ["MBCNAV_CACHE_DIR"] = {cache!r}   # empty: the first use on a machine builds the C
started = time.perf_counter()
from mbcnav.cohort import local
ev = local.Evaluator()
RESULT = {{'seconds': time.perf_counter() - started, 'built': ev.native is not None}}
"""

LOCAL = """
import time
from pathlib import Path
from mbcnav.cohort import keep_freed_memory
keep_freed_memory()   # as `mbcnav cohort evaluate` does, before Polars loads
from mbcnav.cohort import local
ev = local.Evaluator(compiled={compiled})   # built before the clock starts (as in a long-running service)
assert (ev.native is not None) == {compiled}, "compiled passes asked for but not built (no C compiler?)"
started, cpu = time.perf_counter(), time.process_time()
s = local.evaluate(Path({path!r}), Path({out!r}), batch_rows={batch}, evaluator=ev, threads={threads})
RESULT = {{'seconds': time.perf_counter() - started, 'cpu': time.process_time() - cpu, 'rows': s.evaluated}}
"""

SPARK = """
import time
from pathlib import Path
from mbcnav.cohort import spark
started = spark.session({master!r})
jvm = started.spark.sparkContext._jvm
pid = jvm.java.lang.ProcessHandle.current().pid()
clock = time.perf_counter()
s, _ = spark.evaluate(Path({path!r}), Path({out!r}), started=started)
seconds = time.perf_counter() - clock
status = open(f'/proc/{{pid}}/status').read()
hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith('VmHWM'))
RESULT = {{'seconds': seconds, 'rows': s.evaluated, 'jvm_start': started.seconds, 'jvm_rss': hwm / 2**20}}
"""


FORMATS = {".parquet": "Parquet, nested contract Profiles", ".ndjson": "NDJSON, one Profile per line",
           ".csv": "CSV, dotted columns with JSON cells"}


def measure(n: int, folder: Path, batch: int, spark_master: str | None, threads: int = EVALUATION_THREADS,
            suffix: str = ".parquet") -> None:
    path = synthetic(n, folder, suffix=suffix)
    print(f"\n{n:,} patients ({path.stat().st_size / 2**20:,.0f} MiB {FORMATS[suffix]})")
    scan = _child(SCAN.format(path=str(path), batch=batch))
    print(f"  raw scan (floor)   {scan['seconds']:7.2f} s  {n / scan['seconds']:>12,.0f} patients/s  "
          f"peak RSS {scan['rss']:.2f} GiB  ({scan['cpu']:.1f} s CPU)")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        out = Path(tmp) / "results.parquet"
        if spark_master is None:
            for compiled, label in ((True, "evaluate (local)"), (False, "Polars path only")):
                run = _child(LOCAL.format(path=str(path), out=str(out), batch=batch, threads=threads,
                                          compiled=compiled))
                print(f"  {label:<19}{run['seconds']:7.2f} s  {n / run['seconds']:>12,.0f} patients/s  "
                      f"peak RSS {run['rss']:.2f} GiB  ({run['cpu']:.1f} s CPU)  "
                      f"-> {out.stat().st_size / 2**20:,.0f} MiB results")
        else:
            run = _child(SPARK.format(path=str(path), out=str(out), master=spark_master))
            print(f"  Spark JVM start    {run['jvm_start']:7.2f} s")
            print(f"  evaluate (spark)   {run['seconds']:7.2f} s  {n / run['seconds']:>12,.0f} patients/s  "
                  f"driver RSS {run['rss']:.2f} GiB, JVM peak RSS {run['jvm_rss']:.2f} GiB")


COMPARE = """
import time, duckdb, polars as pl
from pathlib import Path
from mbcnav.cohort import local, read
from mbcnav.cohort.plan import build
ev = local.Evaluator()
batch = next(read.read_parquet(Path({path!r}), 10**9))
checked = ev.check(batch.all_frames()[0])
tables = ev.tables(checked.valid, checked.drug_names)
facts = ev.derivation.stages(checked.valid, tables, ['_row']).collect()
facts.write_parquet({facts!r})
plan = build(ev.kb)
conditions = plan.conditions
status = plan.steps[0]
out = {{}}
def polars_rules():
    frame = pl.scan_parquet({facts!r}).with_columns([pl.sql_expr(t).alias(n) for n, t in conditions.items()])
    frame = frame.with_columns([pl.sql_expr(t).alias(n) for n, t in status.items()])
    return frame.select([pl.col(n).sum() for n in status]).collect()
def duck_rules():
    inner = ', '.join(f'{{t}} AS {{n}}' for n, t in conditions.items())
    outer = ', '.join(f'sum(CAST(({{t}}) AS INTEGER)) AS {{n}}' for n, t in status.items())
    con = duckdb.connect()
    return con.sql(f"SELECT {{outer}} FROM (SELECT *, {{inner}} FROM read_parquet('{facts}'))").fetchall()
for name, fn in (('polars', polars_rules), ('duckdb', duck_rules)):
    fn()
    started = time.perf_counter(); fn(); out[name] = time.perf_counter() - started
RESULT = out
"""


def compare(n: int, folder: Path) -> None:
    path = synthetic(n, folder)
    facts = folder / f"facts-{n}.parquet"
    result = _child(COMPARE.format(path=str(path), facts=str(facts)))
    print(f"\nrules only ({n:,} patients' facts from Parquet; {len(_plan_sizes())} condition texts + rule status, "
          "counts):")
    for engine in ("polars", "duckdb"):
        print(f"  {engine:7s} {result[engine]:6.2f} s  {n / result[engine]:>12,.0f} patients/s")


STAGES = """
import time
from pathlib import Path
import polars as pl
from mbcnav.cohort import local, read, validate_arrow
from mbcnav.cohort.facts import _FIRST, _SECOND
ev = local.Evaluator(compiled={compiled})
out = {{}}
def stage(name, make):
    cpu, wall = time.process_time(), time.perf_counter()
    value = make()
    out[name] = (time.process_time() - cpu, time.perf_counter() - wall)
    return value
batches = read.read_parquet(Path({path!r}), {batch})
first = next(batches)
# One-time work before the clock: drug name lookups, lazy imports (pyarrow.compute), first plans.
warm = ev.check(first.all_frames()[0], first.drug_names)
ev.results(warm.valid, warm.drug_names)
if {compiled}:
    ev.in_place(first.arrow[0])
batch = stage("read", lambda: next(batches))
if {compiled}:
    # The path a nested Parquet batch takes: read in place, no Polars frame of the input.
    assert ev.native is not None, "no compiled passes here (no C compiler?)"
    nat, part = ev.native, batch.arrow[0]
    arrow, names = part.batch, part.drug_names
    ev.names.learn(sorted(names))
    rows = arrow.num_rows
    stage("validate (in place)", lambda: validate_arrow.canonical(arrow.schema)
          and validate_arrow.lists_are_tight(arrow) and validate_arrow.rejected(arrow, ev.names.unknown).any())
    tables = ev.arrow_tables(arrow, names)
    derived = stage("facts (facts.c)", lambda: nat.derive_arrow(arrow, tables))
    ran = stage("conditions and plan (program)", lambda: nat.program.run(rows, derived.buffers))
    result = stage("answer and id lists", lambda: nat.answer_arrow(arrow, part.first_row, tables, derived, ran))
else:
    frame = stage("Arrow to Polars", lambda: batch.all_frames()[0])
    checked = stage("validate", lambda: ev.check(frame, batch.drug_names))
    valid, d, plan = checked.valid, ev.derivation, ev.polars
    tables = ev.tables(valid, checked.drug_names)
    unnamed = valid["patient_id"].has_nulls()
    rows = frame.height
    listed = stage("history and list masks", lambda: d.segments(valid, tables))
    facts = d.facts(tables.names)
    parts = ([e for e in facts if e.meta.output_name() in _FIRST],
             [e for e in facts if e.meta.output_name() in _SECOND],
             [e for e in facts if e.meta.output_name() not in _FIRST | _SECOND])
    derived = stage("facts", lambda: pl.concat([valid.lazy(), listed.lazy()], how="horizontal")
                    .with_columns(parts[0]).with_columns(parts[1]).with_columns(parts[2])
                    .select([*local.KEEP, *d.columns]).collect())
    ruled = stage("rules (conditions and plan)", lambda: plan.rules(derived.lazy(), tables.names, tables.names.ids))
    result = stage("id lists", lambda: plan.answer(ruled, unnamed))
stage("write", lambda: result.lazy().sink_parquet({out!r}, compression="lz4", statistics=False))
RESULT = {{k: v[0] for k, v in out.items()}} | {{k + " (wall)": v[1] for k, v in out.items()}}
RESULT["rows"] = rows
"""


def build_time(folder: Path) -> None:
    """The compiled passes' first build on a machine (knowledge base loaded, C generated and compiled)."""
    with tempfile.TemporaryDirectory(dir=folder) as cache:
        run = _child(BUILD.format(cache=cache))
    state = "built" if run["built"] else "NOT built (no C compiler): Polars path only"
    print(f"compiled passes: {state} in {run['seconds']:.1f} s on first use (then loaded from the cache)")


def stages(n: int, folder: Path, batch: int) -> None:
    """CPU seconds per pipeline stage for one batch, run one after another (no overlap), on the
    compiled passes and on the Polars path (the reference and fallback).

    The first batch warms up (drug name lookups), the second is measured: a batch is at most n / 2.
    """
    batch = min(batch, n // 2)
    path = synthetic(n, folder)
    for compiled, title in ((True, "compiled passes"), (False, "Polars path")):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            result = _child(STAGES.format(path=str(path), batch=batch, out=str(Path(tmp) / "r.parquet"),
                                          compiled=compiled))
        rows = result.pop("rows")
        result.pop("rss")
        names = [k for k in result if not k.endswith("(wall)")]
        total = sum(result[k] for k in names)
        print(f"\nCPU by stage, {title}: one batch of {rows:,.0f} patients, stage after stage (per 1M patients):")
        per_million = 1e6 / rows
        for name in names:
            cpu, wall = result[name] * per_million, result[name + " (wall)"] * per_million
            print(f"  {name:<30} {cpu:6.2f} s CPU  ({wall:5.2f} s wall)")
        print(f"  {'total':<30} {total * per_million:6.2f} s CPU")


def _plan_sizes() -> list[str]:
    from mbcnav.cohort.plan import build
    from mbcnav.knowledge.loader import knowledge

    return list(build(knowledge()).conditions)


def _counts(text: str) -> list[int]:
    """'1000000,10000000' -> [1000000, 10000000]; '' -> [] (skip); each count at least 1."""
    counts = [int(part) for part in text.split(",") if part]
    if any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"patient counts must be at least 1: {text}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_counts, default="1000000,10000000",
                        help="comma-separated patient counts (local engine); '' for none")
    parser.add_argument("--spark", type=_counts, default="", help="comma-separated patient counts for the Spark engine")
    parser.add_argument("--master", default="local[*]", help="Spark master")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH_ROWS, help="rows per batch (local engine)")
    parser.add_argument("--threads", type=int, default=EVALUATION_THREADS, help="batches evaluated at once (local)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mbcnav-bench")
    parser.add_argument("--compare", action="store_true", help="also time the rules alone in Polars and DuckDB")
    parser.add_argument("--stages", action="store_true", help="also print CPU per pipeline stage (one batch)")
    parser.add_argument("--text", type=_counts, default="", help="comma-separated patient counts, as NDJSON and CSV")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs; batch {args.batch:,} rows, {args.threads} at once")
    if args.sizes or args.text:
        build_time(args.dir)
    for size in args.sizes:
        measure(size, args.dir, args.batch, None, args.threads)
        if args.compare:
            compare(size, args.dir)
        if args.stages:
            stages(size, args.dir, args.batch)
    for size in args.text:
        for suffix in (".ndjson", ".csv"):
            measure(size, args.dir, args.batch, None, args.threads, suffix)
    for size in args.spark:
        measure(size, args.dir, args.batch, args.master)


if __name__ == "__main__":
    main()
