"""Every code in fhir/codes/*.yaml is checked against the source it names, in ../shared/fixtures.

Codes whose source is not among the shared fixtures (a public value set read on the web) are
listed here by name, so adding another unverifiable code is a deliberate, reviewed step.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from mbcnav.fhir._codes import codes
from tests.fhir.bundles import FHIR_FIXTURES

CHECKED_ELSEWHERE = {
    ("snomed", "22636003"), ("snomed", "76498008"),                           # MII menopause value set
    ("v3-interpretation", "POS"), ("v3-interpretation", "NEG"), ("v3-interpretation", "IND"),
    ("v3-interpretation", "DET"), ("v3-interpretation", "ND"), ("v3-interpretation", "H"),
    ("v3-interpretation", "L"),                                               # FHIR R4 code system
    ("snomed", "272673000"), ("snomed", "10200004"), ("snomed", "39607008"), ("snomed", "12738006"),
    ("snomed", "59441001"),                                                   # body structures
    ("loinc", "LA9634-2"), ("loinc", "94076-7"), ("loinc", "53037-8"),        # genomics-reporting
    ("hgnc", "HGNC:391"),                                                     # AKT1
}


LISTS = {"mitre-ctm-app-biomarkers": "biomarkers.json", "mitre-ctm-app-metastases": "metastases.json",
         "mitre-ctm-app-ecog": "ecogScores.json", "mitre-ctm-app-qualifiers": "biomarkerQualifiers.json"}


@cache
def text(path: str) -> str:
    return (FHIR_FIXTURES / path).read_text(encoding="utf-8")


@cache
def dictionary_codes() -> set[str]:
    data = json.loads(text("mcode-ig-4.0.0/mCODEDataDictionary-STU4.json"))
    found = {str(e["Code"]) for e in data["valueSetElements"] if e.get("Code")}
    # Intensional value sets name their root concept: "concept is 128462008".
    for element in data["valueSetElements"]:
        found |= set(re.findall(r"concept is (\d+)", element.get("Logical definition", "")))
    return found


@cache
def fsh() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((FHIR_FIXTURES / "mcode-ig-4.0.0").glob("*.fsh")))


@cache
def code_list(name: str) -> dict[str, str]:
    items = json.loads(text(f"mcode-ctm-app/codelists/{name}"))
    out = {}
    for item in items:
        coding = item.get("interpretation", item)
        out[str(coding["code"])] = str(coding["display"])
    return out


def in_source(source: str, code: str) -> bool:
    bare = code.removeprefix("HGNC:")
    if source == "mcode-stu4-dd":
        return code in dictionary_codes()
    if source == "mcode-stu4-fsh":
        return f"#{code}" in fsh() or f"HGNC:{bare}" in fsh() or f"#{bare} " in fsh()
    if source in LISTS:
        return code in code_list(LISTS[source])
    if source == "mitre-ctm-app-bundles":
        return any(f'"{code}"' in text(f"mcode-ctm-app/TrialMatching_Patient0{i}.json") for i in (1, 2))
    if source == "mitre-ctm-service-bundles":
        return any(f'"{code}"' in text(f"mcode-ctm-service/{n}") for n in ("eom_patient_1.json", "patient_data.json"))
    return False


def entries() -> list[tuple[str, str, str]]:
    book = codes()
    out = [(e.system, e.code, e.source) for e in book.observations.values()]
    out += [(e.system, e.code, e.source) for e in book.answers.values()]
    out += [(e.system, e.code, e.source) for e in book.sites.values()]
    out += [(e.system, e.code, e.source) for e in book.site_prefixes]
    out += [(e.system, e.code, e.source) for e in book.conditions.values()]
    out += [("hgnc", e.code, e.source) for e in book.genes.values()]
    return out


@pytest.mark.parametrize(("system", "code", "source"), entries(), ids=lambda v: str(v))
def test_code_is_in_its_named_source(system: str, code: str, source: str) -> None:
    if (system, code) in CHECKED_ELSEWHERE:
        return
    assert in_source(source, code), f"{system} {code} not found in {source}"


def test_rxnorm_codes_match_the_mitre_list_with_the_same_display() -> None:
    listed = code_list("medications.json")
    for code, entry in codes().rxnorm.items():
        assert listed.get(code, "").lower() == entry.display.lower(), code


def test_every_code_names_a_known_source_and_a_display() -> None:
    book = codes()
    for e in [*book.observations.values(), *book.answers.values(), *book.sites.values(), *book.conditions.values()]:
        assert e.display and e.source in book.sources


def test_fixture_breast_drugs_are_all_mapped() -> None:
    """Every breast-tagged ingredient in the MITRE list that the catalogue knows is mapped by code."""
    items: list[dict[str, Any]] = json.loads(text("mcode-ctm-app/codelists/medications.json"))
    mapped = {e.drug for e in codes().rxnorm.values()}
    for drug in ("palbociclib", "ribociclib", "abemaciclib", "fulvestrant", "trastuzumab", "pertuzumab",
                 "alpelisib", "olaparib", "talazoparib", "capecitabine", "eribulin", "tucatinib"):
        assert drug in mapped
    assert any(i["code"] == "1601377" for i in items)
