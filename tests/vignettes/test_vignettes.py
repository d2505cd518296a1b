"""End-to-end clinical vignettes (vignettes.yaml): the independent check of the rules.

Each vignette is a contract profile plus what the clinical reference says must (or must not) come
back. "Offered" follows the contract: a drug in any `drugs` component of `options` or
`local_and_supportive`. Phesgo counts as trastuzumab + pertuzumab; goserelin, leuprolide,
triptorelin and oophorectomy count as ovarian suppression (contract treatment-names.yaml).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

import mbcnav
from mbcnav.profile import parse_profile
from mbcnav.vocabulary import NON_DRUG, normalise_drug

VIGNETTES_FILE = Path(__file__).with_name("vignettes.yaml")
VIGNETTES: list[dict[str, Any]] = yaml.safe_load(VIGNETTES_FILE.read_text(encoding="utf-8"))

REQUIRED = {"name", "source", "profile"}
DRUG_LIST_FIELDS = ("offered", "offered_alone", "not_offered", "not_recommended_drugs", "local_include")
OPTIONAL = {*DRUG_LIST_FIELDS, "subtype", "her2_category", "offered_together", "tests_include", "warnings_nonempty"}

OVARIAN_SUPPRESSION = frozenset({"ovarian_suppression", "goserelin", "leuprolide", "triptorelin", "oophorectomy"})
GNRH_AGONISTS = frozenset({"goserelin", "leuprolide", "triptorelin"})
COUNTS_AS: dict[str, frozenset[str]] = {
    "pertuzumab_trastuzumab_hyaluronidase": frozenset({"pertuzumab", "trastuzumab"}),
    **{d: frozenset({"ovarian_suppression"}) for d in OVARIAN_SUPPRESSION},
}
AROMATASE_INHIBITORS = frozenset({"anastrozole", "letrozole", "exemestane"})
NEEDS_OFS_IN_WOMEN = AROMATASE_INHIBITORS | {"palbociclib", "ribociclib", "abemaciclib", "fulvestrant"}

Component = frozenset[str]


def expand(drugs: Iterable[str]) -> Component:
    """A component's drugs plus what they count as (Phesgo, named ovarian suppression)."""
    out: set[str] = set()
    for drug in drugs:
        out.add(drug)
        out |= COUNTS_AS.get(drug, frozenset())
    return frozenset(out)


def components(entry: dict[str, Any]) -> list[Component]:
    return [expand(component) for component in entry.get("drugs") or []]


def offered_drugs(rec: dict[str, Any]) -> set[str]:
    return {d for e in rec["options"] + rec["local_and_supportive"] for c in components(e) for d in c}


def together(entry: dict[str, Any], a: str, b: str) -> bool:
    """a and b are given together: in different components, or one fixed-dose drug counting as both."""
    comps = components(entry)
    if any(a in ci and b in cj for i, ci in enumerate(comps) for j, cj in enumerate(comps) if i != j):
        return True
    return any(COUNTS_AS.get(d, frozenset()) >= {a, b} for c in entry.get("drugs") or [] for d in c)


def alone(entry: dict[str, Any], drug: str) -> bool:
    """Monotherapy: one component (ovarian suppression / GnRH components aside) and it holds the drug."""
    core = [c for c in components(entry) if not c <= OVARIAN_SUPPRESSION]
    return len(core) == 1 and drug in core[0]


def describe(rec: dict[str, Any]) -> str:
    lines = [f"  option {e['id']}: {e.get('drugs')}" for e in rec["options"]]
    lines += [f"  local {e['id']}: {e.get('drugs')}" for e in rec["local_and_supportive"]]
    lines += [f"  not_recommended {e['id']}: {e.get('drugs')}" for e in rec["not_recommended"]]
    lines.append(f"  tests: {[t.get('id') for t in rec['tests_to_consider']]}")
    lines.append(f"  subtype={rec['subtype']} her2_category={rec['her2_category']} warnings={len(rec['warnings'])}")
    return "\n" + "\n".join(lines)


def needs_ovarian_suppression(profile: dict[str, Any]) -> bool:
    """Pre/perimenopausal, or status unknown under 60 (cannot be assumed postmenopausal), and not suppressed."""
    if profile.get("sex") != "female" or profile.get("ovarian_function_suppressed"):
        return False
    status = profile.get("menopausal_status") or "unknown"
    age = profile.get("age")
    return status in ("pre", "peri") or (status == "unknown" and (age is None or age < 60))


