"""Builders for mCODE-shaped test bundles (plain JSON dicts, as an EHR would send them).

Profile URLs are mCODE STU4 unless a test asks for another; codes are written with their
display, as the mCODE IG does. Nothing here imports mbcnav: the bundles are independent input.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FHIR_FIXTURES = SHARED / "fixtures" / "fhir"
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HGNC = "http://www.genenames.org/geneId"
PATIENT_ID = "p1"

_ids = itertools.count(1)


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


POSITIVE = concept(coding(SNOMED, "10828004", "Positive (qualifier value)"))
NEGATIVE = concept(coding(SNOMED, "260385009", "Negative (qualifier value)"))
LA_POSITIVE = concept(coding(LOINC, "LA6576-8", "Positive"))
LA_NEGATIVE = concept(coding(LOINC, "LA6577-6", "Negative"))


def patient(gender: str | None = "female", birth: str | None = "1970-05-01", pid: str = PATIENT_ID) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": pid, "meta": {"profile": [MCODE + "mcode-cancer-patient"]}}
    if gender:
        out["gender"] = gender
    if birth:
        out["birthDate"] = birth
    return out


def observation(code: dict[str, Any], *, date: str | None = "2024-03-02", profile: str = "mcode-tumor-marker-test",
                subject: str = f"Patient/{PATIENT_ID}", status: str = "final", **value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation", "id": f"obs-{next(_ids)}", "meta": {"profile": [MCODE + profile]},
        "status": status, "code": code, "subject": {"reference": subject},
    }
    if date:
        out["effectiveDateTime"] = date
    out.update(value)
    return out


def marker(loinc: str, display: str, *, date: str | None = "2024-03-02", **value: Any) -> dict[str, Any]:
    return observation(concept(coding(LOINC, loinc, display)), date=date, **value)


def er(value: dict[str, Any], date: str | None = "2024-03-02", loinc: str = "85337-4") -> dict[str, Any]:
    return marker(loinc, "Estrogen receptor Ag [Presence] in Breast cancer specimen by Immune stain", date=date,
                  valueCodeableConcept=value)


def pr(value: dict[str, Any], date: str | None = "2024-03-02") -> dict[str, Any]:
    return marker("85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen by Immune stain",
                  date=date, valueCodeableConcept=value)


def her2_ihc(date: str | None = "2024-03-02", **value: Any) -> dict[str, Any]:
    return marker("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", date=date, **value)


def her2_ish(value: dict[str, Any], date: str | None = "2024-03-02") -> dict[str, Any]:
    return marker("85318-4", "ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH", date=date,
                  valueCodeableConcept=value)


def ecog(score: int, date: str = "2024-03-01") -> dict[str, Any]:
    return observation(concept(coding(LOINC, "89247-1", "ECOG Performance Status score")), date=date,
                       profile="mcode-ecog-performance-status", valueInteger=score)


def variant(hgnc: str, symbol: str, *, found: bool = True, source: str | None = "somatic",
            significance: dict[str, Any] | None = None, date: str = "2024-02-01") -> dict[str, Any]:
    components: list[dict[str, Any]] = [{
        "code": concept(coding(LOINC, "48018-6", "Gene studied [ID]")),
        "valueCodeableConcept": concept(coding(HGNC, hgnc, symbol)),
    }]
    if source:
        answer = {"germline": ("LA6683-2", "Germline"), "somatic": ("LA6684-0", "Somatic")}[source]
        components.append({"code": concept(coding(LOINC, "48002-0", "Genomic source class [Type]")),
                           "valueCodeableConcept": concept(coding(LOINC, *answer))})
    if significance:
        components.append({"code": concept(coding(LOINC, "53037-8", "Genetic variation clinical significance [Imp]")),
                           "valueCodeableConcept": significance})
    value = ("LA9633-4", "Present") if found else ("LA9634-2", "Absent")
    return observation(concept(coding(LOINC, "69548-6", "Genetic variant assessment")), date=date,
                       profile="mcode-genomic-variant", valueCodeableConcept=concept(coding(LOINC, *value)),
                       component=components)


def secondary(code: str | None, display: str, *, onset: str | None = "2023-06-01",
              body_site: dict[str, Any] | None = None, profile: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition", "id": f"cond-{next(_ids)}",
        "code": concept(coding(SNOMED, code, display)) if code else concept(text=display),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "clinicalStatus": concept(coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")),
    }
    if profile:
        out["meta"] = {"profile": [MCODE + "mcode-secondary-cancer-condition"]}
    if onset:
        out["onsetDateTime"] = onset
    if body_site:
        out["bodySite"] = [body_site]
    return out


def stage_group(stage: str, date: str = "2023-06-01", loinc: str = "21908-9") -> dict[str, Any]:
    return observation(concept(coding(LOINC, loinc, "Stage group.clinical Cancer")), date=date,
                       profile="mcode-tnm-stage-group",
                       valueCodeableConcept=concept(coding("http://cancerstaging.org", stage)))


def medication(kind: str, rx: str | None, display: str, *, start: str | None, end: str | None = None,
               status: str = "completed", **extra: Any) -> dict[str, Any]:
    med = concept(coding(RXNORM, rx, display)) if rx else concept(text=display)
    out: dict[str, Any] = {"resourceType": kind, "id": f"med-{next(_ids)}", "status": status,
                           "subject": {"reference": f"Patient/{PATIENT_ID}"}, "medicationCodeableConcept": med}
    if kind == "MedicationRequest":
        out["intent"] = extra.pop("intent", "order")
        if start:
            out["authoredOn"] = start
        if end:
            out["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": start, "end": end}}}}]
    elif start and end:
        out["effectivePeriod"] = {"start": start, "end": end}
    elif start:
        out["effectiveDateTime"] = start
    out.update(extra)
    return out


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"urn:uuid:{r.get('id', i)}", "resource": r} for i, r in enumerate(resources)]}
