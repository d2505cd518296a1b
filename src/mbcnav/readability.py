"""Reading grade of patient-facing text (US grade, Flesch-Kincaid), measured with textstat.

Drug, brand and gene names are long words a reader copies from a report rather than decodes,
and Flesch-Kincaid counts their syllables as difficulty. They are replaced by a short word
before measuring, so the score reflects the sentences we wrote, not the names we must use.
"""

from __future__ import annotations

import re
from functools import cache

from mbcnav.vocabulary import catalogue_entries

GRADE_LIMIT = 8.0

# Terms a patient meets on their own reports; measured as one short word.
_TERMS = (
    "HER2-ultralow", "HER2-low", "HER2-positive", "HER2-negative", "HER2", "ER-positive", "ER-negative",
    "ER-low", "PR-positive", "PR-negative", "PIK3CA", "AKT1", "PTEN", "ESR1", "BRCA1", "BRCA2", "BRCA",
    "PALB2", "PD-L1", "MSI-high", "MSI-H", "TMB", "NTRK", "CDK4/6", "mTOR", "PARP", "DPYD", "UGT1A1",
    "ctDNA", "ECG", "QT", "LVEF", "ECOG", "GnRH", "IV", "CT", "MRI", "PET", "DNA", "IHC", "ISH",
)


@cache
def _pattern() -> re.Pattern[str]:
    words: set[str] = set(_TERMS)
    for entry in catalogue_entries():
        words.add(entry["id"].replace("_", " "))
        words.update(entry.get("brands", []))
        words.update(entry.get("aliases", []))
        if entry.get("name"):
            words.add(entry["name"])
    ordered = sorted(words, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in ordered) + r")(?![\w-])", re.I)


def masked(text: str) -> str:
    return _pattern().sub("drug", text)


def grade(text: str) -> float:
    """US school grade of a text with names masked (textstat Flesch-Kincaid)."""
    import textstat  # dev dependency: used by tests and `mbcnav kb lint`

    return float(textstat.flesch_kincaid_grade(masked(text)))
