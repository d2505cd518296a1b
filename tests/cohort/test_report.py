"""The HTML report is one self-contained file: inline SVG, no scripts, nothing fetched."""

from __future__ import annotations

import re
from pathlib import Path

from mbcnav.cohort import local, report, synth


def test_report_is_self_contained_with_every_chart(tmp_path: Path) -> None:
    source, results, html = tmp_path / "c.parquet", tmp_path / "r.parquet", tmp_path / "r.html"
    synth.write(2_000, source, synth.Options(seed=21))
    local.evaluate(source, results)
    report.write(results, html)
    text = html.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?https?:""", text)
    assert text.count("<svg") >= 8
    for heading in ("Subtype mix", "Options offered", "Test gaps", "Concordance of the treatment given, by subtype",
                    "Concordance by line of therapy", "Questions"):
        assert heading in text
    assert "2,000 patients" in text
