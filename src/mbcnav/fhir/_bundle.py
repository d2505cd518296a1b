"""A FHIR bundle -> validated resources of the one patient it describes.

mCODE is FHIR R4 (4.0.1); fhir.resources ships R4B (4.3.0), which is the same for every
resource read here (docs/decisions/0004). Tolerance for real data: the Bundle envelope is read
as plain JSON (its id or entry.request may be invalid without harming the content), and each
entry is validated on its own, so one broken resource is reported and the rest are still read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from mbcnav.fhir._collect import Collector
from mbcnav.fhir._values import reference_id

READ = ("Patient", "Observation", "Condition", "MedicationRequest", "MedicationAdministration",
        "MedicationStatement", "Medication")
SECTION = {"Patient": "Patient", "Observation": "Observation", "Condition": "Condition",
           "MedicationRequest": "Medication", "MedicationAdministration": "Medication",
           "MedicationStatement": "Medication", "Medication": "Medication"}
NOT_GIVEN = {"entered-in-error"}


@dataclass(frozen=True)
class Resource:
    ref: str                 # "Observation/er-1", or "Observation#4" (entry position) without an id
    type: str
    model: Any               # the fhir.resources R4B model
    full_url: str | None
    profiles: tuple[str, ...]


@dataclass
class Parsed:
    patient: Resource | None
    resources: list[Resource]
    by_key: dict[str, Resource]      # "Medication/x", fullUrl, "#contained" -> resource


def _problem(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        where = ".".join(str(x) for x in e["loc"]) or "resource"
        message = str(e["msg"]).removeprefix("Value error, ")
        if "Any of one field value is expected" in message:
            message = "more than one value[x] element is present; FHIR allows exactly one"
        parts.append(f"{where}: {message[:160]}")
    more = len(err.errors()) - 3
    return "not valid FHIR R4: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse(bundle: Any, col: Collector) -> Parsed:
    """Validate the entries that matter and pick the patient; report everything else."""
    parsed = Parsed(None, [], {})
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        col.unreadable("Bundle", "Bundle", "not a FHIR Bundle (a JSON object with resourceType 'Bundle')")
        return parsed
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        col.unreadable("Bundle", "Bundle", "the bundle has no entries")
        return parsed
    skipped: Counter[str] = Counter()
    seen: dict[str, Mapping[str, Any]] = {}
    for position, entry in enumerate(entries):
        raw = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(raw, Mapping):
            col.unreadable("Bundle", f"entry[{position}]", "entry has no resource")
            continue
        kind = raw.get("resourceType")
        if kind not in READ:
            skipped[str(kind)] += 1
            continue
        ref = f"{kind}/{raw['id']}" if isinstance(raw.get("id"), str) else f"{kind}#{position}"
        if ref in seen:
            # The same resource twice (seen in real exports) is read once; two different contents
            # under one id cannot both be trusted, so the second is reported.
            if seen[ref] == raw:
                col.note(f"{ref} appears more than once in the bundle; read once.")
            else:
                col.unreadable(SECTION[str(kind)], f"{ref} (entry {position})", "a different resource with the same "
                               "id was already read; this copy is not used")
            continue
        seen[ref] = raw
        try:
            model = get_fhir_model_class(str(kind)).model_validate(dict(raw))
        except ValidationError as err:
            col.unreadable(SECTION[str(kind)], ref, _problem(err))
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        meta = getattr(model, "meta", None)
        profiles = tuple(str(p) for p in (meta.profile or [])) if meta is not None else ()
        resource = Resource(ref, str(kind), model, full_url, profiles)
        parsed.resources.append(resource)
        for key in (ref, full_url):
            if key:
                parsed.by_key[key] = resource
    for kind, count in sorted(skipped.items()):
        col.ignored("Other", f"{kind} x{count}", "not used by mbcnav")
    _choose_patient(parsed, col)
    return parsed


def _choose_patient(parsed: Parsed, col: Collector) -> None:
    patients = [r for r in parsed.resources if r.type == "Patient"]
    ids = {r.model.id for r in patients}
    if not patients:
        col.missing("Patient", "sex", "the bundle has no readable Patient resource")
    elif len(ids) > 1:
        for r in patients:
            col.unreadable("Patient", r.ref, f"the bundle describes {len(ids)} patients; mbcnav reads one "
                           "patient per bundle, so none was used")
    else:
        parsed.patient = patients[0]
    keep: list[Resource] = []
    for r in parsed.resources:
        if r.type == "Patient":
            continue
        subject = _subject(r)
        if subject is not None and parsed.patient is not None and not _same_patient(subject, parsed.patient):
            col.ignored(SECTION[r.type], r.ref, f"refers to another patient ({subject})")
            continue
        if subject is not None and parsed.patient is None and len(ids) > 1:
            continue
        keep.append(r)
    parsed.resources = keep


def _subject(r: Resource) -> str | None:
    holder = getattr(r.model, "subject", None) or getattr(r.model, "patient", None)
    return str(holder.reference) if holder is not None and holder.reference else None


def _same_patient(reference: str, patient: Resource) -> bool:
    keys = {patient.ref, patient.full_url, str(patient.model.id)}
    return reference in keys or reference_id(reference) == patient.model.id


def legacy_profiles(parsed: Parsed, col: Collector) -> None:
    """Mention older mCODE profile URLs once: the resources are still read by their codes."""
    seen: set[str] = set()
    for r in parsed.resources + ([parsed.patient] if parsed.patient else []):
        for url in r.profiles:
            found = col.book.profile(url)
            if found and found[1].legacy and found[0] not in seen:
                seen.add(found[0])
                col.note(f"Older mCODE profile URL {found[0]} (now {found[1].now}) is used; resources are "
                         "read by their codes, so this does not change the result.")
