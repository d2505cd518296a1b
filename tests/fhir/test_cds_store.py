"""CDS records shared by server processes: two app instances on one database stand for two workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from mbcnav.fhir import _cds_auth
from mbcnav.guide.db import cds_explanations, make_engine, utcnow
from mbcnav.web.app import create_app
from mbcnav.web.settings import Settings
from tests.fhir.test_cds_auth import ISS, Signer, bearer, configure
from tests.fhir.test_cds_hooks import PV, mitre01, prefetch_for, request

PATIENT = "mCODETrialMatchingPatientExample01"


@contextmanager
def workers(tmp_path: Path, count: int = 2, **settings: Any) -> Iterator[list[TestClient]]:
    """`count` apps (each with its own memory) on one data directory and database, started."""
    with ExitStack() as stack:
        clients = []
        for _ in range(count):
            app = create_app(Settings(data_dir=tmp_path, sender_enabled=False, _env_file=None, **settings))
            clients.append(stack.enter_context(TestClient(app)))
        yield clients


def card_link(client: TestClient, headers: dict[str, str] | None = None) -> str:
    body = request("patient-view", PATIENT, prefetch=prefetch_for(mitre01(), PATIENT))
    response = client.post(PV, json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    links = [link["url"] for card in response.json()["cards"] for link in card.get("links", [])]
    assert links
    return str(links[0]).removeprefix("http://testserver")


def test_a_card_link_opens_in_another_worker_and_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MBCNAV_CDS_CLIENTS", raising=False)
    with workers(tmp_path) as (first, second):
        link = card_link(first)
        page = second.get(link)
        assert page.status_code == 200 and "full explanation" in page.text
        assert "What the EHR record gave mbcnav" in page.text and "Triple-negative" not in page.text
        pdf = second.get(link + "/summary.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert second.get("/cds-services/explanations/not-a-key").status_code == 404

        engine = make_engine(f"sqlite:///{tmp_path / 'mbcnav.sqlite3'}")
        try:
            with engine.begin() as conn:
                payloads = conn.execute(select(cds_explanations.c.payload)).scalars().all()
                assert len(payloads) == 1
                # Encrypted at rest: neither the patient's id nor any profile value is readable.
                assert PATIENT.encode() not in payloads[0] and b"female" not in payloads[0]
                conn.execute(update(cds_explanations).values(expires_at=utcnow() - timedelta(seconds=1)))
        finally:
            engine.dispose()
        assert second.get(link).status_code == 404
        assert first.get(link).status_code == 404


def test_a_row_written_under_another_secret_reads_as_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MBCNAV_CDS_CLIENTS", raising=False)
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    with workers(tmp_path / "a", 1, database_url=database, secret_key="one-secret") as (first,):
        link = card_link(first)
        assert first.get(link).status_code == 200
    with workers(tmp_path / "b", 1, database_url=database, secret_key="another-secret") as (other,):
        assert other.get(link).status_code == 404


def test_a_token_replayed_to_another_worker_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer("ehr-2026")
    configure(tmp_path, monkeypatch, [{"iss": ISS, "jwks": {"keys": [signer.jwk()]}}])
    with workers(tmp_path / "data") as (first, second):
        token = signer.token(f"http://testserver{PV}")
        card_link(first, bearer(token))
        _cds_auth._POLICIES.clear()     # the other worker is another process: none of this one's memory
        body = request("patient-view", PATIENT, prefetch=prefetch_for(mitre01(), PATIENT))
        replay = second.post(PV, json=body, headers=bearer(token))
        assert replay.status_code == 401 and "replay" in replay.json()["error"]
        card_link(second, bearer(signer.token(f"http://testserver{PV}")))     # a fresh token is fine
