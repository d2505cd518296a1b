"""The Doctor Discussion Guide UI: add/remove, own questions and notes, reorder, save, reopen, delete,
PDF, email (outbox) with status and retry, rate limits."""

from __future__ import annotations

import io
import re
import secrets
import time
from pathlib import Path

from pypdf import PdfReader

from mbcnav.knowledge.loader import knowledge
from mbcnav.web.app import create_app
from mbcnav.web.settings import Settings

from .conftest import Browser, TestClient


def guide_texts(browser: Browser) -> list[str]:
    html = browser.client.get("/guide").text
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r'<p class="item-text"[^>]*>(.*?)</p>', html, re.S)]


def item_ids(browser: Browser) -> list[str]:
    return re.findall(r'<li class="guide-item[^"]*" id="item-([^"]+)"', browser.client.get("/guide").text)


def question(qid: str) -> str:
    return next(q.text for q in knowledge().questions if q.id == qid)


def test_add_and_remove_a_question_without_javascript(browser: Browser) -> None:
    browser.example()
    response = browser.post("/guide/questions/add", {"question_id": "general_goal", "next": "/options"})
    assert response.status_code == 303 and response.headers["location"] == "/options#qc-general_goal"
    html = browser.client.get("/options").text
    control = html[html.index('id="qc-general_goal"'):]
    assert "In your guide" in control[:400] and 'formaction="/guide/questions/remove"' in control[:600]
    assert guide_texts(browser) == [question("general_goal")]
    browser.post("/guide/questions/remove", {"question_id": "general_goal", "next": "/options"})
    assert guide_texts(browser) == []


def test_htmx_add_returns_panel_toggled_control_and_announcement(browser: Browser) -> None:
    response = browser.post("/guide/questions/add", {"question_id": "general_goal", "ui": "panel"}, htmx=True)
    text = response.text
    assert text.lstrip().startswith('<aside class="guide-panel')
    assert 'id="qc-general_goal" hx-swap-oob="true"' in text and "Remove from guide" in text
    assert '<div id="announce" hx-swap-oob="innerHTML">Added to your guide.</div>' in text
    assert 'id="nav-guide-count" hx-swap-oob="true">1<' in text


def test_adding_twice_keeps_one_copy_and_unknown_ids_are_404(browser: Browser) -> None:
    for _ in range(2):
        browser.post("/guide/questions/add", {"question_id": "general_goal"})
    assert len(guide_texts(browser)) == 1
    assert browser.post("/guide/questions/add", {"question_id": "no_such_question"}).status_code == 404


def test_own_questions_notes_and_reordering(browser: Browser) -> None:
    browser.post("/guide/questions/add", {"question_id": "general_goal"})
    browser.post("/guide/items/add", {"kind": "question", "text": "Can I keep working?"})
    browser.post("/guide/items/add", {"kind": "note", "text": "Bring my medicine list"})
    assert guide_texts(browser) == [question("general_goal"), "Can I keep working?", "Note: Bring my medicine list"]
    first, second, third = item_ids(browser)
    browser.post("/guide/items/move", {"item_id": third, "direction": "up"})
    browser.post("/guide/items/move", {"item_id": third, "direction": "up"})
    browser.post("/guide/items/move", {"item_id": third, "direction": "up"})   # already first: no change
    assert item_ids(browser) == [third, first, second]
    browser.post("/guide/items/move", {"item_id": first, "direction": "down"})
    assert item_ids(browser) == [third, second, first]
    browser.post("/guide/items/remove", {"item_id": second})
    assert item_ids(browser) == [third, first]


def test_empty_own_question_shows_a_message_next_to_the_field(browser: Browser) -> None:
    response = browser.post("/guide/items/add", {"kind": "question", "text": "   "})
    assert response.status_code == 422
    assert 'id="own-text-error"' in response.text and 'aria-invalid="true"' in response.text


def test_editor_htmx_responses_swap_the_editor(browser: Browser) -> None:
    response = browser.post("/guide/items/add", {"kind": "question", "text": "Mine"}, htmx=True)
    assert response.text.lstrip().startswith('<div id="guide-editor"')
    assert "Added to your guide." in response.text


def test_guide_that_would_not_fit_in_a_cookie_is_refused_kindly(browser: Browser) -> None:
    for _ in range(10):
        # Random text: the cookie is compressed, so repeated letters would never fill it.
        response = browser.post("/guide/items/add", {"kind": "note", "text": secrets.token_urlsafe(600)})
        if response.status_code == 422:
            assert "Your guide is full" in response.text
            break
    else:
        raise AssertionError("the cookie limit was never reached")
    assert browser.client.get("/guide").status_code == 200


def saved_link(browser: Browser) -> str:
    response = browser.post("/guide/save")
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/g/[A-Za-z0-9_-]{43}\?saved=1", location)
    return location.split("?")[0]