def companion_problems(profile: dict[str, Any], rec: dict[str, Any]) -> list[str]:
    """DESIGN.md: AI/CDK4/6i/fulvestrant in women needing OFS, and AIs in men, come with suppression."""
    problems: list[str] = []
    for entry in rec["options"]:
        comps = components(entry)
        drugs = set().union(*comps) if comps else set()
        with_ofs = any(c & OVARIAN_SUPPRESSION and not c & NEEDS_OFS_IN_WOMEN for c in comps)
        if needs_ovarian_suppression(profile) and drugs & NEEDS_OFS_IN_WOMEN and not with_ofs:
            problems.append(f"{entry['id']} lacks ovarian suppression: {entry.get('drugs')}")
        with_gnrh = any(c & GNRH_AGONISTS and not c & AROMATASE_INHIBITORS for c in comps)
        if profile.get("sex") == "male" and drugs & AROMATASE_INHIBITORS and not with_gnrh:
            problems.append(f"{entry['id']} gives a man an AI without a GnRH agonist: {entry.get('drugs')}")
    return problems


def test_vignette_file_is_well_formed() -> None:
    assert len(VIGNETTES) >= 60, f"only {len(VIGNETTES)} vignettes"
    names = [v["name"] for v in VIGNETTES]
    assert len(names) == len(set(names)), f"duplicate names: {sorted({n for n in names if names.count(n) > 1})}"
    known_tests = {
        t["id"]
        for t in yaml.safe_load(
            (resources.files("mbcnav") / "knowledge" / "data" / "tests.yaml").read_text(encoding="utf-8")
        )
    }
    for v in VIGNETTES:
        where = v.get("name", "?")
        assert v.keys() >= REQUIRED, f"{where}: missing {REQUIRED - v.keys()}"
        assert not v.keys() - REQUIRED - OPTIONAL, f"{where}: unknown fields {v.keys() - REQUIRED - OPTIONAL}"
        parse_profile(v["profile"])
        drugs = [d for f in DRUG_LIST_FIELDS for d in v.get(f, [])]
        drugs += [d for pair in v.get("offered_together", []) for d in pair]
        assert all(len(pair) == 2 for pair in v.get("offered_together", [])), f"{where}: pairs only"
        for drug in drugs:
            assert drug in NON_DRUG or normalise_drug(drug) == (drug,), f"{where}: {drug!r} is not a canonical id"
        assert not set(v.get("tests_include", [])) - known_tests, f"{where}: unknown test ids"


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["name"] for v in VIGNETTES])
def test_vignette(vignette: dict[str, Any]) -> None:
    rec = mbcnav.recommend(vignette["profile"])
    seen = describe(rec)
    offered = offered_drugs(rec)
    failures: list[str] = []

    for field in ("subtype", "her2_category"):
        if field in vignette and rec[field] != vignette[field]:
            failures.append(f"{field}: expected {vignette[field]!r}, got {rec[field]!r}")
    if missing := [d for d in vignette.get("offered", []) if d not in offered]:
        failures.append(f"not offered but should be: {missing}")
    for a, b in vignette.get("offered_together", []):
        if not any(together(e, a, b) for e in rec["options"] + rec["local_and_supportive"]):
            failures.append(f"{a} and {b} are not offered together in one option")
    for drug in vignette.get("offered_alone", []):
        if not any(alone(e, drug) for e in rec["options"]):
            failures.append(f"{drug} is not offered on its own (as monotherapy)")
    if wrong := [d for d in vignette.get("not_offered", []) if d in offered]:
        failures.append(f"offered but must not be: {wrong}")
    not_recommended = {d for e in rec["not_recommended"] for c in components(e) for d in c}
    if missing := [d for d in vignette.get("not_recommended_drugs", []) if d not in not_recommended]:
        failures.append(f"missing from not_recommended: {missing}")
    tests = {t.get("id") for t in rec["tests_to_consider"]}
    if missing := [t for t in vignette.get("tests_include", []) if t not in tests]:
        failures.append(f"missing from tests_to_consider: {missing}")
    local = {d for e in rec["local_and_supportive"] for c in components(e) for d in c}
    if missing := [d for d in vignette.get("local_include", []) if d not in local]:
        failures.append(f"missing from local_and_supportive: {missing}")
    if vignette.get("warnings_nonempty") and not rec["warnings"]:
        failures.append("warnings are empty")
    failures += companion_problems(vignette["profile"], rec)

    assert not failures, f"{vignette['name']} ({vignette['source']}):\n- " + "\n- ".join(failures) + seen
