"""Every page renders, says it is information and not advice, and shows the knowledge version."""

from __future__ import annotations

import pytest

from mbcnav.knowledge.loader import knowledge
from mbcnav.web.content import categories

from .conftest import Browser

PAGES = ["/", "/about-your-cancer", "/options", "/treatments", "/medicines", "/sources", "/privacy", "/guide",
         *(f"/treatments/{c.slug}" for c in categories()), "/medicines/ribociclib", "/medicines/ribociclib?view=pro",
         "/medicines/bevacizumab"]


@pytest.mark.parametrize("url", PAGES)
def test_page_renders_with_disclaimer_and_version(browser: Browser, url: str) -> None:
    response = browser.client.get(url)
    assert response.status_code == 200, url
    text = response.text
    assert "Information, not medical advice" in text
    assert knowledge().version in text and "last reviewed" in text
    assert 'href="#main"' in text and 'id="main"' in text   # skip link and its target
    assert '<html lang="en">' in text


def test_every_drug_has_a_page(browser: Browser) -> None:
    for drug_id in knowledge().drugs:
        assert browser.client.get(f"/medicines/{drug_id}").status_code == 200, drug_id


def test_sources_page_lists_every_source_with_review_date(browser: Browser) -> None:
    text = browser.client.get("/sources").text
    for source in knowledge().sources.values():
        assert f'id="src-{source.id}"' in text
    assert text.count("Checked ") >= len(knowledge().sources)


def test_home_has_start_button_and_browse_by_category(browser: Browser) -> None:
    text = browser.client.get("/").text
    assert 'href="/about-your-cancer"' in text
    for category in categories():
        assert f'href="/treatments/{category.slug}"' in text


def test_options_without_profile_invites_to_start(browser: Browser) -> None:
    text = browser.client.get("/options").text
    assert "we first need a few answers" in text


def test_unknown_page_is_a_friendly_404(browser: Browser) -> None:
    for url in ("/nope", "/medicines/not_a_drug", "/treatments/nope", "/g/" + "a" * 43):
        response = browser.client.get(url)
        assert response.status_code == 404
        assert "Page not found" in response.text and "Traceback" not in response.text


def test_static_assets_are_served_with_licence(browser: Browser) -> None:
    for path in ("/static/css/app.css", "/static/css/print.css", "/static/js/app.js",
                 "/static/vendor/htmx.min.js", "/static/vendor/htmx.LICENSE.txt"):
        response = browser.client.get(path)
        assert response.status_code == 200, path
        assert "max-age" in response.headers["cache-control"]


def test_healthz(browser: Browser) -> None:
    assert browser.client.get("/healthz").text == "ok"


def test_privacy_page_offers_to_forget(browser: Browser) -> None:
    browser.example()
    assert "Why it fits you" in browser.client.get("/options").text
    response = browser.post("/forget")
    assert response.status_code == 303
    assert "we first need a few answers" in browser.client.get("/options").text
