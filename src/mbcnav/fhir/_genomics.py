"""Genomic results: GenomicVariant observations (LOINC 69548-6) and single-gene tests.

The contract asks for tumour PIK3CA, AKT1, PTEN and ESR1 status and for *germline* BRCA1/2 and
PALB2. A BRCA or PALB2 result counts only when it says it is germline (genomic source class
LA6683-2): a somatic BRCA variant does not open a PARP inhibitor, and an unlabelled one is
reported rather than assumed. A variant of uncertain significance is not counted as mutated.
"""

from __future__ import annotations

import re
from typing import Any

from mbcnav.fhir._codes import CodeBook, Gene, ObservationCode
from mbcnav.fhir._collect import Candidate, Collector
from mbcnav.fhir._results import Unclear, coded_polarity
from mbcnav.fhir._values import Moment, answer_meanings, codings, concept_text, describe

SOMATIC_FIELDS = {"PIK3CA": ("tumor.pik3ca", "mutated"), "ESR1": ("tumor.esr1", "mutated"),
                  "AKT1": ("tumor.akt1", "mutated"), "PTEN": ("tumor.pten", "altered")}
GERMLINE_FIELDS = {"BRCA1": "gene.BRCA1", "BRCA2": "gene.BRCA2", "PALB2": "tumor.germline_palb2"}


def _component(book: CodeBook, obs: Any, reads: str) -> list[Any]:
    out = []
    for comp in obs.component or []:
        for coded in codings(book, comp.code):
            entry = book.observations.get((coded.system or "", coded.code or ""))
            if entry is not None and entry.reads == reads:
                out.append(comp)
    return out


def _gene(book: CodeBook, obs: Any) -> tuple[Gene | None, str]:
    """(gene, how it was named); gene None with a description when the gene is not one we use."""
    names: list[str] = []
    for comp in _component(book, obs, "gene_studied"):
        concept = comp.valueCodeableConcept
        for coded in codings(book, concept):
            code = coded.code or ""
            key = code if code.upper().startswith("HGNC:") else f"HGNC:{code}"
            if coded.system == "hgnc" and key.upper() in book.genes:
                return book.genes[key.upper()], coded.label()
            names.append(coded.label())
        text = concept_text(concept)
        symbol = next((g for g in book.genes.values() if re.fullmatch(rf"\s*{g.symbol}\s*", text)), None)
        if symbol is not None:
            return symbol, f"gene text {text!r}"
        if text:
            names.append(f"text {text!r}")
    return None, ", ".join(names) or "no gene studied component"


def _source(book: CodeBook, obs: Any) -> str | None:
    concepts = [c.valueCodeableConcept for c in _component(book, obs, "source_class")]
    meanings = {m for m, _ in answer_meanings(book, concepts)} & {"germline", "somatic"}
    if len(meanings) == 1:
        return meanings.pop()
    text = " ".join(concept_text(c) for c in concepts)
    if re.search(r"\bgermline\b", text, re.I) and not re.search(r"\bsomatic\b", text, re.I):
        return "germline"
    if re.search(r"\bsomatic\b", text, re.I) and not re.search(r"\bgermline\b", text, re.I):
        return "somatic"
    return None


def _significance_doubt(book: CodeBook, obs: Any) -> str | None:
    for comp in _component(book, obs, "clinical_significance"):
        meanings = {m for m, _ in answer_meanings(book, [comp.valueCodeableConcept])}
        text = concept_text(comp.valueCodeableConcept)
        if "uncertain_significance" in meanings or re.search(r"uncertain|benign", text, re.I):
            return f"clinical significance {describe(book, comp.valueCodeableConcept)}"
    return None


def _presence(book: CodeBook, obs: Any) -> tuple[str, str]:
    """'positive' (variant found) or 'negative', from the value, else the interpretation."""
    polarity, how = coded_polarity(book, obs)
    interp = {m for m, _ in answer_meanings(book, obs.interpretation or [])}
    interp = {"positive" if m in ("positive", "present") else "negative" if m in ("negative", "absent") else m
              for m in interp} & {"positive", "negative"}
    if polarity in ("positive", "negative"):
        if interp and interp != {polarity}:
            raise Unclear(f"the value ({how}) and the interpretation disagree")
        return polarity, how
    if len(interp) == 1:
        return interp.pop(), "interpretation " + "; ".join(describe(book, c) for c in obs.interpretation or [])
    raise Unclear("neither the value nor the interpretation says whether the variant was found")


def read(col: Collector, ref: str, obs: Any, entry: ObservationCode, when: Moment | None) -> None:
    book = col.book
    if entry.reads == "variant":
        gene, how = _gene(book, obs)
        if gene is None:
            col.ignored("Observation", ref, f"genomic variant in a gene mbcnav does not use ({how})")
            return
    else:
        gene = next((g for g in book.genes.values() if g.symbol == entry.gene), None)
        how = f"LOINC {entry.code} {entry.display}"
        if gene is None:
            col.ignored("Observation", ref, f"{entry.gene} test is not used by mbcnav")
            return
    try:
        presence, result_how = _presence(book, obs)
    except Unclear as err:
        col.unreadable("Observation", ref, f"{gene.symbol}: {err}")
        return
    doubt = _significance_doubt(book, obs) if presence == "positive" else None
    if doubt:
        col.ignored("Observation", ref, f"{gene.symbol} variant not counted: {doubt}")
        return
    detail = f"{gene.symbol} ({how}): {result_how}"
    if gene.symbol in SOMATIC_FIELDS:
        name, positive = SOMATIC_FIELDS[gene.symbol]
        value = positive if presence == "positive" else "wild_type"
        col.offer(Candidate(name, value, when, ref, detail))
        return
    source = _source(book, obs)
    if source != "germline":
        why = ("is somatic; the profile's germline field needs a germline (inherited) result" if source == "somatic"
               else "does not say whether it is germline or somatic, so it is not used for the germline field")
        col.unreadable("Observation", ref, f"{gene.symbol} result {why} ({result_how})")
        return
    name = GERMLINE_FIELDS[gene.symbol]
    if gene.symbol == "PALB2":
        col.offer(Candidate(name, "mutated" if presence == "positive" else "negative", when, ref, detail))
    else:
        col.offer(Candidate(name, presence, when, ref, detail))


def combine_brca(col: Collector) -> None:
    """Two gene results -> the contract's single germline_brca value; one untested gene keeps it unknown."""
    brca1, brca2 = col.resolve("gene.BRCA1"), col.resolve("gene.BRCA2")
    positives = [c for c in (brca1, brca2) if c is not None and c.value == "positive"]
    if positives:
        chosen = positives[0]
        value = "brca1" if chosen is brca1 else "brca2"
        if len(positives) == 2:
            col.note("Germline BRCA1 and BRCA2 variants are both recorded; the profile holds one value (brca1).")
        col.offer(Candidate("tumor.germline_brca", value, chosen.when, chosen.resource, chosen.detail))
    elif brca1 is not None and brca2 is not None:
        col.offer(Candidate("tumor.germline_brca", "negative", brca2.when, f"{brca1.resource}, {brca2.resource}",
                            f"{brca1.detail}; {brca2.detail}"))
    elif brca1 is not None or brca2 is not None:
        tested = "BRCA1" if brca1 is not None else "BRCA2"
        other = "BRCA2" if tested == "BRCA1" else "BRCA1"
        col.note(f"Germline {tested} is negative but no germline {other} result was found; germline BRCA left unknown.")
