"""PDF, text and email exports, checked by parsing them back (pypdf, email) and by rendering the PDF."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from mbcnav.engine import DISCLAIMER
from mbcnav.guide.export import SUBJECT, guide_email, guide_html, guide_pdf, guide_text
from mbcnav.guide.model import Guide, OptionSummary

LONG = ("Could you explain, step by step and in plain words, how the treatment schedule would fit around "
        "my work, my children's school runs and the two-hour drive to the cancer centre? ") * 3


def pages_text(pdf: bytes) -> list[str]:
    # Wrapped lines come back with line breaks; compare with single spaces.
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def full_guide() -> Guide:
    g = Guide(knowledge_version="2026.11.0+abc123", created=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
              options_summary=[OptionSummary(title="CDK4/6 inhibitor with an aromatase inhibitor", tier="preferred",
                                             drugs="(ribociclib or palbociclib) + (letrozole or anastrozole)")])
    g.add_question("What is the main goal of my treatment: to help me live longer, to ease symptoms, or both?",
                   "general_goal")
    g.add_question(LONG.strip())
    g.add_note("Ask about <b>markup</b> & <font size=40>fonts</font>\nSecond line of the note")
    g.add_question("Café, naïve, Ärztin: is ~50 % < 100 % > 0?")
    return g


def test_pdf_holds_the_guide(full_guide: Guide) -> None:
    pdf = guide_pdf(full_guide)
    assert pdf.startswith(b"%PDF-")
    text = " ".join(pages_text(pdf))
    assert "Doctor Discussion Guide" in text and "23 November 2026" in text
    assert "Knowledge version 2026.11.0+abc123" in text
    for question in full_guide.questions:
        assert flat(question.text) in text
    # Numbered in the user's order; the note is not numbered.
    assert re.search(r"1\. What is the main goal.*2\. Could you explain.*Note: Ask about.*3\. Café", text)
    assert "<b>markup</b> & <font size=40>fonts</font>" in text  # shown as typed, not interpreted
    assert "Second line of the note" in text
    assert "CDK4/6 inhibitor with an aromatase inhibitor (Preferred)" in text
    assert "(ribociclib or palbociclib) + (letrozole or anastrozole)" in text
    assert PdfReader(io.BytesIO(pdf)).metadata.title == "Doctor Discussion Guide"  # type: ignore[union-attr]


def test_disclaimer_is_on_every_page() -> None:
    g = Guide(knowledge_version="2026.11.0")
    for i in range(60):
        g.add_question(f"Question number {i + 1}: {LONG[:150]}")
    pages = pages_text(guide_pdf(g))
    assert len(pages) >= 4
    for n, page in enumerate(pages, 1):
        assert flat(DISCLAIMER) in page and f"Page {n}" in page
    text = " ".join(pages)
    assert all(f"Question number {i}:" in text for i in range(1, 61))


def test_letter_and_a4_sizes(full_guide: Guide) -> None:
    for size, expected in (("a4", (595, 842)), ("letter", (612, 792))):
        box = PdfReader(io.BytesIO(guide_pdf(full_guide, size))).pages[0].mediabox  # type: ignore[arg-type]
        assert (round(float(box.width)), round(float(box.height))) == expected


def test_empty_guide_still_prints() -> None:
    text = " ".join(pages_text(guide_pdf(Guide())))
    assert "No questions added yet." in text and flat(DISCLAIMER) in text


def test_pdf_renders_with_ink_in_body_and_footer(full_guide: Guide, tmp_path: Path) -> None:
    # scripts/install --test-tools installs poppler-utils; a missing tool is a failure, not a skip.
    assert shutil.which("pdftoppm"), "pdftoppm missing: apt-get install poppler-utils (scripts/install --test-tools)"
    (tmp_path / "guide.pdf").write_bytes(guide_pdf(full_guide))
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(tmp_path / "guide.pdf"),
                    str(tmp_path / "page")], check=True)
    [png] = tmp_path.glob("page*.png")
    image = Image.open(png).convert("L")
    width, height = image.size
    assert abs(width - 496) <= 1 and abs(height - 702) <= 1  # A4 at 60 dpi

    def ink(top: float, bottom: float) -> int:
        band = image.crop((0, int(top * height), width, int(bottom * height)))
        return sum(band.histogram()[:200])  # pixels clearly darker than paper

    assert ink(0.0, 0.12) > 300  # title
    assert ink(0.88, 1.0) > 150  # footer disclaimer (small grey text)
    assert ink(0.5, 0.85) < ink(0.12, 0.5)  # content starts at the top, not spread oddly
    side = image.crop((0, 0, int(0.06 * width), height))  # nothing printed into the left margin
    assert sum(side.histogram()[:200]) == 0


def test_text_version(full_guide: Guide) -> None:
    text = guide_text(full_guide, link="https://mbcnav.example.org/")
    assert text.startswith("Doctor Discussion Guide\nMade on 23 November 2026. Knowledge version 2026.11.0+abc123.")
    assert "  1. [ ] What is the main goal" in text and "  3. [ ] Café" in text
    assert "Note: Ask about <b>markup</b>" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert flat(DISCLAIMER) in flat(text) and text.rstrip().endswith("Made with mbcnav: https://mbcnav.example.org/")


def test_html_version_escapes_user_text(full_guide: Guide) -> None:
    full_guide.add_note("<script>alert(1)</script>")
    html = guide_html(full_guide)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;markup&lt;/b&gt; &amp;" in html
    with pytest.raises(ValueError, match="link"):
        guide_html(full_guide, link="javascript:alert(1)")


def test_email_has_text_html_and_the_pdf(full_guide: Guide) -> None:
    message = guide_email(full_guide, "reader@example.com", "guide@mbcnav.example.org")
    assert message["Subject"] == SUBJECT and message["To"] == "reader@example.com"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    plain = message.get_body(("plain",))
    assert plain is not None and "1. [ ] What is the main goal" in plain.get_content()
    [attachment] = list(message.iter_attachments())
    assert "Café, naïve, Ärztin" in " ".join(pages_text(attachment.get_content()))
    assert max(message.as_bytes()) < 128
