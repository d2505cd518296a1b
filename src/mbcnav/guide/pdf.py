"""The guide as a printable PDF (reportlab platypus)."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

# No reportlab stubs are declared yet (types-reportlab): the ignores keep mypy clean with or without them.
import reportlab  # type: ignore[import-untyped,unused-ignore]
from reportlab.lib import colors  # type: ignore[import-untyped,unused-ignore]
from reportlab.lib.pagesizes import A4, LETTER  # type: ignore[import-untyped,unused-ignore]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped,unused-ignore]
from reportlab.lib.units import mm  # type: ignore[import-untyped,unused-ignore]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped,unused-ignore]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped,unused-ignore]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped,unused-ignore]
from reportlab.platypus import (  # type: ignore[import-untyped,unused-ignore]
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from mbcnav.engine import DISCLAIMER
from mbcnav.guide.model import Guide, GuideItem

PageSize = Literal["a4", "letter"]
TITLE = "Doctor Discussion Guide"
# Margins that print on both A4 and US Letter without clipping.
SIDE, TOP, BOTTOM = 20 * mm, 18 * mm, 30 * mm
PAD = 6  # reportlab's default frame padding (points); text starts at SIDE + PAD
INK = colors.HexColor("#1a1a1a")
GREY = colors.HexColor("#555555")
RULE = colors.HexColor("#9a9a9a")

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF",
              "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")


@cache
def _fonts() -> tuple[str, str]:
    """Regular and bold font names: DejaVu Sans (wide Unicode cover) if installed, else reportlab's Vera."""
    for directory in _FONT_DIRS:
        regular, bold = Path(directory, "DejaVuSans.ttf"), Path(directory, "DejaVuSans-Bold.ttf")
        if regular.is_file() and bold.is_file():
            break
    else:
        bundled = Path(reportlab.__file__).parent / "fonts"
        regular, bold = bundled / "Vera.ttf", bundled / "VeraBd.ttf"
    pdfmetrics.registerFont(TTFont("GuideSans", str(regular)))
    pdfmetrics.registerFont(TTFont("GuideSans-Bold", str(bold)))
    pdfmetrics.registerFontFamily("GuideSans", normal="GuideSans", bold="GuideSans-Bold",
                                  italic="GuideSans", boldItalic="GuideSans-Bold")
    return "GuideSans", "GuideSans-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=11, leading=15, textColor=INK)
    return {
        "title": ParagraphStyle("title", parent=body, fontName=bold, fontSize=20, leading=24, spaceAfter=4),
        "meta": ParagraphStyle("meta", parent=body, fontSize=9.5, leading=13, textColor=GREY),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=13.5, leading=17, spaceBefore=12,
                             spaceAfter=6),
        "body": body,
        "note": ParagraphStyle("note", parent=body, fontSize=10.5, leading=14, textColor=GREY),
        "small": ParagraphStyle("small", parent=body, fontSize=10, leading=13.5),
        "footer": ParagraphStyle("footer", parent=body, fontSize=8, leading=10, textColor=GREY),
    }


def markup(text: str) -> str:
    """User text made safe for reportlab's mini-markup; line breaks kept."""
    return escape(text).replace("\n", "<br/>")


class CheckBox(Flowable):  # type: ignore[misc,unused-ignore]
    """An empty square to tick by hand once the question is answered."""

    def __init__(self, size: float = 3.6 * mm) -> None:
        super().__init__()
        self.size = size

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        self.canv.setStrokeColor(INK)
        self.canv.setLineWidth(0.8)
        self.canv.rect(0, -0.7 * mm, self.size, self.size)  # sits on the text baseline of the first line


class WritingLines(Flowable):  # type: ignore[misc,unused-ignore]
    """Ruled lines to write answers on during the visit."""

    def __init__(self, count: int, gap: float = 9 * mm) -> None:
        super().__init__()
        self.count, self.gap = count, gap
        self.line_width = 0.0

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        self.line_width = aW
        return aW, self.count * self.gap

    def draw(self) -> None:
        self.canv.setStrokeColor(RULE)
        self.canv.setLineWidth(0.5)
        for i in range(self.count):
            self.canv.line(0, i * self.gap, self.line_width, i * self.gap)


