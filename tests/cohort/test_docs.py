"""The SQL in docs/cohort.md runs on a results file and counts what it says (DuckDB, as the doc shows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl

from mbcnav.cohort import local, synth

DOC = Path(__file__).resolve().parents[2] / "docs" / "cohort.md"
CDK46_OPTIONS = ["cdk46_inhibitor_plus_ai", "cdk46_inhibitor_plus_fulvestrant",
                 "ribociclib_plus_fulvestrant_first_line", "inavolisib_palbociclib_fulvestrant",
                 "abemaciclib_trastuzumab_fulvestrant"]


def test_the_documented_queries_count_what_they_say(tmp_path: Path) -> None:
    source, results = tmp_path / "c.parquet", tmp_path / "results.parquet"
    synth.write(2_000, source, synth.Options(seed=9))
    local.evaluate(source, results)
    sql = DOC.read_text(encoding="utf-8").split("```sql", 1)[1].split("```", 1)[0]
    queries = [q for q in sql.split(";") if q.strip()]
    assert len(queries) == 3
    untreated, esr1_gap, by_group = _duckdb([q.replace("'results.parquet'", "'" + str(results).replace("'", "''") + "'")
                                             for q in queries])

    frame = pl.read_parquet(results)
    frame = frame.with_columns(pl.col(c).cast(pl.List(pl.String)) for c, t in frame.schema.items()
                               if isinstance(t, pl.List))
    offered = pl.concat_list("options_preferred", "options_alternative", "options_selected_cases")
    want_untreated = frame.filter(
        offered.list.eval(pl.element().is_in(CDK46_OPTIONS)).list.any() & pl.col("given_drugs").is_not_null()
        & ~pl.col("given_drugs").list.eval(pl.element().is_in(["palbociclib", "ribociclib", "abemaciclib"])).list.any())
    want_gap = frame.filter((pl.col("subtype") == "hr_positive_her2_negative")
                            & pl.col("tests_to_consider").list.contains("esr1_ctdna"))
    assert untreated == [(want_untreated.height,)] and want_untreated.height > 0
    assert esr1_gap == [(want_gap.height,)] and want_gap.height > 0
    assert sum(n for *_, n in by_group) == frame.filter(pl.col("given_drugs").is_not_null()).height


def _duckdb(queries: list[str]) -> list[list[Any]]:
    """Run the queries as a reader of the doc would: DuckDB in its own process, nothing else loaded.

    (In this process, after an evaluation, DuckDB's bindings report leaked objects at exit.)
    """
    code = ("import duckdb, json, sys\ncon = duckdb.connect()\n"
            "print(json.dumps([con.sql(q).fetchall() for q in json.loads(sys.stdin.read())]))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(queries), capture_output=True, text=True,
                          check=True)
    rows: list[list[Any]] = [[tuple(r) for r in q] for q in json.loads(done.stdout)]
    return rows
