"""FHIR Bulk Data directories go through the mCODE import, one bundle per patient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from mbcnav.cohort import bulk, local
from tests.fhir import bundles as b


def _write(folder: Path, name: str, resources: list[dict[str, Any]], extra: str = "") -> None:
    (folder / name).write_text("\n".join(json.dumps(r) for r in resources) + "\n" + extra, encoding="utf-8")


def test_bulk_directory_is_grouped_per_patient(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    patients = [b.patient(pid="p1"), b.patient(pid="p2", birth="1950-01-01")]
    p1 = [b.er(b.POSITIVE), b.pr(b.POSITIVE), b.her2_ihc(valueCodeableConcept=b.concept(
        b.coding(b.SNOMED, "260385009", "Negative")))]
    p2 = [dict(o, subject={"reference": "Patient/p2"}) for o in (b.er(b.NEGATIVE), b.pr(b.NEGATIVE))]
    _write(folder, "Patient.ndjson", patients)
    _write(folder, "Observation.ndjson", p1 + p2, extra="not json\n")
    summary = local.evaluate(folder, tmp_path / "r.parquet")
    assert summary.evaluated == 2
    assert summary.errors_path is not None
    errors = pl.read_csv(summary.errors_path)
    assert errors["field"].to_list() == ["Observation.ndjson"]
    results = pl.read_parquet(tmp_path / "r.parquet").sort("patient_id")
    assert results["patient_id"].to_list() == ["p1", "p2"]
    # p1: ER+/PR+, HER2 negative by IHC; p2: ER-/PR-, HER2 never tested -> subtype unknown, a test to consider.
    assert results["subtype"].cast(pl.String).to_list() == ["hr_positive_her2_negative", "unknown"]
    assert "her2_scoring" in results["tests_to_consider"][1].cast(pl.String).to_list() or \
        "receptors" in results["tests_to_consider"][1].cast(pl.String).to_list()


def test_a_bad_line_costs_no_patient_and_unreadable_resources_are_reported(tmp_path: Path) -> None:
    """Lines are not rows: a bad first line used to reject patient 1 (row numbers collided)."""
    folder = tmp_path / "bulk"
    folder.mkdir()
    broken = dict(b.her2_ihc(valueCodeableConcept=b.concept(b.coding(b.SNOMED, "260385009", "Negative"))),
                  id="broken", code="not a CodeableConcept")
    (folder / "Patient.ndjson").write_bytes(
        b"not json\n" + json.dumps(b.patient(pid="p1")).encode() + b"\n\xc3\x28 not text\n"
        + json.dumps(b.patient(pid="p2")).encode() + b"\n")
    _write(folder, "Observation.ndjson", [b.er(b.POSITIVE), b.pr(b.POSITIVE), broken])
    summary = local.evaluate(folder, tmp_path / "r.parquet")
    assert (summary.evaluated, summary.rejected, summary.noted) == (2, 0, 3)
    assert sorted(pl.read_parquet(tmp_path / "r.parquet")["patient_id"].to_list()) == ["p1", "p2"]
    assert summary.errors_path is not None
    errors = pl.read_csv(summary.errors_path).to_dicts()
    assert errors[0]["row"] == 1 and errors[0]["field"] == "Observation/broken"
    assert "not valid FHIR R4" in errors[0]["message"] and errors[0]["message"].endswith("left out")
    assert errors[1:] == [{"row": None, "field": "Patient.ndjson", "message": "line 1 is not JSON: Expecting value"},
                          {"row": None, "field": "Patient.ndjson", "message": "line 3 is not JSON: not UTF-8 text"}]


def test_a_resource_repeating_a_key_is_left_out_and_reported(tmp_path: Path) -> None:
    """JSON parsers keep a repeated key's last value; which one the sender meant is unknown."""
    her2 = b.her2_ihc(valueCodeableConcept=b.concept(b.coding(b.SNOMED, "260385009", "Negative")))
    others = [b.pr(b.NEGATIVE), her2]
    er = b.er(b.NEGATIVE)
    # The ER result's coding given twice: negative, then positive (the value json.loads keeps).
    negative = json.dumps(er["valueCodeableConcept"]["coding"])
    positive = b.er(b.POSITIVE)["valueCodeableConcept"]["coding"]
    twice = json.dumps(er).replace(f'"coding": {negative}', f'"coding": {negative}, "coding": {json.dumps(positive)}')
    assert json.loads(twice)["valueCodeableConcept"]["coding"] == positive

    def run(name: str, extra: str, observations: list[dict[str, Any]]) -> tuple[local.Summary, pl.DataFrame]:
        folder = tmp_path / name
        folder.mkdir()
        _write(folder, "Patient.ndjson", [b.patient(pid="p1")])
        _write(folder, "Observation.ndjson", observations, extra=extra)
        summary = local.evaluate(folder, tmp_path / f"{name}.parquet")
        return summary, pl.read_parquet(tmp_path / f"{name}.parquet").drop("row")

    summary, repeated = run("repeated", twice + "\n", others)
    assert (summary.evaluated, summary.rejected, summary.noted) == (1, 0, 1)
    assert summary.errors_path is not None
    [error] = pl.read_csv(summary.errors_path).to_dicts()
    assert error == {"row": 1, "field": f"Observation/{er['id']}",
                     "message": f"Observation/{er['id']}: the key 'coding' is repeated; left out"}
    # The same as no ER result at all: ER unknown, so the subtype is unknown (not HR-positive).
    _, without = run("without", "", others)
    assert repeated.equals(without)
    assert repeated["subtype"].cast(pl.String).to_list() == ["unknown"]
    _, last_value = run("last", "", [*others, b.er(b.POSITIVE)])
    assert last_value["subtype"].cast(pl.String).to_list() == ["hr_positive_her2_negative"]


