"""Fixtures for the guide tests: a migrated SQLite database and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine

from mbcnav.guide.db import make_engine, migrate, sqlite_url
from mbcnav.guide.model import Guide
from mbcnav.guide.sender import Sender


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs a throwaway PostgreSQL cluster (initdb/pg_ctl)")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "guide.db"
    migrate(sqlite_url(path))  # the migration engine is disposed, so the WAL is folded into the file
    return path


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: Path) -> str:
    """A fresh, migrated SQLite database per test (a copy: running Alembic each time is slow)."""
    path = tmp_path / "guide.db"
    shutil.copyfile(migrated_template, path)
    return sqlite_url(path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def guide() -> Guide:
    g = Guide(knowledge_version="2026.11.0")
    g.add_question("What is the main goal of my treatment?", "general_goal")
    g.add_note("Bring the scan results.")
    g.add_question("Can I keep working during treatment?")
    return g


class Collector:
    """aiosmtpd handler keeping every accepted message; can refuse chosen recipients for good."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.envelopes: list[Envelope] = []
        self.refuse = refuse
        self.arrived = threading.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 <" + address + ">: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.arrived.set()
        return "250 Message accepted for delivery"

    def messages(self) -> list[Message]:
        return [message_from_bytes(bytes(e.original_content or b"")) for e in self.envelopes]

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages()]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, handler: Collector) -> None:
        self.handler = handler
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(Collector(refuse=frozenset({"nobody@example.com"})))
    server.start()
    yield server
    server.stop()


def race(senders: list[Sender], now: datetime) -> list[int]:
    """Start every sender's run_once at the same moment; return how many each delivered."""
    start = threading.Barrier(len(senders))
    counts: list[int] = []

    def work(sender: Sender) -> None:
        start.wait()
        counts.append(sender.run_once(now=now))

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return counts
