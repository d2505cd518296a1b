"""Durable email outbox: a guide is written to the database before the page says it is on its way.

Only the recipient is user-supplied: From, Reply-To and Subject are fixed by settings, the body is
the guide. Delivery happens in `Sender` (sender.py) on a background thread.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, delete, func, insert, select, update

from mbcnav.guide.db import outbox, rate_events, utcnow
from mbcnav.guide.export import POLICY, SUBJECT, check_header, guide_email
from mbcnav.guide.model import Guide
from mbcnav.guide.sender import Sender
from mbcnav.guide.transport import EmlFolderTransport, PermanentDeliveryError, SmtpTransport, Transport

__all__ = ["EmlFolderTransport", "InvalidRecipient", "MessageStatus", "Outbox", "PermanentDeliveryError", "Sender",
           "SmtpTransport", "Transport", "normalise_address"]

Status = Literal["queued", "sending", "sent", "failed"]


class InvalidRecipient(ValueError):
    """The address cannot be used; the message names the field and says why in plain words."""


def normalise_address(address: str, *, check_deliverability: bool = False) -> str:
    """One plain address (no name, no list), ASCII on the wire; raises InvalidRecipient."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise InvalidRecipient("email: line breaks and control characters are not allowed")
    address = address.strip()
    if not address or len(address) > 254:
        raise InvalidRecipient("email: enter one email address (at most 254 characters)")
    try:
        valid = validate_email(address, check_deliverability=check_deliverability, allow_smtputf8=False,
                               allow_display_name=False)
    except EmailNotValidError as err:
        raise InvalidRecipient(f"email: {err}") from None
    return valid.ascii_email or valid.normalized


@dataclass(frozen=True)
class MessageStatus:
    id: str
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None  # sanitised; safe to show

    @property
    def struggling(self) -> bool:
        """Not sent yet and at least one try failed: the page should say so plainly."""
        return self.status in ("queued", "sending") and self.attempts > 0 and self.last_error is not None


class Outbox:
    def __init__(self, engine: Engine, *, mail_from: str, reply_to: str | None = None,
                 check_deliverability: bool = False) -> None:
        self.engine = engine
        self.mail_from = normalise_address(mail_from)
        self.reply_to = normalise_address(reply_to) if reply_to else None
        self.check_deliverability = check_deliverability
        self.domain = self.mail_from.rsplit("@", 1)[1]

    def enqueue(self, recipient: str, guide: Guide, base_url_for_links: str | None = None,
                *, now: datetime | None = None) -> str:
        """Build the whole message now and commit it; returns its id once it is durable."""
        address = normalise_address(recipient, check_deliverability=self.check_deliverability)
        now = now or utcnow()
        message_id = secrets.token_urlsafe(16)  # 128 bits: the status link cannot be guessed
        message = guide_email(guide, address, self.mail_from, reply_to=self.reply_to, link=base_url_for_links)
        # Stable across retries, so a duplicate from the SMTP at-least-once window is recognisable.
        message["Message-ID"] = check_header("message_id", f"<{message_id}@{self.domain}>")
        message["Date"] = format_datetime(now)
        with self.engine.begin() as conn:
            conn.execute(insert(outbox).values(
                id=message_id, recipient=address, subject=SUBJECT, message=message.as_bytes(policy=POLICY),
                status="queued", attempts=0, next_attempt_at=now, created_at=now))
        return message_id

    def status(self, message_id: str) -> MessageStatus | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(outbox.c.id, outbox.c.status, outbox.c.attempts, outbox.c.created_at,
                                      outbox.c.next_attempt_at, outbox.c.sent_at, outbox.c.last_error)
                               .where(outbox.c.id == message_id)).first()
        if row is None:
            return None
        return MessageStatus(row.id, row.status, row.attempts, row.created_at, row.next_attempt_at, row.sent_at,
                             row.last_error)

    def retry(self, message_id: str, now: datetime | None = None) -> bool:
        """Failed -> queued with a fresh set of attempts; a waiting message is made due now."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            failed = conn.execute(update(outbox).where(outbox.c.id == message_id, outbox.c.status == "failed")
                                  .values(status="queued", attempts=0, next_attempt_at=now))
            if failed.rowcount == 1:
                return True
            waiting = conn.execute(update(outbox).where(outbox.c.id == message_id, outbox.c.status == "queued",
                                                        outbox.c.next_attempt_at > now)
                                   .values(next_attempt_at=now))
        return waiting.rowcount == 1

    def allow(self, key: str, limit: int, window_seconds: float, now: datetime | None = None) -> bool:
        """Record one event for `key` unless `limit` events already fall in the window.

        Stored in the database, so limits survive restarts and hold across processes. Keys are
        hashed, so no address or IP is stored. Requests racing at the same instant may each pass.
        """
        now = now or utcnow()
        since = now - timedelta(seconds=window_seconds)
        hashed = hashlib.sha256(key.encode("utf-8")).hexdigest()
        with self.engine.begin() as conn:
            conn.execute(delete(rate_events).where(rate_events.c.key == hashed, rate_events.c.at <= since))
            count = conn.execute(select(func.count()).select_from(rate_events)
                                 .where(rate_events.c.key == hashed, rate_events.c.at > since)).scalar_one()
            if count >= limit:
                return False
            conn.execute(insert(rate_events).values(key=hashed, at=now))
        return True

    def purge(self, older_than_days: float = 30, now: datetime | None = None) -> int:
        """Delete settled messages (sent or failed) and rate events older than the cutoff."""
        cutoff = (now or utcnow()) - timedelta(days=older_than_days)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(outbox).where(outbox.c.status.in_(("sent", "failed")),
                                                     outbox.c.created_at < cutoff)).rowcount
            conn.execute(delete(rate_events).where(rate_events.c.at < cutoff))
        return gone
