"""One-page clinician summary (PDF) of one Recommendation, suitable for the chart.

    pdf_bytes = report_pdf(profile_dict)            # or an engine Evaluation

Contents, most important first: the profile as understood (with derived facts), the options
with evidence levels and numbered citations, local and supportive care, tests to consider,
interactions, warnings, knowledge version, review date and the disclaimer. The page is always
one page: when a profile has a lot to say, lower-priority detail is dropped first (evidence
summaries, then the not-recommended list), and only then is the type made smaller.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepInFrame, Paragraph, Table, TableStyle

from mbcnav.engine import Evaluation, evaluate
from mbcnav.knowledge.loader import knowledge

PAGE_W, PAGE_H = letter
MARGIN = 0.45 * inch
HEADER_H = 0.55 * inch
FOOTER_H = 0.55 * inch
FRAME_W = PAGE_W - 2 * MARGIN
FRAME_H = PAGE_H - 2 * MARGIN - HEADER_H - FOOTER_H
INK = colors.HexColor("#1f2933")
ACCENT = colors.HexColor("#2d5f8a")
RULE = colors.HexColor("#c5d0da")
SHADE = colors.HexColor("#eef3f7")
ALERT = colors.HexColor("#b42318")
ALERT_BG = colors.HexColor("#fdecea")
FALLBACK = {"→": "->", "\u00a0": " "}


@cache
def _fonts() -> tuple[str, str, str]:
    """Bitstream Vera ships with reportlab, so the PDF looks the same on every machine."""
    folder = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    names = (("Vera", "Vera.ttf"), ("VeraBd", "VeraBd.ttf"), ("VeraIt", "VeraIt.ttf"), ("VeraBI", "VeraBI.ttf"))
    for name, file in names:
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, os.path.join(folder, file)))
    # <b> and <i> in paragraphs pick these faces.
    pdfmetrics.registerFontFamily("Vera", normal="Vera", bold="VeraBd", italic="VeraIt", boldItalic="VeraBI")
    return "Vera", "VeraBd", "VeraIt"


@cache
def _glyphs() -> frozenset[int]:
    font = pdfmetrics.getFont(_fonts()[0])
    return frozenset(font.face.charToGlyph)  # type: ignore[attr-defined]


def _text(value: object) -> str:
    """Escape for Paragraph markup and replace characters the font lacks."""
    out = []
    for ch in str(value):
        out.append(ch if ord(ch) in _glyphs() or ch in "\n\t" else FALLBACK.get(ch, "?"))
    return escape("".join(out))


class _Styles:
    def __init__(self, size: float) -> None:
        regular, bold, italic = _fonts()
        self.size = size
        self.body = ParagraphStyle("body", fontName=regular, fontSize=size, leading=size * 1.22, textColor=INK)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=size - 1, leading=(size - 1) * 1.2)
        self.bold = ParagraphStyle("bold", parent=self.body, fontName=bold)
        self.head = ParagraphStyle("head", parent=self.body, fontName=bold, fontSize=size + 1.5,
                                   leading=(size + 1.5) * 1.2, textColor=ACCENT, spaceBefore=size * 0.7,
                                   spaceAfter=size * 0.25)
        self.italic = ParagraphStyle("italic", parent=self.small, fontName=italic)
        self.tiny = ParagraphStyle("tiny", parent=self.body, fontSize=min(size - 1.5, 6.3),
                                   leading=min(size - 1.5, 6.3) * 1.18)


@dataclass(frozen=True)
class _Detail:
    """How much to say; later entries of LEVELS say less, so the page stays one page."""

    size: float = 8.0
    evidence: str = "all"          # evidence summaries: all | preferred | first | none
    why: str = "all"               # one-line why under each option: all | preferred | none
    not_recommended: int = 99      # how many not-recommended entries
    interactions_full: bool = True
    interactions: int = 99         # how many interactions (most severe first)
    could_open: bool = True
    notes: int = 6


LEVELS = (
    _Detail(),
    _Detail(evidence="preferred"),
    _Detail(evidence="first", not_recommended=8),
    _Detail(evidence="none", not_recommended=6),
    _Detail(size=7.5, evidence="none", why="preferred", not_recommended=5, interactions_full=False),
    _Detail(size=7.5, evidence="none", why="preferred", not_recommended=5, interactions_full=False, interactions=10),
    _Detail(size=7.5, evidence="none", why="none", not_recommended=4, interactions_full=False, interactions=8,
            could_open=False),
    _Detail(size=7.0, evidence="none", why="none", not_recommended=3, interactions_full=False, interactions=6,
            could_open=False, notes=3),
    _Detail(size=6.8, evidence="none", why="none", not_recommended=0, interactions_full=False, interactions=5,
            could_open=False, notes=2),
)
SUBTYPES = {"hr_positive_her2_negative": "HR+/HER2-negative", "hr_positive_her2_positive": "HR+/HER2-positive",
            "hr_negative_her2_positive": "HR-negative/HER2-positive", "triple_negative": "triple negative",
            "unknown": "unknown (receptors missing)"}


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(text, style)


def _drug_list(components: Sequence[Sequence[str]]) -> str:
    return " + ".join(" / ".join(d.replace("_", " ") for d in c) for c in components)


def _profile_rows(ev: Evaluation) -> list[tuple[str, str]]:
    p, f = ev.profile, ev.facts
    t = p.tumor
    meno: str = p.menopausal_status or "not given"
    if p.sex == "female" and f.get("postmenopausal") is True and meno in ("not given", "unknown"):
        meno += " (treated as postmenopausal: age 60+ or suppressed)"
    if p.ovarian_function_suppressed:
        meno += "; ovarian function suppressed"
    markers = {"PIK3CA": t.pik3ca, "ESR1": t.esr1, "AKT1": t.akt1, "PTEN": t.pten, "gBRCA": t.germline_brca,
               "gPALB2": t.germline_palb2, "MSI": t.msi, "NTRK": t.ntrk_fusion}
    known = [f"{k} {v.replace('_', ' ')}" for k, v in markers.items() if v != "unknown"]
    known += [f"PD-L1 CPS {t.pdl1_cps:g}"] if t.pdl1_cps is not None else []
    known += [f"TMB {t.tmb:g}/Mb"] if t.tmb is not None else []
    unknown = [k for k, v in markers.items() if v == "unknown"] + (["PD-L1"] if t.pdl1_cps is None else [])
    sites = ", ".join(s.replace("_", " ") for s in p.disease.sites) if p.disease.sites is not None else "not given"
    extras = [name.replace("_", " ") for name in ("visceral_crisis", "symptomatic", "spinal_cord_compression",
                                                  "oligometastatic") if getattr(p.disease, name)]
    early = "; ".join(f"{', '.join(e.drugs)} ({e.setting}"
                      + (f", ended {e.months_since_end:g} mo before" if e.months_since_end is not None else "") + ")"
                      for e in p.history.early) or "none recorded"
    lines = "; ".join(f"{i + 1}. {', '.join(m.drugs)}" + (f" ({m.outcome})" if m.outcome else "")
                      for i, m in enumerate(p.history.metastatic)) or "none recorded"
    rows = [
        ("Patient", f"{p.sex}" + (f", {p.age} y" if p.age else "")
                    + (f"; menopause: {meno}" if p.sex == "female" else "")),
        ("Receptors", f"ER {t.er}, PR {t.pr}; HER2 IHC {t.her2.ihc}, ISH {t.her2.ish.replace('_', ' ')}"),
        ("Derived", f"{SUBTYPES[ev.recommendation['subtype']]}; HER2 category "
                    f"{ev.recommendation['her2_category']}; endocrine sensitivity "
                    f"{f.get('endocrine_sensitivity') or 'unknown'}; line {f.get('line', 1):g}"),
        ("Biomarkers", ("; ".join(known) or "none known") + (f" (unknown: {', '.join(unknown)})" if unknown else "")),
        ("Disease", (p.disease.presentation.replace("_", " ") if p.disease.presentation else "presentation not given")
                    + f"; sites: {sites}" + (f"; {', '.join(extras)}" if extras else "")),
        ("Health", f"ECOG {p.health.ecog if p.health.ecog is not None else 'not given'}"
                   + (f"; LVEF {p.health.lvef_percent:g}%" if p.health.lvef_percent else "")
                   + "".join(f"; {c.replace('_', ' ')}" for c in p.health.conditions)),
        ("Early therapy", early),
        ("Metastatic lines", lines),
    ]
    if p.current_medications:
        rows.append(("Current medicines", ", ".join(p.current_medications)))
    return rows


def _grid(rows: list[list[Any]], widths: list[float], s: _Styles, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style: list[Any] = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
             ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5), ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), SHADE)]
    table.setStyle(TableStyle(style))
    return table


class _Refs:
    """Numbered citations in order of first use."""

    def __init__(self) -> None:
        self.order: dict[str, tuple[int, str]] = {}

    def number(self, source_id: str, citation: str) -> int:
        if source_id not in self.order:
            self.order[source_id] = (len(self.order) + 1, citation)
        return self.order[source_id][0]


def _story(ev: Evaluation, notes: Sequence[str], d: _Detail) -> list[Flowable]:
    """Everything the page says, at one level of detail."""
    s = _Styles(d.size)
    rec = ev.recommendation
    refs = _Refs()
    story: list[Flowable] = []
    urgent = [e for e in rec["local_and_supportive"] if e.get("urgent")]
    if urgent:
        # Emergencies first (DESIGN principle 8), before anything else on the page.
        text = "<br/>".join(f"<b>URGENT: {_text(e['title'])}</b>" + (f" {_text(e['why'][0])}" if e["why"] else "")
                            for e in urgent)
        banner = Table([[_p(text, s.body)]], colWidths=[FRAME_W])
        banner.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 1.2, ALERT), ("BACKGROUND", (0, 0), (-1, -1), ALERT_BG),
                                    ("LEFTPADDING", (0, 0), (-1, -1), 5), ("TOPPADDING", (0, 0), (-1, -1), 3),
                                    ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]))
        story.append(banner)
    story.append(_p("Profile as understood", s.head))
    story.append(_grid([[_p(_text(k), s.bold), _p(_text(v), s.body)] for k, v in _profile_rows(ev)],
                       [1.15 * inch, FRAME_W - 1.15 * inch], s, header=False))
    story.append(_p(f"Options: {_text(rec['decision_point'])}", s.head))
    rows: list[list[Any]] = [[_p("Option and drugs", s.bold), _p("Tier", s.bold), _p("Evidence", s.bold)]]
    for i, entry in enumerate(rec["options"]):
        preferred = entry["tier"] == "preferred"
        summaries = (d.evidence == "all" or (d.evidence == "preferred" and preferred)
                     or (d.evidence == "first" and i == 0))
        evidence = []
        for e in entry["evidence"]:
            n = refs.number(e["source_id"], e["source"])
            evidence.append(f"{e['level'].replace('_', ' ')} [{n}]" + (f": {e['summary']}" if summaries else ""))
        why = entry["why"][0] if entry["why"] and (d.why == "all" or (d.why == "preferred" and preferred)) else ""
        cell = (f"<b>{_text(entry['title'])}</b><br/>{_text(_drug_list(entry['drugs']))}"
                + (f"<br/><i>{_text(why)}</i>" if why else ""))
        rows.append([_p(cell, s.body), _p(_text(entry["tier"].replace("_", " ")), s.body),
                     _p(_text("; ".join(evidence)), s.small)])
    if len(rows) == 1:
        rows.append([_p("No systemic option is shown for this profile as entered; see tests to consider and "
                        "warnings.", s.body), "", ""])
    story.append(_grid(rows, [FRAME_W * 0.52, FRAME_W * 0.11, FRAME_W * 0.37], s))
    if rec["local_and_supportive"]:
        story.append(_p("Local and supportive care", s.head))
        items = []
        for entry in rec["local_and_supportive"]:
            nums = ",".join(str(refs.number(e["source_id"], e["source"])) for e in entry["evidence"][:2])
            flag = "<b>URGENT</b> " if entry.get("urgent") else ""
            items.append(f"{flag}{_text(entry['title'])} ({_text(entry['tier'].replace('_', ' '))}) [{nums}]")
        story.append(_p(" &#8226; ".join(items), s.body))
    if rec["not_recommended"] and d.not_recommended:
        story.append(_p("Not recommended here", s.head))
        shown = rec["not_recommended"][: d.not_recommended]
        text = " &#8226; ".join(f"<b>{_text(e['title'])}</b>: {_text(e['why'][0] if e['why'] else '')}" for e in shown)
        more = len(rec["not_recommended"]) - len(shown)
        story.append(_p(text + (f" &#8226; (+{more} more in the full report)" if more else ""), s.small))
    story.append(_p("Tests to consider", s.head))
    tests = [f"<b>{_text(t['test'])}</b>" + (f": could open {_text('; '.join(t['could_open']))}"
                                             if t.get("could_open") and d.could_open else "")
             for t in rec["tests_to_consider"]]
    story.append(_p(" &#8226; ".join(tests) or "None suggested.", s.body))
    story.append(_p("Interactions with current medicines", s.head))
    inter = [f"<b>{_text(' + '.join(i['drugs']))}</b> ({_text(i['severity'])}): "
             f"{_text(i['professional'] if d.interactions_full else i['professional'].split('. ')[0] + '.')}"
             for i in rec["interactions"][: d.interactions]]
    hidden = rec["interactions"][d.interactions:]
    if hidden:
        counts = {sev: sum(i["severity"] == sev for i in hidden) for sev in ("major", "moderate", "minor")}
        inter.append("<i>+ " + ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
                     + " more in the full report</i>")
    story.append(_p("<br/>".join(inter) or "None found among the medicines listed.", s.body))
    if rec["warnings"]:
        story.append(_p("Warnings", s.head))
        story.append(_p("<br/>".join(_text(w) for w in rec["warnings"]), s.body))
    if notes:
        story.append(_p("Data notes (EHR import)", s.head))
        story.append(_p("<br/>".join(_text(n) for n in list(notes)[: d.notes]), s.small))
    story.append(_p("References", s.head))
    cites = [f"[{n}] {_text(c)}" for n, c in sorted(refs.order.values())]
    story.append(_p(" ".join(cites) or "None.", s.tiny))
    return story


def _height(story: list[Flowable]) -> float:
    total = 0.0
    for flowable in story:
        _, h = flowable.wrap(FRAME_W, FRAME_H)
        total += h + flowable.getSpaceBefore() + flowable.getSpaceAfter()
    return total


def _fit(ev: Evaluation, notes: Sequence[str]) -> list[Flowable]:
    """The most detailed story that fits one page (each level says less, so bisect the ladder)."""
    stories: dict[_Detail, list[Flowable]] = {}

    def fits(detail: _Detail) -> bool:
        stories[detail] = _story(ev, notes, detail)
        return _height(stories[detail]) <= FRAME_H

    if fits(LEVELS[0]):
        return stories[LEVELS[0]]
    low, high = 1, len(LEVELS) - 1      # the answer is in LEVELS[low..high]; the last one always goes
    while low < high:
        middle = (low + high) // 2
        if fits(LEVELS[middle]):
            high = middle
        else:
            low = middle + 1
    chosen = LEVELS[low]
    story = stories.get(chosen) or _story(ev, notes, chosen)
    # The ladder is coarse: give back not-recommended entries while they still fit.
    extra_low, extra_high = chosen.not_recommended, min(len(ev.recommendation["not_recommended"]), 8)
    while extra_low < extra_high:
        middle = (extra_low + extra_high + 1) // 2
        if fits(replace(chosen, not_recommended=middle)):
            extra_low = middle
            story = stories[replace(chosen, not_recommended=middle)]
        else:
            extra_high = middle - 1
    return story


def _page(canvas: Canvas, rec: dict[str, Any], version: str, reviewed: str, made: str) -> None:
    regular, bold, italic = _fonts()
    top = PAGE_H - MARGIN
    canvas.setFillColor(ACCENT)
    canvas.rect(MARGIN, top - 0.42 * inch, FRAME_W, 0.42 * inch, stroke=0, fill=1)
    canvas.setFillColor(colors.white)
    canvas.setFont(bold, 11.5)
    canvas.drawString(MARGIN + 8, top - 0.27 * inch, "mbcnav  |  Metastatic breast cancer: clinician summary")
    canvas.setFont(regular, 7)
    canvas.drawRightString(MARGIN + FRAME_W - 8, top - 0.17 * inch, f"Generated {made}")
    canvas.drawRightString(MARGIN + FRAME_W - 8, top - 0.32 * inch, f"Knowledge {version}")
    canvas.setFillColor(INK)
    canvas.setStrokeColor(RULE)
    canvas.line(MARGIN, MARGIN + FOOTER_H - 6, MARGIN + FRAME_W, MARGIN + FOOTER_H - 6)
    canvas.setFont(italic, 7)
    text = canvas.beginText(MARGIN, MARGIN + FOOTER_H - 16)
    text.setLeading(8.6)
    for line in _wrap_line(rec["disclaimer"] + f" Knowledge base {version}, last reviewed {reviewed}. Evidence "
                           "levels: phase 3 RCT, randomised phase 2, single arm, guideline, label, expert opinion, "
                           "historical. Check the cited source before acting.", italic, 7, FRAME_W):
        text.textLine(line)
    canvas.drawText(text)


def _wrap_line(text: str, font: str, size: float, width: float) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if pdfmetrics.stringWidth(candidate, font, size) > width and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])


def report_pdf(source: Mapping[str, Any] | Evaluation, *, notes: Sequence[str] = (),
               today: dt.date | None = None) -> bytes:
    """The one-page clinician summary for a profile (contract dict) or an engine Evaluation.

    ``notes`` are shown under "Data notes" (e.g. the FHIR import's choices). Raises ProfileError
    for an invalid profile, as mbcnav.recommend() does.
    """
    import io

    ev = source if isinstance(source, Evaluation) else evaluate(source)
    kb = knowledge()
    made = (today or dt.date.today()).isoformat()
    story: list[Flowable] = []
    story = _fit(ev, notes)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=letter, pageCompression=1)
    canvas.setTitle("mbcnav clinician summary")
    canvas.setAuthor("mbcnav")
    canvas.setSubject(f"Knowledge {kb.version}")
    _page(canvas, ev.recommendation, kb.version, kb.last_reviewed().isoformat(), made)
    frame_story: list[Flowable] = [KeepInFrame(FRAME_W, FRAME_H, story, mode="shrink")]
    y = PAGE_H - MARGIN - HEADER_H
    for flowable in frame_story:
        _, h = flowable.wrapOn(canvas, FRAME_W, FRAME_H)
        flowable.drawOn(canvas, MARGIN, y - h)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()