def _item_rows(items: list[GuideItem], styles: dict[str, ParagraphStyle], width: float) -> list[Flowable]:
    number_w, box_w = 9 * mm, 7 * mm
    text_w = width - number_w - box_w
    out: list[Flowable] = []
    n = 0
    for item in items:
        if item.kind == "question":
            n += 1
            cells = [[Paragraph(f"{n}.", styles["body"]), CheckBox(), Paragraph(markup(item.text), styles["body"])]]
            table = Table(cells, colWidths=[number_w, box_w, text_w])
            table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                       ("TOPPADDING", (1, 0), (1, 0), 4.2), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
        else:
            table = Table([["", Paragraph(f"<b>Note:</b> {markup(item.text)}", styles["note"])]],
                          colWidths=[number_w + box_w, text_w])
            table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0),
                                       ("LEFTPADDING", (1, 0), (1, 0), 6),
                                       ("LINEBEFORE", (1, 0), (1, 0), 1.5, RULE),
                                       ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
        out.append(table)
    return out


def _story(guide: Guide, width: float) -> list[Flowable]:
    s = _styles()
    made = f"{guide.created.day} {guide.created:%B %Y}"
    meta = f"Made on {made}"
    if guide.knowledge_version:
        meta += f" · Knowledge version {escape(guide.knowledge_version)}"
    story: list[Flowable] = [
        Paragraph(TITLE, s["title"]),
        Paragraph(meta, s["meta"]),
        Spacer(1, 3 * mm),
        Paragraph("Take this to your next visit. Tick each question once it has been answered.", s["small"]),
        Paragraph("Questions and notes", s["h2"]),
    ]
    if guide.items:
        story += _item_rows(guide.items, s, width)
    else:
        story.append(Paragraph("No questions added yet.", s["note"]))
    if guide.options_summary:
        story.append(Paragraph("Treatment options you chose to include", s["h2"]))
        for option in guide.options_summary:
            block: list[Flowable] = [Paragraph(f"<b>{escape(option.title)}</b> ({option.tier_label})", s["small"])]
            if option.drugs:
                block.append(Paragraph(f"Medicines: {escape(option.drugs)}", s["note"]))
            block.append(Spacer(1, 2.5 * mm))
            story.append(KeepTogether(block))
    story += [CondPageBreak(50 * mm), Paragraph("Notes from the visit", s["h2"]), Spacer(1, 4 * mm),
              WritingLines(5)]
    return story


def _footer(guide: Guide) -> Callable[[Canvas, SimpleDocTemplate], None]:
    style = _styles()["footer"]
    version = f" · Knowledge version {escape(guide.knowledge_version)}" if guide.knowledge_version else ""

    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        left, width = SIDE + PAD, doc.pagesize[0] - 2 * (SIDE + PAD)
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(left, BOTTOM - 6 * mm, left + width, BOTTOM - 6 * mm)
        para = Paragraph(f"{escape(DISCLAIMER)}<br/>mbcnav{version} · Page {doc.page}", style)
        _, h = para.wrap(width, BOTTOM)
        para.drawOn(canvas, left, BOTTOM - 8 * mm - h)
        canvas.restoreState()

    return draw


def guide_pdf(guide: Guide, page_size: PageSize = "a4") -> bytes:
    """The guide as PDF bytes: title, date, numbered questions with boxes, notes, options, footer disclaimer."""
    buffer = io.BytesIO()
    size = A4 if page_size == "a4" else LETTER
    doc = SimpleDocTemplate(buffer, pagesize=size, leftMargin=SIDE, rightMargin=SIDE, topMargin=TOP,
                            bottomMargin=BOTTOM, title=TITLE, author="mbcnav",
                            subject="Questions to discuss with your care team", creator="mbcnav")
    on_page = _footer(guide)
    doc.build(_story(guide, size[0] - 2 * (SIDE + PAD)), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()
