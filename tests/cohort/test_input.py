"""Bad input: every malformed row is reported with its row number and field, skipped and counted.

Never silently dropped, never stops the run; the results file is only ever complete or absent.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from mbcnav.cohort import local, synth
from mbcnav.cohort.cli import cohort
from mbcnav.cohort.read import InputError
from tests.cohort.conftest import records

GOOD: dict[str, Any] = {"sex": "female", "age": 64, "menopausal_status": "post",
                        "tumor": {"er": "positive", "pr": "positive", "her2": {"ihc": "1+"}},
                        "disease": {"sites": ["bone"]}}


def _ndjson(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _errors(summary: local.Summary) -> dict[int, list[str]]:
    assert summary.errors_path is not None
    errors = pl.read_csv(summary.errors_path)
    return {row: [f for f in fields] for row, fields in errors.group_by("row").agg("field").sort("row").iter_rows()}


def test_malformed_ndjson_rows_are_reported_by_row_and_field_and_skipped(tmp_path: Path) -> None:
    lines = [
        json.dumps({**GOOD, "patient_id": "ok-1", "given_drugs": ["Kisqali", "Femara"]}),
        json.dumps({**GOOD, "age": "abc"}),
        "this is not json",
        json.dumps({**GOOD, "tumor": {"er": "Positive", "colour": "red"}}),
        "",
        json.dumps({**GOOD, "history": {"metastatic": [{"drugs": ["aspirinx"], "outcome": "progressed"}]}}),
        json.dumps({**GOOD, "tumor": "positive"}),
        json.dumps({"sex": "male", "menopausal_status": "post"}),
        json.dumps({**GOOD, "disease": {"sites": ["bone", "moon"]}}),
        '{"sex": "female", "age": 50, "age": 51}',
        "[1, 2]",
        json.dumps({**GOOD, "patient_id": "ok-2"}),
    ]
    out = tmp_path / "results.parquet"
    summary = local.evaluate(_ndjson(tmp_path / "in.ndjson", lines), out)
    assert (summary.read, summary.evaluated, summary.rejected) == (11, 2, 9)
    assert _errors(summary) == {
        2: ["age"], 3: ["record"], 4: ["tumor.er", "tumor.colour"],
        6: ["history.metastatic[0].drugs[0]"], 7: ["tumor"], 8: ["menopausal_status"], 9: ["disease.sites[1]"],
        10: ["age"], 11: ["record"],
    }
    results = pl.read_parquet(out)
    assert results["patient_id"].to_list() == ["ok-1", "ok-2"]
    assert results["row"].to_list() == [1, 12]
    assert results["given_drugs"][0].to_list() == ["ribociclib", "letrozole"]  # brand names -> generic ids
    message = pl.read_csv(summary.errors_path).filter(pl.col("row") == 6)["message"][0]  # type: ignore[arg-type]
    assert "unknown drug name 'aspirinx'" in message


def test_given_drugs_are_generic_ids_each_once_whatever_else_the_batch_holds(tmp_path: Path) -> None:
    """A batch without any brand name used to keep a name typed twice; Spark never did."""
    lines = [json.dumps({**GOOD, "patient_id": "a", "given_drugs": ["letrozole", "palbociclib", "letrozole"]}),
             json.dumps({**GOOD, "patient_id": "b"}),
             json.dumps({**GOOD, "patient_id": "c", "given_drugs": []})]
    out = tmp_path / "results.parquet"
    local.evaluate(_ndjson(tmp_path / "in.ndjson", lines), out)
    assert pl.read_parquet(out)["given_drugs"].to_list() == [["letrozole", "palbociclib"], None, []]


def test_csv_with_dotted_columns_and_json_cells(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "patient_id,sex,age,tumor.er,tumor.her2.ihc,disease.sites,history.metastatic,given_drugs\n"
        'a,female,70,positive,1+,"[""bone""]","[{""drugs"": [""letrozole"", ""palbociclib""], '
        '""outcome"": ""progressed""}]","[""fulvestrant""]"\n'
        "b,female,seventy,positive,1+,,,\n"
        'c,female,55,negative,0,"[""liver""]",not json,\n'
        "d,male,,unknown,,,,\n"
        'e,female,60,positive,0,"[""bone""]","[{""drugs"": [""letrozole""], ""outcome"": ""progressed"", '
        '""months"": 3, ""outcome"": ""ongoing""}]",\n',
        encoding="utf-8",
    )
    summary = local.evaluate(source, tmp_path / "out.parquet")
    assert (summary.evaluated, summary.rejected) == (2, 3)
    assert _errors(summary) == {2: ["age"], 3: ["history.metastatic"], 5: ["history.metastatic[0].outcome"]}
    message = pl.read_csv(summary.errors_path).filter(pl.col("row") == 3)["message"][0]  # type: ignore[arg-type]
    assert message == """history.metastatic: must be a JSON list such as [{"drugs": ...}], not 'not json'"""
    results = pl.read_parquet(tmp_path / "out.parquet").sort("row")
    assert results["patient_id"].to_list() == ["a", "d"]
    assert results["decision_point"][0] == "second-line systemic therapy"
    assert results["subtype"][1] == "unknown"


def test_all_formats_give_the_same_results(tmp_path: Path) -> None:
    """Nested Parquet, NDJSON, CSV, and a flat Parquet export (CSV's layout with typed columns)."""
    sources = []
    for suffix in (".parquet", ".ndjson", ".csv"):
        sources.append(tmp_path / f"cohort{suffix}")
        synth.write(400, sources[-1], synth.Options(seed=7, malformed_rate=0.05))
    flat = pl.read_csv(sources[-1], infer_schema_length=None)  # numbers and booleans typed, JSON cells text
    assert flat.schema["age"].is_numeric() and "tumor.her2.ihc" in flat.columns
    sources.append(tmp_path / "flat.parquet")
    flat.write_parquet(sources[-1])
    frames = []
    for source in sources:
        summary = local.evaluate(source, tmp_path / f"out-{source.name}.parquet")
        assert summary.rejected > 5
        frames.append(pl.read_parquet(tmp_path / f"out-{source.name}.parquet").sort("row"))
    for other in frames[1:]:
        assert other.to_dicts() == frames[0].to_dicts()


def test_a_crash_leaves_no_half_written_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.parquet"
    synth.write(3_000, source, synth.Options(seed=3))
    out = tmp_path / "results.parquet"
    out.write_bytes(b"previous results")
    calls = 0
    real = local._evaluate_batch

    def failing(ev: local.Evaluator, batch: Any) -> local.Evaluated:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")
        return real(ev, batch)

    monkeypatch.setattr(local, "_evaluate_batch", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        local.evaluate(source, out, batch_rows=1_000)
    assert out.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "results.parquet"]  # no temporary left


def test_results_get_the_mode_of_a_new_file_or_of_the_file_they_replace(tmp_path: Path) -> None:
    """Written through a private temporary file, results must still be readable by colleagues."""
    source = tmp_path / "in.ndjson"
    source.write_text(json.dumps(GOOD) + "\nnot json\n", encoding="utf-8")
    old = os.umask(0o027)
    try:
        summary = local.evaluate(source, tmp_path / "new.parquet")
        kept = tmp_path / "kept.parquet"
        kept.write_bytes(b"old")
        kept.chmod(0o664)
        local.evaluate(source, kept)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.parquet").stat().st_mode) == 0o640
    assert summary.errors_path and stat.S_IMODE(summary.errors_path.stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o664


def test_damaged_parquet_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    """Empty, not Parquet, or damaged after its footer: a clear error, exit 2, no results file."""
    good = tmp_path / "good.parquet"
    synth.write(3_000, good, synth.Options(seed=5), chunk_rows=1_000)
    data = good.read_bytes()
    half = len(data) // 2   # data pages scrambled, magic bytes and footer intact
    (tmp_path / "damaged.parquet").write_bytes(data[:4] + bytes(b ^ 0x5A for b in data[4:half]) + data[half:])
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "text.parquet").write_text("patient_id,sex\n1,female\n")
    cases = {"empty.parquet": "not a readable Parquet file", "text.parquet": "not a readable Parquet file",
             "damaged.parquet": "cannot be read"}
    for name, why in cases.items():
        out = tmp_path / f"{name}.results.parquet"
        with pytest.raises(InputError, match=why) as raised:
            local.evaluate(tmp_path / name, out, batch_rows=1_000)
        assert name in str(raised.value)
        assert not out.exists()
        done = CliRunner().invoke(cohort, ["evaluate", str(tmp_path / name), "--out", str(out)])
        assert done.exit_code == 2, done.output
        assert name in done.output and why in done.output and "Traceback" not in done.output
        assert not out.exists()


def test_unreadable_input_is_an_error_not_an_empty_result(tmp_path: Path) -> None:
    text = tmp_path / "x.txt"
    text.write_text("sex: female")
    with pytest.raises(InputError, match="unknown format"):
        local.evaluate(text, tmp_path / "o.parquet")
    with pytest.raises(InputError, match="no such file"):
        local.evaluate(tmp_path / "missing.parquet", tmp_path / "o.parquet")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batches_and_threads_do_not_change_results(tmp_path: Path, threads: int) -> None:
    """Batches evaluated side by side still come out in input order, errors and counts included."""
    source = tmp_path / "in.parquet"
    synth.write(2_500, source, synth.Options(seed=11, malformed_rate=0.05), chunk_rows=700)
    one = local.evaluate(source, tmp_path / "one.parquet", batch_rows=10_000, threads=1)
    many = local.evaluate(source, tmp_path / "many.parquet", batch_rows=300, threads=threads)
    assert one.rejected > 50
    assert (one.read, one.evaluated, one.rejected) == (many.read, many.evaluated, many.rejected) == (
        2_500, 2_500 - one.rejected, one.rejected)
    assert one.evaluated == len(records(source)) - one.rejected
    results = pl.read_parquet(tmp_path / "many.parquet")
    assert results["row"].is_sorted() and results.height == many.evaluated
    assert pl.read_parquet(tmp_path / "one.parquet").to_dicts() == results.to_dicts()
    assert one.errors_path and many.errors_path
    assert one.errors_path.read_text() == many.errors_path.read_text()


def test_ndjson_with_a_byte_order_mark_or_a_repeated_key(tmp_path: Path) -> None:
    """A BOM (Windows tools) is not part of line 1. An object that gives a key twice is rejected with
    the key's path, as the one-patient API does (readers differ on which value wins: never guessed),
    alone or among other lines, wherever the repeat is (next to it, further on, nested, top level)."""
    tnbc = {"er": "negative", "pr": "negative", "her2": {"ihc": "0"}}
    hr_pos = '{"er": "positive", "pr": "negative", "her2": {"ihc": "0"}}'
    lines = [
        json.dumps(GOOD),
        '{"sex": "female", "tumor": {"er": "positive", "er": "negative", "pr": "negative", "her2": {"ihc": "0"}}}',
        '{"sex": "female", "tumor": ' + hr_pos + ', "tumor": ' + json.dumps(tnbc) + "}",
        '{"sex": "female", "tumor": {"er": "positive", "pr": "negative", "her2": {"ihc": "0"}, "er": "negative"}}',
        json.dumps({**GOOD, "patient_id": "last"}),
    ]
    wanted = ["row,field,message",
              "2,tumor.er,tumor.er: given more than once; give each field only once",
              "3,tumor,tumor: given more than once; give each field only once",
              "4,tumor.er,tumor.er: given more than once; give each field only once"]
    for name, chosen, rows in (("many.ndjson", lines, [1, 5]), ("alone.ndjson", lines[3:4], [])):
        source = tmp_path / name
        source.write_bytes(b"\xef\xbb\xbf" + "\n".join(chosen).encode() + b"\n")
        summary = local.evaluate(source, tmp_path / "out.parquet")
        assert (summary.evaluated, summary.rejected) == (len(rows), len(chosen) - len(rows))
        assert pl.read_parquet(tmp_path / "out.parquet")["row"].to_list() == rows
        assert summary.errors_path is not None
        errors = summary.errors_path.read_text().splitlines()
        assert errors == (wanted if len(chosen) > 1 else [wanted[0], "1" + wanted[3][1:]])


def test_ndjson_ids_that_look_like_dates_or_numbers_are_reported_as_written(tmp_path: Path) -> None:
    """Arrow's JSON reader would read "2024-01-01" as a date; ids are text, whatever they look like."""
    for ids in (["2024-01-01", "2024-01-02T10:00:00"], [17, 18]):
        lines = [json.dumps({**GOOD, "patient_id": i}) for i in ids]
        out = tmp_path / "out.parquet"
        summary = local.evaluate(_ndjson(tmp_path / "in.ndjson", lines), out)
        assert summary.rejected == 0
        assert pl.read_parquet(out)["patient_id"].to_list() == [str(i) for i in ids]


def test_ndjson_lines_of_other_kinds_are_read_as_written_not_as_their_neighbours(tmp_path: Path) -> None:
    """Ages written as text beside numbers are read as ages; a yes/no where a number belongs, or a
    list where one value belongs, is refused on its own line without changing the lines around it."""
    lines = [json.dumps({**GOOD, "age": 60 + i % 3}) for i in range(20)]
    lines[3] = json.dumps({**GOOD, "age": "61"})
    lines[7] = json.dumps({**GOOD, "age": True})
    lines[11] = json.dumps({**GOOD, "sex": ["female"]})
    out = tmp_path / "out.parquet"
    summary = local.evaluate(_ndjson(tmp_path / "in.ndjson", lines), out)
    assert _errors(summary) == {8: ["age"], 12: ["sex"]}
    results = pl.read_parquet(out)
    assert results["row"].to_list() == [r for r in range(1, 21) if r not in (8, 12)]
    assert set(results["subtype"].cast(pl.String)) == {"hr_positive_her2_negative"}
