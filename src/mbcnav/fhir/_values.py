"""Small readers for FHIR values: dates with their precision, codings, text and quantities.

Everything here is read-only and total: a value that cannot be read becomes ``None`` and the
caller says why in the report. Nothing is guessed.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mbcnav.fhir._codes import CodeBook

SYSTEM_LABELS = {"loinc": "LOINC", "snomed": "SNOMED CT", "rxnorm": "RxNorm", "icd10cm": "ICD-10-CM",
                 "hgnc": "HGNC", "v3-interpretation": "v3 interpretation", "ajcc": "AJCC"}


@dataclass(frozen=True)
class Moment:
    """A date as recorded: '2024-03' covers the whole month, so it is not newer than '2024-03-15'."""

    start: dt.date
    end: dt.date
    text: str

    def before(self, other: Moment) -> bool:
        """True only when this moment is wholly before the other one."""
        return self.end < other.start


def moment(value: object) -> Moment | None:
    """A FHIR date/dateTime (parsed or text) as a Moment; None when absent or unreadable."""
    if isinstance(value, dt.datetime):
        date = value.date()
        return Moment(date, date, date.isoformat())
    if isinstance(value, dt.date):
        return Moment(value, value, value.isoformat())
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?:T.*)?", value.strip())
        if not match:
            return None
        year = int(match.group(1))
        month = int(match.group(2)) if match.group(2) else None
        day = int(match.group(3)) if match.group(3) else None
        try:
            if month is None:
                return Moment(dt.date(year, 1, 1), dt.date(year, 12, 31), f"{year}")
            if day is None:
                last = calendar.monthrange(year, month)[1]
                return Moment(dt.date(year, month, 1), dt.date(year, month, last), f"{year}-{month:02d}")
            return Moment(dt.date(year, month, day), dt.date(year, month, day), f"{year}-{month:02d}-{day:02d}")
        except ValueError:
            return None
    return None


def first_moment(*values: object) -> Moment | None:
    for value in values:
        found = moment(value)
        if found is not None:
            return found
    return None


def months_between(start: dt.date, end: dt.date) -> float:
    """Whole-ish months between two dates, one decimal (the contract's months fields)."""
    return round(max((end - start).days, 0) / 30.4375, 1)


@dataclass(frozen=True)
class Coded:
    system: str | None      # short name (codes/systems.yaml) or None when unknown
    uri: str | None         # as written
    code: str | None
    display: str | None

    def label(self) -> str:
        system = SYSTEM_LABELS.get(self.system or "", self.uri or "no system")
        text = f" {self.display}" if self.display else ""
        return f"{system} {self.code or '(no code)'}{text}"


def codings(book: CodeBook, concept: Any) -> list[Coded]:
    """The codings of a CodeableConcept (fhir.resources model or None)."""
    if concept is None:
        return []
    out = []
    for coding in concept.coding or []:
        code = None if coding.code is None else str(coding.code).strip()
        out.append(Coded(book.system(coding.system), coding.system, code, coding.display))
    return out


def concept_text(concept: Any) -> str:
    """The human text of a CodeableConcept: its text, else its displays."""
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    return "; ".join(str(c.display) for c in concept.coding or [] if c.display)


def describe(book: CodeBook, concept: Any) -> str:
    found = codings(book, concept)
    if found:
        return ", ".join(c.label() for c in found)
    text = concept_text(concept)
    return f"text {text!r}" if text else "no code and no text"


def lookup(book: CodeBook, concept: Any, table: dict[tuple[str, str], Any]) -> tuple[Any, Coded] | None:
    """The first coding found in a table keyed by (system, code)."""
    for coded in codings(book, concept):
        if coded.system and coded.code:
            entry = table.get((coded.system, coded.code))
            if entry is not None:
                return entry, coded
    return None


def answer_meanings(book: CodeBook, concepts: Iterable[Any]) -> list[tuple[str, Coded]]:
    """Meanings (answers.yaml) of every listed coding across several CodeableConcepts."""
    out: list[tuple[str, Coded]] = []
    for concept in concepts:
        for coded in codings(book, concept):
            if coded.system and coded.code:
                entry = book.answers.get((coded.system, coded.code))
                if entry is not None:
                    out.append((entry.means, coded))
    return out


def reference_id(ref: str | None) -> str | None:
    """'Patient/abc', 'urn:uuid:abc' or 'http://x/fhir/Patient/abc/_history/2' -> 'abc'."""
    if not ref:
        return None
    text = ref.split("/_history/", 1)[0].rstrip("/")
    if text.startswith("urn:uuid:") or text.startswith("urn:oid:"):
        return text.rsplit(":", 1)[-1]
    return text.rsplit("/", 1)[-1]


WORDS_NEGATIVE = re.compile(r"\b(negative|not detected|absent|none detected|no mutation|wild[- ]?type|neg)\b", re.I)
WORDS_POSITIVE = re.compile(r"\b(positive|detected|present|pos|mutated|mutation)\b", re.I)
WORDS_UNSURE = re.compile(r"\b(equivocal|indeterminate|borderline|pending|not performed|not done|unknown|"
                          r"inconclusive|insufficient|failed|cannot|uninterpretable)\b", re.I)


def text_polarity(text: str) -> str | None:
    """'positive' / 'negative' from plain words; None when unclear, mixed or hedged."""
    if not text or WORDS_UNSURE.search(text):
        return None
    negative = bool(WORDS_NEGATIVE.search(text))
    # "not detected" contains "detected": remove negative phrases before looking for positives.
    positive = bool(WORDS_POSITIVE.search(WORDS_NEGATIVE.sub(" ", text)))
    if negative == positive:
        return None
    return "negative" if negative else "positive"


PERCENT = re.compile(r"(<=|>=|<|>|≤|≥)?\s*(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*%")


def text_percent(text: str) -> tuple[float, str | None] | None:
    """A single percentage written in text ('95% of cells', '<1%'), with its comparator."""
    found = {(float(m[1]), {"≤": "<=", "≥": ">="}.get(m[0], m[0]) or None) for m in PERCENT.findall(text or "")}
    if len(found) != 1:
        return None
    value, comparator = found.pop()
    return (value, comparator) if 0 <= value <= 100 else None
