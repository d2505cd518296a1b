"""The one-page clinician summary: content, one page whatever the profile, renders to an image."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

import mbcnav
from mbcnav.engine import evaluate
from mbcnav.profile import ProfileError
from mbcnav.render.report_pdf import report_pdf

EXAMPLES = sorted(p.name for p in (resources.files("mbcnav") / "examples").iterdir() if p.name.endswith(".json"))


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((resources.files("mbcnav") / "examples" / name).read_text(encoding="utf-8"))
    return data


def text_of(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_is_one_page_with_the_essentials(name: str) -> None:
    profile = example(name)
    rec = mbcnav.recommend(profile)
    pages, text = text_of(report_pdf(profile))
    assert pages == 1
    assert "Profile as understood" in text and "Tests to consider" in text and "References" in text
    assert rec["knowledge_version"] in text
    assert "not medical advice" in text
    for option in rec["options"][:2]:
        assert option["title"][:30] in text
        assert option["evidence"][0]["level"].replace("_", " ") in text


def test_emergency_comes_first() -> None:
    _, text = text_of(report_pdf(example("spinal_cord_compression_emergency.json")))
    assert text.index("URGENT") < text.index("Profile as understood")


def test_a_crowded_profile_still_fits_one_page() -> None:
    profile = example("her2_positive_brain_metastases_third_line.json")
    profile["current_medications"] = ["warfarin", "paroxetine", "clarithromycin", "rifampin", "St John's wort",
                                      "carbamazepine", "fluconazole", "amiodarone"]
    notes = [f"Import note {i}: two ER results; used the newest (2024-03-02)." for i in range(12)]
    pages, text = text_of(report_pdf(evaluate(profile), notes=notes))
    assert pages == 1 and "Data notes" in text


def test_invalid_profile_raises_like_recommend() -> None:
    with pytest.raises(ProfileError):
        report_pdf({"sex": "unknown"})


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed")
def test_renders_to_png(tmp_path: Path) -> None:
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(report_pdf(example("triple_negative_gbrca_her2_low_later_line.json")))
    subprocess.run(["pdftoppm", "-png", "-r", "70", str(pdf), str(tmp_path / "page")], check=True, timeout=30)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")
