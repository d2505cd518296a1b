"""Drug names: brand, generic and common abbreviations -> the contract's generic ids.

Built from the drug catalogue (``knowledge/data/drugs/*.yaml``) so that a name is known as soon
as the catalogue knows it. Matching ignores case, spaces, hyphens and trademark signs.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

NON_DRUG = ("radiation", "surgery", "ovarian_suppression", "clinical_trial", "palliative_care")


class UnknownDrugError(ValueError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; closest known names: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown drug name {name!r}{hint}")


def key(name: str) -> str:
    """Normalise a typed name for lookup: 'Enhertu®', 'fam-trastuzumab deruxtecan' -> 'enhertu'..."""
    text = name.strip().lower().replace("®", "").replace("™", "")
    text = re.sub(r"[\s\-/,.]+", "_", text)
    return text.strip("_")


def catalogue_entries() -> list[dict[str, Any]]:
    folder = resources.files("mbcnav") / "knowledge" / "data" / "drugs"
    entries: list[dict[str, Any]] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            entries.extend(yaml.safe_load(item.read_text(encoding="utf-8")) or [])
    return entries


@cache
def names() -> dict[str, tuple[str, ...]]:
    """Lookup key -> generic ids (a fixed-dose combination may name several)."""
    table: dict[str, tuple[str, ...]] = {key(n): (n,) for n in NON_DRUG}
    for entry in catalogue_entries():
        ids = (entry["id"],)
        for name in [entry["id"], entry.get("name", ""), *entry.get("brands", []), *entry.get("aliases", [])]:
            if name:
                table.setdefault(key(name), ids)
    return table


@cache
def display_names() -> tuple[str, ...]:
    out: list[str] = list(NON_DRUG)
    for entry in catalogue_entries():
        out.append(entry["id"])
        out.extend(entry.get("brands", []))
    return tuple(out)


def normalise_drug(name: str) -> tuple[str, ...]:
    """Generic ids for a typed drug name; raise UnknownDrugError with suggestions."""
    found = names().get(key(name))
    if found is not None:
        return found
    # "fam-trastuzumab deruxtecan-nxki": drop FDA suffixes and the 'fam-'/'ado-' prefixes people add.
    trimmed = re.sub(r"_[a-z]{4}$", "", key(name))
    for candidate in (trimmed, re.sub(r"^(fam|ado)_", "", trimmed)):
        found = names().get(candidate)
        if found is not None:
            return found
    choices = {key(n): n for n in display_names()}
    close = difflib.get_close_matches(key(name), list(choices), n=3, cutoff=0.6)
    raise UnknownDrugError(name, [choices[c] for c in close])
