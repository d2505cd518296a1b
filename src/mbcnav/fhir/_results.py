"""One Observation's result, read as what it says: coded answer, text, number or percentage.

Each reader returns (value, how it was read) or raises Unclear with the reason. Thresholds are
the published ones (ASCO/CAP 2020 ER/PR: ER 1-10 % is ER-low; PR >= 1 % is positive), and a
bound that straddles a threshold ('>= 10 %') is not read as either side.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from mbcnav.fhir._codes import CodeBook
from mbcnav.fhir._values import answer_meanings, concept_text, describe, text_percent, text_polarity


class Unclear(ValueError):
    """The result cannot be read without guessing; the message says why."""


def value_kinds(obs: Any) -> list[str]:
    return [name for name in ("valueCodeableConcept", "valueQuantity", "valueString", "valueInteger",
                              "valueBoolean", "valueRatio", "valueRange")
            if getattr(obs, name, None) is not None]


def result_text(obs: Any) -> str:
    """Every human-readable piece of the result: coded text and displays, strings, notes."""
    parts = []
    if obs.valueCodeableConcept is not None:
        parts.append(concept_text(obs.valueCodeableConcept))
    if obs.valueString:
        parts.append(str(obs.valueString))
    return " ".join(p for p in parts if p)


def absent_reason(book: CodeBook, obs: Any) -> str | None:
    if obs.dataAbsentReason is not None and not value_kinds(obs):
        return f"no result ({describe(book, obs.dataAbsentReason)})"
    if not value_kinds(obs) and not obs.interpretation and not obs.component:
        return "the Observation has no value"
    return None


def coded_polarity(book: CodeBook, obs: Any) -> tuple[str | None, str]:
    """positive/negative/equivocal from coded answers, then from the text; with how it was read."""
    concepts = [obs.valueCodeableConcept] if obs.valueCodeableConcept is not None else []
    meanings = {m for m, _ in answer_meanings(book, concepts)}
    mapped = {"present": "positive", "absent": "negative", "indeterminate": "equivocal"}
    meanings = {mapped.get(m, m) for m in meanings}
    known = meanings & {"positive", "negative", "equivocal"}
    if len(known) > 1:
        raise Unclear(f"the coded answers disagree ({describe(book, obs.valueCodeableConcept)})")
    text = result_text(obs)
    if known:
        return known.pop(), f"coded {describe(book, obs.valueCodeableConcept)}"
    if re.search(r"\bequivocal\b", text, re.I):
        return "equivocal", f"text {text!r}"
    polarity = text_polarity(text)
    if polarity:
        return polarity, f"text {text!r}"
    if not concepts and not obs.valueString and obs.interpretation:
        interp = {mapped.get(m, m) for m, _ in answer_meanings(book, obs.interpretation)} & {"positive", "negative"}
        if len(interp) == 1:
            return interp.pop(), "interpretation " + "; ".join(describe(book, c) for c in obs.interpretation)
    return None, text


def percent(book: CodeBook, obs: Any) -> tuple[float, str | None, str] | None:
    """(value, comparator, how) for a percentage of cells, or None when the result has none."""
    q = obs.valueQuantity
    if q is not None and q.value is not None:
        unit = (q.unit or q.code or "").strip()
        if unit not in ("%", "percent", ""):
            raise Unclear(f"a quantity in {unit!r} is not a percentage of cells")
        return float(q.value), q.comparator, f"{q.comparator or ''}{_num(q.value)} %"
    if obs.valueInteger is not None:
        return float(obs.valueInteger), None, f"{obs.valueInteger} %"
    found = text_percent(result_text(obs))
    if found is not None:
        return found[0], found[1], f"text {result_text(obs)!r}"
    return None


def receptor(book: CodeBook, obs: Any, kind: str, er: bool) -> tuple[str, str]:
    """ER (positive/low/negative) or PR (positive/negative) from a qualitative or percent result."""
    pct = percent(book, obs) if kind == "percent" or obs.valueQuantity is not None else None
    if pct is None and kind == "qualitative":
        pct = _percent_in_text(obs)
    polarity, how = (None, "") if kind == "percent" else coded_polarity(book, obs)
    if pct is not None:
        value = _receptor_percent(pct[0], pct[1], er)
        if (polarity == "negative") != (value == "negative") and polarity in ("positive", "negative"):
            raise Unclear(f"the percentage ({pct[2]}) and the reading ({how}) disagree")
        return value, pct[2]
    if polarity == "equivocal":
        raise Unclear(f"reported as equivocal ({how})")
    if polarity is None:
        raise Unclear(f"no positive/negative result or percentage could be read ({how or 'no value'})")
    if er and polarity == "positive" and re.search(r"\blow\b", result_text(obs), re.I):
        return "low", f"{how} (ER-low)"
    return polarity, how


def _percent_in_text(obs: Any) -> tuple[float, str | None, str] | None:
    found = text_percent(result_text(obs))
    return (found[0], found[1], f"text {result_text(obs)!r}") if found is not None else None


def _receptor_percent(value: float, comparator: str | None, er: bool) -> str:
    def category(v: float) -> str:
        if v < 1:
            return "negative"
        if er and v <= 10:
            return "low"
        return "positive"

    if comparator in (None, "="):
        return category(value)
    # A bound: every value it allows must fall in one category, else it is not read.
    edge = {"<": value - 1e-9, "<=": value, ">": value + 1e-9, ">=": value}[comparator]
    far = 0.0 if comparator in ("<", "<=") else 100.0
    low, high = category(edge), category(far)
    middle = category((edge + far) / 2)
    if low == high == middle:
        return low
    raise Unclear(f"'{comparator}{_num(value)} %' spans more than one category")


IHC_SCORE = re.compile(r"(?<![\d.])([0-3])\s*\+")


def her2_ihc(book: CodeBook, obs: Any) -> tuple[str, str]:
    """'0', 'ultralow', '1+', '2+', '3+', or 'negative' (IHC negative without a score)."""
    text = result_text(obs)
    scores = set(IHC_SCORE.findall(text))
    if re.search(r"ultra-?\s?low", text, re.I):
        return "ultralow", f"text {text!r}"
    if len(scores) > 1:
        raise Unclear(f"more than one IHC score in {text!r}")
    if scores:
        return f"{scores.pop()}+", f"text {text!r}"
    if re.fullmatch(r"\s*(score\s*)?0\s*", text, re.I):
        return "0", f"text {text!r}"
    number = obs.valueInteger if obs.valueInteger is not None else (
        obs.valueQuantity.value if obs.valueQuantity is not None and not obs.valueQuantity.unit else None)
    if number is not None:
        if Decimal(str(number)) not in (0, 1, 2, 3):
            raise Unclear(f"{number} is not an IHC score (0, 1+, 2+ or 3+)")
        return ("0" if int(number) == 0 else f"{int(number)}+"), f"score {int(number)}"
    polarity, how = coded_polarity(book, obs)
    if polarity == "positive":
        return "3+", f"{how} (IHC positive = 3+)"
    if polarity == "equivocal":
        return "2+", f"{how} (IHC equivocal = 2+)"
    if polarity == "negative":
        return "negative", f"{how} (IHC negative, score not given)"
    raise Unclear(f"no IHC score or result could be read ({how or 'no value'})")


def her2_overall(book: CodeBook, obs: Any) -> tuple[str, str]:
    polarity, how = coded_polarity(book, obs)
    if polarity is None:
        raise Unclear(f"no positive/negative/equivocal result could be read ({how or 'no value'})")
    return polarity, how


def her2_ish(book: CodeBook, obs: Any, kind: str) -> tuple[Any, str]:
    """'amplified' / 'not_amplified' (qualitative), or a number (ratio / copies per cell)."""
    if kind in ("ratio", "copies"):
        q = obs.valueQuantity
        if q is not None and q.value is not None and q.comparator is None:
            return float(q.value), f"{_num(q.value)} {'ratio' if kind == 'ratio' else 'copies per cell'}"
        if obs.valueRatio is not None and obs.valueRatio.numerator and obs.valueRatio.denominator:
            n, d = obs.valueRatio.numerator.value, obs.valueRatio.denominator.value
            if n is not None and d:
                return float(n) / float(d), f"ratio {_num(n)}/{_num(d)}"
        raise Unclear("no plain number")
    text = result_text(obs)
    if re.search(r"\b(not|non)[- ]?amplified\b", text, re.I):
        return "not_amplified", f"text {text!r}"
    if re.search(r"\bamplified\b", text, re.I):
        return "amplified", f"text {text!r}"
    polarity, how = coded_polarity(book, obs)
    if polarity == "positive":
        return "amplified", how
    if polarity == "negative":
        return "not_amplified", how
    raise Unclear(f"no ISH result could be read ({how or 'no value'})")


CPS = re.compile(r"\b(?:CPS|combined positive score)\b\D{0,12}?(\d+(?:\.\d+)?)", re.I)


def pdl1_cps(obs: Any) -> tuple[float, str]:
    """The 22C3 combined positive score, only when the result says it is a CPS."""
    label = " ".join(filter(None, [concept_text(obs.code), concept_text(obs.method)]))
    for comp in obs.component or []:
        name = concept_text(comp.code)
        if re.search(r"\bCPS\b|combined positive", name, re.I):
            return _cps_quantity(comp.valueQuantity, comp.valueInteger, f"component {name!r}")
    q = obs.valueQuantity
    if q is not None and q.value is not None:
        unit = " ".join(filter(None, [q.unit, q.code]))
        if re.search(r"\bCPS\b|combined positive", f"{unit} {label}", re.I):
            return _cps_quantity(q, None, f"{_num(q.value)} {unit or ''}".strip())
        if unit.strip() in ("%", "percent"):
            raise Unclear("a percentage is a tumour proportion score (TPS), not the combined positive score")
    match = CPS.search(result_text(obs))
    if match:
        return float(match.group(1)), f"text {result_text(obs)!r}"
    raise Unclear("the result does not say it is a combined positive score (CPS)")


def _cps_quantity(q: Any, integer: Any, how: str) -> tuple[float, str]:
    if q is not None and q.value is not None:
        if q.comparator:
            raise Unclear(f"'{q.comparator}{_num(q.value)}' is a bound, not a score")
        value = float(q.value)
    elif integer is not None:
        value = float(integer)
    else:
        raise Unclear("the CPS has no number")
    if not 0 <= value <= 100:
        raise Unclear(f"CPS {value} is outside 0-100")
    return value, how


def msi(book: CodeBook, obs: Any) -> tuple[str, str]:
    text = result_text(obs)
    if re.search(r"\bMSI[- ]?H(igh)?\b|\bhigh\b|\bunstable\b|\binstability[- ]high\b", text, re.I):
        return "high", f"text {text!r}"
    if re.search(r"\bMSS\b|\bstable\b|\bMSI[- ]?L(ow)?\b", text, re.I):
        return "stable", f"text {text!r}"
    concepts = [obs.valueCodeableConcept] if obs.valueCodeableConcept is not None else []
    meanings = {m for m, _ in answer_meanings(book, concepts)}
    if meanings & {"high"} and not meanings & {"low", "negative", "absent"}:
        return "high", describe(book, obs.valueCodeableConcept)
    polarity, how = coded_polarity(book, obs)
    if polarity == "positive":
        return "high", f"{how} (MSI positive = MSI-high)"
    if polarity == "negative" or meanings & {"low"}:
        return "stable", how or describe(book, obs.valueCodeableConcept)
    raise Unclear(f"no MSI result could be read ({how or 'no value'})")


def tmb(book: CodeBook, obs: Any, kind: str) -> tuple[float, str]:
    q = obs.valueQuantity
    if kind == "number" and q is not None and q.value is not None:
        if q.comparator:
            raise Unclear(f"'{q.comparator}{_num(q.value)}' is a bound, not a value")
        return float(q.value), f"{_num(q.value)} {q.unit or 'mutations/Mb'}"
    shown = describe(book, obs.valueCodeableConcept) if obs.valueCodeableConcept is not None else result_text(obs)
    raise Unclear(f"TMB given as {shown!r} without a number; the contract needs mutations per megabase")


def ecog(book: CodeBook, obs: Any) -> tuple[int, str]:
    values: dict[int, str] = {}
    if obs.valueInteger is not None:
        values.setdefault(int(obs.valueInteger), f"value {obs.valueInteger}")
    q = obs.valueQuantity
    if q is not None and q.value is not None:
        values.setdefault(int(q.value), f"value {_num(q.value)}")
    concepts = [c for c in [obs.valueCodeableConcept, *(obs.interpretation or [])] if c is not None]
    for meaning, coded in answer_meanings(book, concepts):
        if meaning.startswith("ecog_"):
            values.setdefault(int(meaning[5:]), coded.label())
    if not values:
        raise Unclear("no ECOG score could be read")
    invalid = [v for v in values if not 0 <= v <= 5]
    if invalid:
        others = "; ".join(how for v, how in values.items() if v not in invalid)
        also = f" (also recorded: {others})" if others else ""
        raise Unclear(f"ECOG {invalid[0]} is not a valid score (0-5){also}")
    if len(values) > 1:
        raise Unclear("the score and its coded answer disagree: " + "; ".join(values.values()))
    score, how = next(iter(values.items()))
    if score == 5:
        raise Unclear("ECOG 5 means the person has died; the profile takes 0-4")
    if not 0 <= score <= 4:
        raise Unclear(f"ECOG {score} is not a valid score (0-5)")
    return score, how


def _num(value: Any) -> str:
    return f"{Decimal(str(value)).normalize():f}"
