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
import multiprocessing
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from mbcnav.cohort.read import NDJSON_SUFFIXES, Batch, InputError, _json_lines, no_problems, problems


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


Task = list[tuple[int, str, "array[int]"]]          # (row, patient id, places of its resources)
Mapped = tuple[list[str], list[tuple[int, str, str]]]  # profiles as JSON; (row, resource, message) notes
TASK_PATIENTS = 200  # patients per task: a few tenths of a second of mapping each


def read_bulk(path: Path, batch_rows: int, workers: int = 1, task_patients: int = TASK_PATIENTS) -> Iterator[Batch]:
    """Patients in batches of `batch_rows`, each read back from its lines' offsets.

    A Bulk Data export can be far larger than memory, so the first pass keeps only where each
    patient's resources are (file and byte offset, one int64 each); resources that belong to no
    patient (Medication, Organization, ...) are referenced data and are kept. The second pass
    maps one batch of patients at a time. The mCODE import is Python, about 3 ms a patient: with
    `workers` > 1 the patients of a batch are split into tasks for that many spawned processes
    (the caller's script needs the usual `__main__` guard); otherwise they are mapped here.
    """
    try:
        import mbcnav.fhir.mcode  # noqa: F401  (the FHIR extra is part of the default install; say so if missing)
    except ImportError as err:
        raise InputError(f"{path}: FHIR import is not available ({err})") from None
    files = sorted(p for p in path.iterdir() if p.suffix in NDJSON_SUFFIXES)
    where, shared, bad = _index(files)
    size = sum(f.stat().st_size for f in files)
    found = pl.concat(bad) if bad else no_problems()
    patients = [(row, patient, places) for row, (patient, places) in enumerate(where.items(), 1)]
    pool = None
    if workers > 1 and len(patients) > task_patients:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(files, shared))
    else:
        _start(files, shared)
    try:
        for start in range(0, len(patients), max(1, batch_rows)):
            part = patients[start:start + batch_rows]
            tasks = [part[i:i + task_patients] for i in range(0, len(part), task_patients)]
            mapped = pool.map(_map, tasks) if pool else map(_map, tasks)
            records: list[str] = []
            notes = [found]
            for profiles, unread in mapped:
                records += profiles
                # A resource the import cannot read is left out of the profile: say so, beside the patient.
                notes += [problems([row], resource, message) for row, resource, message in unread]
            rows = np.arange(start + 1, start + 1 + len(records), dtype=np.uint64)
            batch = _json_lines(rows, [r.encode() for r in records], 0)
            # Progress is in bytes of the export: each batch stands for its share of the patients.
            done = size * (start + len(part)) // len(patients) - size * start // len(patients)
            yield Batch(batch.frames, batch.problems, done, notes=pl.concat(notes))
            found = no_problems()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        _stop()
    if not patients:
        yield Batch([], no_problems(), size, notes=found)


# One process's view of the export while mapping (set by _start, in the pool's workers too).
_files: list[BinaryIO] = []
_shared: dict[str, dict[str, Any]] = {}


def _start(files: list[Path], shared: dict[str, dict[str, Any]]) -> None:
    _stop()
    _files.extend(file.open("rb") for file in files)
    _shared.update(shared)


def _stop() -> None:
    for handle in _files:
        handle.close()
    _files.clear()
    _shared.clear()


def _map(task: Task) -> Mapped:
    """A task's patients -> their profiles (JSON text) and the resources the import left out."""
    from mbcnav.fhir.mcode import import_bundle

    profiles: list[str] = []
    unread: list[tuple[int, str, str]] = []
    for row, patient_id, places in task:
        resources = []
        for place in places:
            resource, repeated = _resource(_line(_files, place))
            if repeated is None:
                resources.append(resource)
            else:   # which value was meant is unknown: the resource is left out, as unreadable ones are
                label = f"{resource.get('resourceType')}/{resource.get('id')}"
                unread.append((row, label, f"{label}: the key '{repeated}' is repeated; left out"))
        referenced = {r for res in resources for r in _references(res)}
        entries = resources + [_shared[r] for r in sorted(referenced) if r in _shared]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]}
        report = import_bundle(bundle)
        profiles.append(json.dumps({"patient_id": patient_id, **report.profile}))
        unread += [(row, item.resource, f"{item.resource}: {item.reason}; left out")
                   for section in report.sections.values() for item in section.unreadable]
    return profiles, unread


def _resource(line: bytes) -> tuple[dict[str, Any], str | None]:
    """A resource's line parsed, and a key one of its objects repeats (None: none). `json.loads`
    alone keeps a repeated key's last value without a word."""
    repeated: list[str] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs) and not repeated:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    repeated.append(key)
                    break
                seen.add(key)
        return found

    resource: dict[str, Any] = json.loads(line, object_pairs_hook=unique)
    return resource, repeated[0] if repeated else None


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
