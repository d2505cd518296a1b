"""Lookup tables the set-wise derivation uses: sites, conditions and drug names as bits.

Searching prior-drug lists inside every rule costs 6-25x in every engine, so lists are reduced
once per patient to bit masks and every rule reads plain columns. Masks are 62-bit words, so the
scheme holds however many names a batch has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mbcnav.engine import qt_medications
from mbcnav.knowledge.loader import Knowledge
from mbcnav.profile import CONDITIONS, SITES
from mbcnav.vocabulary import key

WORD_BITS = 62
# Classes facts.py reads per history entry (line counts, endocrine sensitivity, relapse timing).
ENTRY_CLASSES = ("endocrine", "chemotherapy", "anti_her2", "immunotherapy")


SITE_BITS = {site: 1 << i for i, site in enumerate(SITES)}
CONDITION_BITS = {name: 1 << i for i, name in enumerate(CONDITIONS)}
CONDITION_COLUMNS = {
    "diabetes": "cond_diabetes", "interstitial_lung_disease": "cond_ild", "heart_failure": "cond_heart_failure",
    "long_qt": "cond_long_qt", "liver_impairment": "cond_liver_impairment", "neuropathy": "cond_neuropathy",
    "pregnancy": "pregnant",
}


def qt_names(kb: Knowledge, names: Iterable[str]) -> list[str]:
    """Typed medicine names (as found in a batch) that match a QT-prolonging medicine."""
    members = qt_medications(kb)
    return sorted(n for n in names if kb.medication_names.get(key(n)) in members)


@dataclass(frozen=True)
class NameBits:
    """The drug names found in one batch, each given a bit, so a list of names becomes a mask.

    Names are cast to an Enum of this batch's names (a dictionary lookup per value, no Python)
    and bit = 2**code, so a list's mask is the sum over its distinct codes. What a name means
    (its generic ids, through brand names) is folded into the masks of `having`, not into the data.
    """

    names: tuple[str, ...]
    ids: dict[str, tuple[str, ...]]       # name -> generic ids

    @property
    def words(self) -> int:
        return max(1, (len(self.names) + WORD_BITS - 1) // WORD_BITS)

    def having(self, test: Callable[[tuple[str, ...]], bool]) -> tuple[int, ...]:
        """Mask words of the names whose generic ids pass `test`."""
        out = [0] * self.words
        for i, name in enumerate(self.names):
            if test(self.ids.get(name, ())):
                out[i // WORD_BITS] |= 1 << (i % WORD_BITS)
        return tuple(out)


def name_bits(names: Iterable[str], known: dict[str, tuple[str, ...]]) -> NameBits:
    kept = tuple(sorted({n for n in names if n in known}))
    return NameBits(kept, {n: known[n] for n in kept})
