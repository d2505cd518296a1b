"""The code lists in ``fhir/codes/*.yaml``, loaded once and checked.

Codes are data: each carries its display text and the source it was checked against, so a
reviewer can audit them without reading Python. Loading fails loudly on an unknown key, an
unknown code system or a source id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mbcnav.profile import SITES


class CodesError(ValueError):
    """A code file is inconsistent; the message names the file and the entry."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservationCode(_Entry):
    system: str
    code: str
    display: str
    reads: Literal[
        "er", "pr", "her2_ihc", "her2_ish", "her2_overall", "pdl1", "msi", "tmb", "ecog", "karnofsky",
        "variant", "gene_test", "stage_group", "m_category", "gene_studied", "source_class",
        "clinical_significance",
    ]
    kind: Literal["qualitative", "percent", "score", "ratio", "copies", "number", "tps", "other_clone"]
    gene: str | None = None
    source: str


class Answer(_Entry):
    system: str
    code: str
    display: str
    means: str
    source: str


class Gene(_Entry):
    code: str
    symbol: Literal["PIK3CA", "ESR1", "AKT1", "PTEN", "BRCA1", "BRCA2", "PALB2"]
    display: str
    source: str


class SiteCode(_Entry):
    system: str
    code: str
    display: str
    site: str
    prefix: bool = False   # ICD-10-CM: the code and every code below it
    source: str


class ConditionCode(_Entry):
    system: str
    code: str
    display: str
    kind: Literal["secondary", "primary_breast"]
    source: str


class DrugCode(_Entry):
    code: str
    display: str
    drug: str


class Profile(_Entry):
    kind: str
    legacy: bool = False
    now: str | None = None


@dataclass(frozen=True)
class CodeBook:
    systems: dict[str, str]                      # URI -> short name
    observations: dict[tuple[str, str], ObservationCode]
    answers: dict[tuple[str, str], Answer]
    genes: dict[str, Gene]                       # "HGNC:8975" -> gene
    sites: dict[tuple[str, str], SiteCode]
    site_prefixes: tuple[SiteCode, ...]
    conditions: dict[tuple[str, str], ConditionCode]
    rxnorm: dict[str, DrugCode]
    profile_base: str
    profiles: dict[str, Profile]
    sources: dict[str, str]

    def system(self, uri: str | None) -> str | None:
        """Short name of a code system URI, or None when unknown."""
        if uri is None:
            return None
        return self.systems.get(uri.rstrip("/"))

    def site(self, system: str, code: str) -> SiteCode | None:
        found = self.sites.get((system, code))
        if found is not None:
            return found
        for entry in self.site_prefixes:
            if entry.system == system and code.startswith(entry.code):
                return entry
        return None

    def profile(self, url: str) -> tuple[str, Profile] | None:
        name = url.split("|", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if not url.startswith(self.profile_base):
            return None
        found = self.profiles.get(name)
        return (name, found) if found else None


def _read(name: str) -> Any:
    item = resources.files("mbcnav") / "fhir" / "codes" / name
    return yaml.safe_load(item.read_text(encoding="utf-8"))


def _models(name: str, model: type[Any], data: Any) -> list[Any]:
    out = []
    for i, raw in enumerate(data):
        try:
            out.append(model.model_validate(raw))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise CodesError(f"codes/{name}[{i}]: {problems}") from None
    return out


def _keyed(name: str, entries: list[Any], systems: set[str]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for entry in entries:
        if entry.system not in systems:
            raise CodesError(f"codes/{name}: {entry.code}: unknown system {entry.system!r}")
        key = (entry.system, entry.code)
        if key in out:
            raise CodesError(f"codes/{name}: duplicate code {entry.system}|{entry.code}")
        out[key] = entry
    return out


@cache
def codes() -> CodeBook:
    """Every code list, loaded and cross-checked once per process."""
    systems_raw: dict[str, list[str]] = _read("systems.yaml")
    systems = {uri.rstrip("/"): short for short, uris in systems_raw.items() for uri in uris}
    names = set(systems_raw)
    sources = {s["id"]: s["citation"] for s in _read("sources.yaml")}
    def keyed(name: str, model: type[Any]) -> dict[tuple[str, str], Any]:
        return _keyed(name, _models(name, model, _read(name)), names)

    observations = keyed("observations.yaml", ObservationCode)
    answers = keyed("answers.yaml", Answer)
    site_list: list[SiteCode] = _models("sites.yaml", SiteCode, _read("sites.yaml"))
    conditions = keyed("conditions.yaml", ConditionCode)
    genes = {g.code: g for g in _models("genes.yaml", Gene, _read("genes.yaml"))}
    rx = _read("rxnorm.yaml")
    drugs = _models("rxnorm.yaml", DrugCode, rx["codes"])
    prof = _read("profiles.yaml")
    book = CodeBook(
        systems=systems,
        observations=observations,
        answers=answers,
        genes=genes,
        sites=_keyed("sites.yaml", [s for s in site_list if not s.prefix], names),
        site_prefixes=tuple(s for s in site_list if s.prefix),
        conditions=conditions,
        rxnorm={d.code: d for d in drugs},
        profile_base=prof["base"],
        profiles={k: Profile.model_validate(v) for k, v in prof["profiles"].items()},
        sources=sources,
    )
    _check(book, rx["source"], site_list)
    return book


def _check(book: CodeBook, rx_source: str, site_list: list[SiteCode]) -> None:
    cited: list[str] = [
        *(e.source for e in book.observations.values()), *(e.source for e in book.answers.values()),
        *(e.source for e in book.genes.values()), *(e.source for e in site_list),
        *(e.source for e in book.conditions.values()),
    ]
    for source in [*cited, rx_source]:
        if source not in book.sources:
            raise CodesError(f"codes: unknown source id {source!r} (see codes/sources.yaml)")
    for entry in site_list:
        if entry.site not in SITES:
            raise CodesError(f"codes/sites.yaml: {entry.code}: {entry.site!r} is not a contract site")
    from mbcnav.vocabulary import catalogue_entries

    known = {e["id"] for e in catalogue_entries()}
    for drug in book.rxnorm.values():
        if drug.drug not in known:
            raise CodesError(f"codes/rxnorm.yaml: {drug.code}: {drug.drug!r} is not in the drug catalogue")