def test_save_reopen_pdf_update_and_delete(browser: Browser, settings: Settings) -> None:
    browser.example()
    browser.post("/guide/questions/add", {"question_id": "general_goal"})
    browser.post("/guide/items/add", {"kind": "question", "text": "Can I travel in June?"})
    rec_option = re.search(r'name="option_id" value="([^"]+)"', browser.client.get("/options").text)
    assert rec_option
    browser.post("/guide/options/toggle", {"option_id": rec_option.group(1)})
    link = saved_link(browser)
    # Reopened from another browser: the link alone is the key.
    with TestClient(create_app(settings)) as other:
        page = other.get(link).text
        assert "Can I travel in June?" in page and question("general_goal") in page
        assert "Delete this guide" in page and "This link works until" in page
        assert "Treatment options you chose to include" in page
        pdf = other.get(link + "/pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "Can I travel in June?" in " ".join(text.split())
    # Saving again from the same session keeps the same link.
    browser.post("/guide/items/add", {"kind": "note", "text": "Added later"})
    again = browser.post("/guide/save")
    assert again.headers["location"] == link + "?updated=1"
    assert "Added later" in browser.client.get(link).text
    # Delete: gone for everyone.
    assert browser.post(link + "/delete").headers["location"] == "/guide/deleted"
    assert browser.client.get(link).status_code == 404
    assert "Save and get a link" in browser.client.get("/guide").text


def test_open_a_saved_guide_in_the_editor(browser: Browser, settings: Settings) -> None:
    browser.post("/guide/items/add", {"kind": "question", "text": "First"})
    link = saved_link(browser)
    with TestClient(create_app(settings)) as other_client:
        other = Browser(other_client)
        assert other.post(link + "/edit").headers["location"] == "/guide"
        assert guide_texts(other) == ["First"]
        other.post("/guide/items/add", {"kind": "question", "text": "Second"})
        assert other.post("/guide/save").headers["location"] == link + "?updated=1"
    assert "Second" in browser.client.get(link).text


def test_session_guide_pdf(browser: Browser) -> None:
    browser.post("/guide/items/add", {"kind": "question", "text": "Is this PDF right?"})
    response = browser.client.get("/guide/pdf")
    assert response.headers["content-disposition"].startswith("attachment")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert "Is this PDF right?" in text


def test_email_is_queued_shown_and_delivered_to_the_mail_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sender_enabled=True, sender_poll_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        browser = Browser(client)
        browser.post("/guide/items/add", {"kind": "question", "text": "Email me"})
        link = saved_link(browser)
        response = browser.post(link + "/email", {"email": "patient@example.org"}, follow=True)
        assert "Thank you! Your email should arrive shortly." in response.text or "Your email was sent" in response.text
        status_url = str(response.url).replace("http://testserver", "")
        assert re.fullmatch(r"/email/[A-Za-z0-9_-]{22}", status_url)
        deadline = time.monotonic() + 10
        while "Your email was sent" not in client.get(status_url).text:
            assert time.monotonic() < deadline, "email not sent within 10 s"
            time.sleep(0.05)
        mails = list((tmp_path / "mail").glob("*.eml"))
        assert len(mails) == 1 and b"patient@example.org" in mails[0].read_bytes()


def test_email_address_is_validated_next_to_the_field(browser: Browser) -> None:
    browser.post("/guide/items/add", {"kind": "question", "text": "x"})
    link = saved_link(browser)
    response = browser.post(link + "/email", {"email": "not an address"})
    assert response.status_code == 422 and 'id="email-error"' in response.text
    assert 'value="not an address"' in response.text


def test_email_rate_limit_per_address_and_client(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sender_enabled=False, email_limit_per_address=2, email_limit_per_client=4)
    with TestClient(create_app(settings)) as client:
        browser = Browser(client)
        browser.post("/guide/items/add", {"kind": "question", "text": "x"})
        link = saved_link(browser)
        # Every attempt counts for the client, including one refused for its address.
        codes = [browser.post(link + "/email", {"email": "a@example.org"}).status_code for _ in range(3)]
        assert codes == [303, 303, 429]
        assert browser.post(link + "/email", {"email": "b@example.org"}).status_code == 303
        limited = browser.post(link + "/email", {"email": "c@example.org"})
        assert limited.status_code == 429 and "several emails" in limited.text


def test_email_status_retry_and_htmx_fragment(browser: Browser) -> None:
    browser.post("/guide/items/add", {"kind": "question", "text": "x"})
    link = saved_link(browser)
    status_url = browser.post(link + "/email", {"email": "a@example.org"}).headers["location"]
    fragment = browser.client.get(status_url, headers={"HX-Request": "true"}).text
    assert fragment.lstrip().startswith('<div id="email-status"') and 'hx-trigger="every 2s"' in fragment
    unchanged = browser.client.get(status_url + "?shown=queued", headers={"HX-Request": "true"})
    assert unchanged.status_code == 204
    retry = browser.post(status_url + "/retry")
    assert retry.status_code == 303 and retry.headers["location"] == status_url
    assert browser.client.get("/email/" + "x" * 22).status_code == 404