def test_batches_of_patients_read_back_from_offsets_give_the_same_results(tmp_path: Path) -> None:
    """The second pass seeks each patient's lines (any file, CRLF endings too), one batch at a time."""
    folder = tmp_path / "bulk"
    folder.mkdir()
    patients = [b.patient(pid=f"p{i}", birth=f"19{50 + i}-01-01") for i in range(7)]
    her2_negative = b.her2_ihc(valueCodeableConcept=b.concept(b.coding(b.SNOMED, "260385009", "Negative")))
    observations = [dict(o, id=f"{o['id']}-{i}", subject={"reference": f"Patient/p{i}"}) for i in range(7)
                    for o in (b.er(b.POSITIVE if i % 2 else b.NEGATIVE), b.pr(b.NEGATIVE), her2_negative)]
    (folder / "Observation.ndjson").write_text("\r\n".join(json.dumps(o) for o in observations) + "\r\n",
                                               encoding="utf-8")
    _write(folder, "Patient.ndjson", patients)
    whole = local.evaluate(folder, tmp_path / "whole.parquet")
    one_by_one = local.evaluate(folder, tmp_path / "one.parquet", batch_rows=1)
    assert whole.evaluated == one_by_one.evaluated == 7
    first, second = (pl.read_parquet(tmp_path / name).drop("row").sort("patient_id")
                     for name in ("whole.parquet", "one.parquet"))
    assert first.equals(second)
    assert first["patient_id"].to_list() == [f"p{i}" for i in range(7)]
    # Each patient got its own results: ER+ for odd numbers, ER- for even ones.
    assert first["subtype"].cast(pl.String).to_list() == [
        "hr_positive_her2_negative" if i % 2 else "triple_negative" for i in range(7)]


def test_a_pool_of_processes_maps_the_same_profiles_in_the_same_order(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    _write(folder, "Patient.ndjson", [b.patient(pid=f"p{i}", birth=f"19{40 + i}-01-01") for i in range(9)])
    _write(folder, "Observation.ndjson", [dict(b.er(b.POSITIVE if i % 3 else b.NEGATIVE), id=f"er-{i}",
                                               subject={"reference": f"Patient/p{i}"}) for i in range(9)],
           extra="not json\n")

    def read_all(**options: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        batches = list(bulk.read_bulk(folder, 4, **options))
        records = [r for batch in batches for frame in batch.all_frames() for r in frame.to_dicts()]
        return records, [n for batch in batches for n in batch.notes.to_dicts()]

    alone = read_all(workers=1)
    pooled = read_all(workers=2, task_patients=2)  # 9 patients in batches of 4: 5 tasks on 2 processes
    assert pooled == alone
    assert [r["patient_id"] for r in alone[0]] == [f"p{i}" for i in range(9)]
    assert [r["_row"] for r in alone[0]] == list(range(1, 10))
    bad_line = {"_row": None, "field": "Observation.ndjson", "message": "line 10 is not JSON: Expecting value"}
    assert alone[1] == [bad_line]


def test_progress_moves_with_the_patients_and_ends_at_the_export_size(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    _write(folder, "Patient.ndjson", [b.patient(pid=f"p{i}") for i in range(10)])
    steps = [batch.size for batch in bulk.read_bulk(folder, 3)]
    assert len(steps) == 4 and all(step > 0 for step in steps)
    assert sum(steps) == (folder / "Patient.ndjson").stat().st_size
