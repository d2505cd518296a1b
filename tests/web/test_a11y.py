"""Accessibility in Chromium: axe-core finds no serious or critical violation on any page; the pages
fit a 360 px phone and 200 % zoom without sideways scrolling; the skip link comes first.

axe-core is vendored in tests/web/vendor (test-only) and evaluated in the page, which the CSP
allows because it is not a <script> element the page loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .live import CHROMIUM, CHROMIUM_ARGS, AppServer, require_chromium

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
STATIC_PAGES = ["/", "/about-your-cancer", "/treatments", "/treatments/hormone-therapy",
                "/treatments/palliative-and-supportive-care", "/medicines", "/medicines/trastuzumab_deruxtecan",
                "/medicines/ribociclib?view=pro", "/sources", "/privacy", "/no-such-page", "/guide/deleted"]
STATEFUL_PAGES = ["form-errors", "options", "options-pro", "guide", "saved", "email-status"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("a11y")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(app: AppServer) -> Iterator[Page]:
    require_chromium()
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=app.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        yield context.new_page()
        browser.close()


@pytest.fixture(scope="module")
def urls(page: Page) -> dict[str, str]:
    """Build the state the stateful pages need, once: a profile, a guide, a saved link, an email."""
    page.goto("/")
    page.select_option("#example", "her2_positive_first_line")
    page.get_by_role("button", name="Show this example").click()
    page.locator("#questions .question").first.get_by_role("button", name=re.compile("Add to guide")).click()
    page.goto("/guide")
    page.fill("#own-text", "A question of my own")
    page.get_by_role("button", name="Add to my guide").click()
    expect(page.locator(".guide-item")).to_have_count(2)
    page.get_by_role("button", name="Save and get a link").click()
    saved = page.url.split("?")[0]
    page.fill("#email", "reader@example.org")
    page.get_by_role("button", name="Send email").click()
    return {"options": "/options", "options-pro": "/options?view=pro", "guide": "/guide",
            "saved": saved, "email-status": page.url}


def open_page(page: Page, urls: dict[str, str], name: str) -> None:
    if name == "form-errors":
        page.goto("/about-your-cancer")
        page.fill("#f-age", "abc")
        page.evaluate("document.querySelector('form[data-stepper]').requestSubmit()")  # from step 1
        expect(page.locator("#error-summary")).to_be_visible()
    else:
        page.goto(urls.get(name, name))


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE)
    result: list[dict[str, Any]] = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return result


@pytest.mark.parametrize("name", STATIC_PAGES + STATEFUL_PAGES)
def test_no_serious_or_critical_axe_violations(page: Page, urls: dict[str, str], name: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    open_page(page, urls, name)
    bad = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
    assert not bad, bad


@pytest.mark.parametrize("width", [360, 640])   # a phone, and 1280 px at 200 % zoom
@pytest.mark.parametrize("name", ["/", "/about-your-cancer", "options-pro", "guide", "saved", "/sources",
                                  "/medicines/ribociclib?view=pro"])
def test_fits_narrow_screens_and_zoom_without_sideways_scrolling(page: Page, urls: dict[str, str], name: str,
                                                                 width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    open_page(page, urls, name)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{name} is {overflow} px wide at {width} px"


def test_skip_link_is_first_and_moves_focus_to_main(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/treatments")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_form_steps_are_keyboard_operable(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/about-your-cancer")
    page.focus("#f-sex-0")
    page.keyboard.press("Space")
    next_button = page.get_by_role("button", name=re.compile("^Next: Hormone"))
    next_button.focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "step-receptors-title"
    expect(page.locator("#step-you")).to_be_hidden()
