"""FHIR Bulk Data input: a directory of NDJSON files (one resource per line, any resource types).

Resources are grouped per patient (by `subject` / `patient` reference), each patient's group
plus the resources it references becomes a Bundle, and the mCODE import
(`mbcnav.fhir.mcode.import_bundle`) turns it into a contract Profile. That mapping is per patient
by nature (it reads codes, dates and units resource by resource), so this reader is a Python loop
over patients; the profiles it yields then go through the same set-wise validation and evaluation
as any other input. Lines that are not JSON resources are reported with their file and line.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from mbcnav.cohort.read import NDJSON_SUFFIXES, Batch, InputError, _json_batch, no_problems, problems
from mbcnav.cohort.schema import ROW


def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for key in ("subject", "patient", "beneficiary"):
        holder = resource.get(key)
        if isinstance(holder, dict) and isinstance(holder.get("reference"), str):
            reference: str = holder["reference"]
            return reference.rsplit("Patient/", 1)[-1] if "Patient/" in reference else None
    return None


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def read_bulk(path: Path, batch_rows: int) -> Iterator[Batch]:
    """Patients in batches of `batch_rows`, each read back from its lines' offsets.

    A Bulk Data export can be far larger than memory, so the first pass keeps only where each
    patient's resources are (file and byte offset, one int64 each); resources that belong to no
    patient (Medication, Organization, ...) are referenced data and are kept. The second pass
    reads one batch of patients at a time.
    """
    try:
        from mbcnav.fhir.mcode import import_bundle
    except ImportError as err:  # the FHIR extra is part of the default install; say so if it is missing
        raise InputError(f"{path}: FHIR import is not available ({err})") from None
    files = sorted(p for p in path.iterdir() if p.suffix in NDJSON_SUFFIXES)
    where, shared, bad = _index(files)
    size = sum(f.stat().st_size for f in files)
    found = pl.concat(bad) if bad else no_problems()
    patients = list(where.items())
    handles = [file.open("rb") for file in files]
    try:
        for start in range(0, len(patients), max(1, batch_rows)):
            records: list[str] = []
            notes = [found]
            for row, (patient_id, places) in enumerate(patients[start:start + batch_rows], start + 1):
                resources = [json.loads(_line(handles, place)) for place in places]
                referenced = {r for res in resources for r in _references(res)}
                entries = resources + [shared[r] for r in sorted(referenced) if r in shared]
                bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]}
                report = import_bundle(bundle)
                records.append(json.dumps({"patient_id": patient_id, **report.profile}))
                # A resource the import cannot read is left out of the profile: say so, beside the patient.
                notes += [problems([row], item.resource, f"{item.resource}: {item.reason}; left out")
                          for section in report.sections.values() for item in section.unreadable]
            lines = pl.DataFrame({
                ROW: pl.int_range(start + 1, start + 1 + len(records), dtype=pl.UInt64, eager=True),
                "record": pl.Series(records, dtype=pl.String),
            })
            batch = _json_batch(lines, 0)
            yield Batch(batch.frames, batch.problems, size if start == 0 else 0, notes=pl.concat(notes))
            found = no_problems()
    finally:
        for handle in handles:
            handle.close()
    if not patients:
        yield Batch([], no_problems(), size, notes=found)


OFFSET_BITS = 40  # a place is file number << 40 | byte offset: files up to 1 TiB, 2**23 files


def _index(files: list[Path]) -> tuple[dict[str, array[int]], dict[str, dict[str, Any]], list[pl.DataFrame]]:
    """Patient -> places of its resources; shared resources by reference; lines that are not resources."""
    where: dict[str, array[int]] = {}
    shared: dict[str, dict[str, Any]] = {}
    bad: list[pl.DataFrame] = []
    for number, file in enumerate(files):
        with file.open("rb") as handle:
            offset = 0
            for line_no, line in enumerate(handle, 1):
                place, offset = number << OFFSET_BITS | offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    resource = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a line, not a patient: no row
                    reason = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
                    bad.append(problems([None], file.name, f"line {line_no} is not JSON: {reason}"))
                    continue
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    bad.append(problems([None], file.name, f"line {line_no} is not a FHIR resource"))
                    continue
                owner = _patient_of(resource)
                if owner is None:
                    shared[f"{resource['resourceType']}/{resource.get('id')}"] = resource
                else:
                    where.setdefault(owner, array("q")).append(place)
    return where, shared, bad


def _line(handles: Sequence[BinaryIO], place: int) -> bytes:
    handle = handles[place >> OFFSET_BITS]
    handle.seek(place & ((1 << OFFSET_BITS) - 1))
    return handle.readline()
