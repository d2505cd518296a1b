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


def test_report_is_accessible_and_fits_a_phone(tmp_path: Path) -> None:
    """axe-core finds no violation at all; at 360 px only the tables scroll sideways, in their own regions."""
    from playwright.sync_api import sync_playwright

    from tests.web.live import CHROMIUM, CHROMIUM_ARGS, require_chromium
    from tests.web.test_a11y import axe_violations

    source, results, html = tmp_path / "c.parquet", tmp_path / "r.parquet", tmp_path / "r.html"
    synth.write(1_000, source, synth.Options(seed=5))
    local.evaluate(source, results)
    report.write(results, html)
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # a fresh profile
        try:
            page = browser.new_page(viewport={"width": 360, "height": 800})
            page.goto(html.as_uri())
            assert axe_violations(page) == []
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            regions = page.locator("div.scroll[role=region][tabindex='0']")
            assert regions.count() >= 10 and all(regions.nth(i).get_attribute("aria-label")
                                                 for i in range(regions.count()))
        finally:
            browser.close()
