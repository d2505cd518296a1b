"""Fixtures for the web app's unit tests: a real app on a temp data dir, driven by TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from mbcnav.web.app import create_app
from mbcnav.web.settings import Settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


class Browser:
    """A TestClient with the session's CSRF token at hand, like a browser filling forms."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = csrf_of(client.get("/about-your-cancer").text)

    def post(self, url: str, data: dict[str, str | list[str]] | None = None, *, htmx: bool = False,
             follow: bool = False) -> httpx.Response:
        headers = {"HX-Request": "true"} if htmx else {}
        return self.client.post(url, data={"csrf_token": self.token, **(data or {})}, headers=headers,
                                follow_redirects=follow)

    def example(self, name: str = "hr_positive_second_line_esr1_pik3ca") -> None:
        response = self.client.post("/about-your-cancer/example", data={"csrf_token": self.token, "name": name},
                                    follow_redirects=False)
        assert response.status_code == 303


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("web"), sender_enabled=False,
                    _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def shared_client(settings: Settings) -> Iterator[TestClient]:
    # One app per module (start-up runs the migrations); each test gets a fresh browser session.
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    shared_client.cookies.clear()
    return shared_client


@pytest.fixture
def browser(client: TestClient) -> Browser:
    return Browser(client)
