"""What the routes share: settings, renderer, caches, the guide store, the outbox and its sender.

Built once in `create_app`; the database and sender start in the app's lifespan, so importing or
creating the app has no side effects until it serves.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from markupsafe import Markup
from sqlalchemy import Engine

from mbcnav.guide import EmlFolderTransport, GuideStore, Outbox, Sender, SmtpTransport, make_engine, migrate
from mbcnav.guide.transport import Transport
from mbcnav.knowledge.loader import knowledge
from mbcnav.web import guide_session
from mbcnav.web.optionspage import OptionsPage
from mbcnav.web.sessions import SessionCodec
from mbcnav.web.settings import Settings
from mbcnav.web.slots import Lru
from mbcnav.web.templating import Renderer
from mbcnav.web.view import ViewCache

log = logging.getLogger("mbcnav.web")


@dataclass
class Services:
    settings: Settings
    codec: SessionCodec
    renderer: Renderer = field(default_factory=Renderer)
    views: ViewCache = field(default_factory=ViewCache)
    options_page: OptionsPage = field(init=False)
    # Guide panel HTML and the question ids in the guide, by the guide rows' JSON (see guide_panel).
    panels: Lru[str, tuple[Markup, frozenset[str]]] = field(default_factory=lambda: Lru(1024))
    engine: Engine | None = None
    store: GuideStore | None = None
    outbox: Outbox | None = None
    sender: Sender | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.options_page = OptionsPage(self.renderer)

    def guide_panel(self, request: Request) -> tuple[Markup, frozenset[str]]:
        """The session guide's side panel and the ids of the suggested questions already in it.

        Both depend only on the guide's rows in the session, so they are cached by those rows
        instead of validating the guide and rendering the panel on every options page view.
        """
        rows = request.session.get(guide_session.KEY, [])

        def make() -> tuple[Markup, frozenset[str]]:
            guide = guide_session.load(request.session)
            panel = Markup(self.renderer.text(request, "_guide_panel.html", guide=guide))
            return panel, guide_session.origins(guide)

        return self.panels.get(json.dumps(rows, separators=(",", ":")), make)

    def start(self) -> None:
        """Migrate the database, then start the background sender (lifespan startup)."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.resolved_database_url())
        migrate(self.engine)
        self.store = GuideStore(self.engine)
        self.outbox = Outbox(self.engine, mail_from=settings.mail_from)
        self.sender = Sender(self.engine, self.transport(), base_delay_seconds=settings.sender_base_delay_seconds,
                             max_attempts=settings.sender_max_attempts)
        # Load the knowledge base now, not on the first visitor's request, and keep the long-lived
        # objects (knowledge, templates, database engine) out of the collector's scans: fewer and
        # shorter collection pauses mean a lower tail latency under load.
        knowledge()
        gc.collect()
        gc.freeze()
        if settings.sender_enabled:
            self._stop.clear()
            self._thread = threading.Thread(target=self.sender.run_forever, name="mbcnav-mail-sender",
                                            args=(self._stop, settings.sender_poll_seconds), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the sender between rounds (lifespan shutdown); a send in progress finishes first."""
        self._stop.set()
        if self.sender is not None:
            self.sender.wake()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.smtp_timeout + 5)
            self._thread = None
        if self.engine is not None:
            self.engine.dispose()

    def transport(self) -> Transport:
        s = self.settings
        if s.smtp_host:
            return SmtpTransport(s.smtp_host, s.smtp_port, mail_from=s.mail_from, username=s.smtp_username,
                                 password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                                 starttls=s.smtp_starttls, use_ssl=s.smtp_ssl, timeout=s.smtp_timeout)
        return EmlFolderTransport(s.resolved_mail_dir())

    def wake_sender(self) -> None:
        if self.sender is not None:
            self.sender.wake()


async def services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a costly hop.
    found: Any = request.app.state.services
    assert isinstance(found, Services)
    return found
