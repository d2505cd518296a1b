"""End to end in Debian's Chromium against a real server: form -> options -> guide -> save -> reopen
-> PDF -> email over SMTP; mail survives an SMTP outage and an app restart, delivered exactly once;
and the same journey with JavaScript off. One browser, one SMTP server and one app per module.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from pypdf import PdfReader

from .live import CHROMIUM, CHROMIUM_ARGS, AppServer, SmtpSink, require_chromium, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def app(data_dir: Path, smtp: SmtpSink) -> Iterator[AppServer]:
    server = AppServer(data_dir, {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
                                  "MAIL_FROM": "guide@example.org"}).start()
    yield server
    server.stop()


def new_page(chromium: Browser, app: AppServer, *, javascript: bool = True) -> tuple[BrowserContext, Page]:
    context = chromium.new_context(base_url=app.url, java_script_enabled=javascript, accept_downloads=True)
    context.set_default_timeout(10_000)
    return context, context.new_page()


def fill_form_with_js(page: Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="Start: about your cancer").click()
    expect(page.get_by_role("heading", name="About your cancer")).to_be_visible()
    # One step at a time: only step 1 is visible.
    expect(page.locator("#step-receptors")).to_be_hidden()
    page.check("#f-sex-0")
    page.check("#f-menopausal-status-2")
    page.get_by_role("button", name=re.compile("^Next: Hormone")).click()
    page.check("#f-tumor-er-0")
    page.check("#f-tumor-pr-0")
    page.check("#f-tumor-her2-ihc-2")         # 1+ (HER2-low)
    page.get_by_role("button", name=re.compile("^Next: Gene")).click()
    page.check("#f-tumor-pik3ca-0")
    page.get_by_role("button", name=re.compile("^Next: Where")).click()
    page.check("#f-disease-sites-0")          # bone
    page.check("#f-disease-sites-1")          # liver
    page.get_by_role("button", name=re.compile("^Next: Symptoms")).click()
    page.get_by_role("button", name=re.compile("^Next: Treatments")).click()
    page.fill("#f-history-metastatic-0-drugs-0", "Ribociclib (Kisqali)")
    page.fill("#f-history-metastatic-0-drugs-1", "Femara")
    page.select_option("#f-history-metastatic-0-outcome", "progressed")
    page.fill("#f-history-metastatic-0-months", "20")
    page.get_by_role("button", name=re.compile("^Next: Your health")).click()
    page.fill("#f-current-medications", "Paxil")
    page.get_by_role("button", name="Show my options").click()
    expect(page.get_by_role("heading", name="Your options", level=1)).to_be_visible()


def test_whole_journey_with_javascript(chromium: Browser, app: AppServer, smtp: SmtpSink, data_dir: Path) -> None:
    context, page = new_page(chromium, app)
    fill_form_with_js(page)
    expect(page.locator("#hormone-therapy")).to_be_visible()
    expect(page.locator("#path .path-now")).to_be_visible()

    # Add two suggested questions: htmx swaps the panel, the button flips, focus stays on it.
    questions = page.locator("#questions .question")
    texts = [questions.nth(i).locator(".question-text").inner_text() for i in range(2)]
    for i in range(2):
        button = questions.nth(i).get_by_role("button", name=re.compile("Add to guide"))
        button.click()
        expect(questions.nth(i).get_by_role("button", name=re.compile("Remove from guide"))).to_be_focused()
    panel = page.locator("#guide-panel")
    for text in texts:
        expect(panel).to_contain_text(text[:60])
    expect(page.locator("#nav-guide-count")).to_contain_text("2")

    # Own question, then move it to the top.
    page.get_by_role("link", name="Open your guide").click()
    page.check("#own-kind-0")
    page.fill("#own-text", "Can I keep working during treatment?")
    page.get_by_role("button", name="Add to my guide").click()
    expect(page.locator(".guide-item").nth(2)).to_contain_text("Can I keep working")
    for _ in range(2):
        page.locator(".guide-item").nth(2 if _ == 0 else 1).get_by_role("button", name=re.compile("Move up")).click()
    expect(page.locator(".guide-item").first).to_contain_text("Can I keep working")

    # Save: an unguessable link, a delete button and the expiry date.
    page.get_by_role("button", name="Save and get a link").click()
    expect(page.get_by_role("button", name="Delete this guide")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("This link works until")
    link = page.url.split("?")[0]
    assert re.search(r"/g/[A-Za-z0-9_-]{43}$", link)

    # Reopen in a fresh browser session.
    other, reopened = new_page(chromium, app)
    reopened.goto(link)
    for text in ["Can I keep working during treatment?", *texts]:
        expect(reopened.locator(".guide-items")).to_contain_text(text[:60])
    expect(reopened.get_by_role("button", name="Print")).to_be_visible()
    with reopened.expect_download() as download_info:
        reopened.get_by_role("link", name="Download PDF").click()
    pdf_text = " ".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(
        Path(download_info.value.path()).read_bytes())).pages).split())
    for text in ["Can I keep working during treatment?", *texts]:
        assert " ".join(text.split())[:50] in pdf_text
    other.close()

    # Email it: queued first ("Thank you!"), then delivered over SMTP and shown as sent.
    page.fill("#email", "patient@example.org")
    page.get_by_role("button", name="Send email").click()
    expect(page.locator("#email-status")).to_contain_text(re.compile("Thank you! Your email should arrive shortly|"
                                                                      "Your email was sent"))
    wait_until(lambda: len(smtp.to("patient@example.org")) == 1, what="the email to arrive")
    expect(page.locator("#email-status")).to_contain_text("Your email was sent")
    message = smtp.to("patient@example.org")[0]
    assert message["Subject"] == "Your Doctor Discussion Guide"
    body = " ".join(part.get_payload(decode=True).decode() for part in message.walk()
                    if part.get_content_type() == "text/plain")
    assert "Can I keep working" in body
    context.close()


def outbox_status(app: AppServer, status_path: str) -> str:
    import httpx

    html = httpx.get(app.url + status_path, timeout=5).text
    match = re.search(r'data-status="([a-z]+)"', html)
    struggling = "having trouble" in html
    return (match.group(1) if match else "?") + ("+struggling" if struggling else "")


def test_email_survives_smtp_outage_and_restart(chromium: Browser, app: AppServer, smtp: SmtpSink) -> None:
    context, page = new_page(chromium, app)
    page.goto("/guide")
    page.fill("#own-text", "Outage question")
    page.get_by_role("button", name="Add to my guide").click()
    page.get_by_role("button", name="Save and get a link").click()

    smtp.stop()
    page.fill("#email", "outage@example.org")
    page.get_by_role("button", name="Send email").click()
    status_path = page.url.replace(app.url, "")
    # The page says plainly that sending is failing, and offers to try again.
    expect(page.locator("#email-status")).to_contain_text("We are having trouble sending your email")
    expect(page.get_by_role("button", name="Try again now")).to_be_visible()
    context.close()

    app.stop()                      # the app goes down with the message still queued
    smtp.start()
    assert smtp.to("outage@example.org") == []
    app.start()                     # same data dir: nothing lost

    wait_until(lambda: len(smtp.to("outage@example.org")) >= 1, timeout=20, what="delivery after restart")
    wait_until(lambda: outbox_status(app, status_path) == "sent", what="the outbox to record the delivery")
    # Exactly once: one message, and the outbox will not send a settled message again.
    assert len(smtp.to("outage@example.org")) == 1
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids))


def test_form_and_guide_work_without_javascript(chromium: Browser, app: AppServer) -> None:
    context, page = new_page(chromium, app, javascript=False)
    page.goto("/about-your-cancer")
    # Every step is a visible section of one page.
    for step in ("you", "receptors", "biomarkers", "spread", "symptoms", "history", "health"):
        expect(page.locator(f"#step-{step}")).to_be_visible()
    page.check("#f-tumor-er-0")
    page.fill("#f-history-metastatic-0-drugs-0", "Notadrug")
    page.get_by_role("button", name="Show my options").click()
    # Errors: a summary linked to the fields, and messages next to them.
    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("Please check 2 answers")
    expect(page.locator("#f-sex-error0")).to_be_visible()
    expect(page.locator("#f-history-metastatic-0-drugs-error0")).to_contain_text("Notadrug")
    summary.get_by_role("link", name=re.compile("Are you a woman or a man")).click()
    assert page.url.endswith("#f-sex-0")
    page.check("#f-sex-0")
    page.fill("#f-history-metastatic-0-drugs-0", "Letrozole (Femara)")
    page.select_option("#f-history-metastatic-0-outcome", "progressed")
    page.get_by_role("button", name="Show my options").click()
    expect(page.get_by_role("heading", name="Your options", level=1)).to_be_visible()

    first = page.locator("#questions .question").first
    text = first.locator(".question-text").inner_text()
    first.get_by_role("button", name=re.compile("Add to guide")).click()
    assert "#qc-" in page.url                                   # back at the same question
    expect(page.locator("#guide-panel")).to_contain_text(text[:60])
    page.get_by_role("link", name="Open your guide").click()
    page.fill("#own-text", "My own question")
    page.get_by_role("button", name="Add to my guide").click()
    page.locator(".guide-item").nth(1).get_by_role("button", name=re.compile("Move up")).click()
    expect(page.locator(".guide-item").first).to_contain_text("My own question")
    page.get_by_role("button", name="Save and get a link").click()
    expect(page.locator(".guide-items")).to_contain_text("My own question")
    expect(page.get_by_role("button", name="Print")).to_be_hidden()       # needs JavaScript
    expect(page.locator(".js-off-only")).to_be_visible()                  # so the page says how
    page.get_by_role("button", name="Delete this guide").click()
    expect(page.get_by_role("heading", name="Your guide was deleted")).to_be_visible()
    context.close()
