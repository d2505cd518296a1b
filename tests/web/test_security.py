"""CSRF on every form, security headers on every response, cookie flags, no stack traces."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter

from mbcnav.web.app import create_app
from mbcnav.web.routes.guide import safe_next
from mbcnav.web.security import CSP
from mbcnav.web.settings import Settings

from .conftest import Browser, TestClient

POSTS = [
    ("/about-your-cancer", {"sex": "female"}),
    ("/about-your-cancer/example", {"name": "male_hr_positive"}),
    ("/forget", {}),
    ("/guide/questions/add", {"question_id": "general_goal"}),
    ("/guide/questions/remove", {"question_id": "general_goal"}),
    ("/guide/items/add", {"text": "Mine", "kind": "question"}),
    ("/guide/items/remove", {"item_id": "x"}),
    ("/guide/items/move", {"item_id": "x", "direction": "up"}),
    ("/guide/options/toggle", {"option_id": "x"}),
    ("/guide/save", {}),
    ("/guide/save-new", {}),
    ("/g/" + "a" * 43 + "/delete", {}),
    ("/g/" + "a" * 43 + "/email", {"email": "a@example.org"}),
    ("/g/" + "a" * 43 + "/edit", {}),
    ("/email/abc/retry", {}),
]


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_every_post_without_token_is_refused(browser: Browser, url: str, data: dict[str, str]) -> None:
    for token in (None, "wrong-token"):
        form = dict(data) if token is None else {**data, "csrf_token": token}
        response = browser.client.post(url, data=form, follow_redirects=False)
        assert response.status_code == 403, url
        assert "This form has expired" in response.text


def test_htmx_header_token_is_accepted_and_checked(browser: Browser) -> None:
    ok = browser.client.post("/guide/questions/add", data={"question_id": "general_goal"},
                             headers={"X-CSRF-Token": browser.token, "HX-Request": "true"})
    assert ok.status_code == 200 and 'id="guide-panel"' in ok.text
    bad = browser.client.post("/guide/questions/add", data={"question_id": "general_goal", "csrf_token": browser.token},
                              headers={"X-CSRF-Token": "forged", "HX-Request": "true"})
    assert bad.status_code == 403


def test_token_is_bound_to_the_session(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as first, TestClient(app) as second:
        token = Browser(first).token
        Browser(second)  # has its own session and token
        response = second.post("/guide/questions/add", data={"question_id": "general_goal", "csrf_token": token},
                               follow_redirects=False)
        assert response.status_code == 403


def test_security_headers_on_pages_static_errors_and_api(browser: Browser) -> None:
    for url in ("/", "/nope", "/static/css/app.css", "/options"):
        headers = browser.client.get(url).headers
        assert headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    api = browser.client.post("/api/v1/recommend", json={"sex": "female"})
    assert api.headers["content-security-policy"] == CSP
    assert browser.client.get("/options").headers["cache-control"] == "no-store"


def test_no_inline_script_or_style_in_any_page(browser: Browser) -> None:
    browser.example()
    for url in ("/", "/about-your-cancer", "/options", "/options?view=pro", "/guide", "/treatments/chemotherapy"):
        text = browser.client.get(url).text
        assert "<script>" not in text and "<style" not in text and " style=" not in text, url
        assert " onclick=" not in text and "javascript:" not in text, url


def test_session_cookie_flags(browser: Browser, settings: Settings) -> None:
    response = browser.post("/guide/questions/add", {"question_id": "general_goal"})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie   # plain http in tests; auto mode sets Secure only over https


def test_secure_cookie_setting(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, sender_enabled=False, cookie_secure=True))
    with TestClient(app) as client:
        cookie = client.get("/about-your-cancer").headers["set-cookie"]
        assert "; Secure" in cookie
    with TestClient(create_app(Settings(data_dir=tmp_path, sender_enabled=False)), base_url="https://testserver") as c:
        response = c.get("/about-your-cancer")
        assert "; Secure" in response.headers["set-cookie"]
        assert "max-age" in response.headers["strict-transport-security"]


def test_tampered_session_is_ignored(browser: Browser) -> None:
    browser.example()
    browser.client.cookies.clear()       # replace the session cookie, not add a second one beside it
    browser.client.cookies.set("mbcnav_session", "tampered.value.here")
    assert "we first need a few answers" in browser.client.get("/options").text


def test_output_is_escaped(browser: Browser) -> None:
    browser.post("/guide/items/add", {"text": "<script>alert(1)</script>", "kind": "question"})
    text = browser.client.get("/guide").text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_server_error_page_hides_the_stack_trace(settings: Settings) -> None:
    app = create_app(settings)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("secret detail")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert response.headers["content-security-policy"] == CSP


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil", "", "evil"])
def test_next_parameter_cannot_leave_the_site(target: str) -> None:
    assert safe_next(target) == "/guide"


def test_next_parameter_keeps_local_paths() -> None:
    assert safe_next("/options?view=pro") == "/options?view=pro"
