"""Background delivery of the outbox: claim with a lease, send, mark sent exactly once.

Delivery is at-least-once. The row moves to `sent` exactly once (the update is guarded by the
lease owner), but SMTP has a window no database can close: the server accepts DATA, then the
process dies before the `sent` commit. That message is sent again when its lease expires; the
copy carries the same Message-ID, so mail systems and people can recognise it. The window is kept
small by committing `sent` right after DATA is accepted and by a lease far longer than one send.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, or_, select, update

from mbcnav.guide.db import outbox, utcnow
from mbcnav.guide.transport import PermanentDeliveryError, Transport

log = logging.getLogger("mbcnav.guide.sender")
_ADDRESS = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+")


@dataclass(frozen=True)
class _Claimed:
    id: str
    recipient: str
    message: bytes
    attempts: int


class Sender:
    def __init__(self, engine: Engine, transport: Transport, *, max_attempts: int = 10,
                 base_delay_seconds: float = 5.0, max_delay_seconds: float = 900.0,
                 lease_seconds: float = 600.0, batch_size: int = 20,
                 clock: Callable[[], datetime] = utcnow, name: str | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts: must be at least 1")
        self.engine, self.transport = engine, transport
        self.max_attempts, self.batch_size = max_attempts, batch_size
        self.base_delay, self.max_delay = base_delay_seconds, max_delay_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.name = name or secrets.token_hex(8)  # lease owner: only the claimant may settle a message
        self._wake = threading.Event()

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failed try: base * 2^(attempts-1), capped."""
        return timedelta(seconds=min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))

    def run_once(self, now: datetime | None = None) -> int:
        """Try every due message once; returns how many were delivered."""
        at = now or self.clock()
        due = (select(outbox.c.id).where(_due(at)).order_by(outbox.c.next_attempt_at, outbox.c.id)
               .limit(self.batch_size))
        with self.engine.connect() as conn:
            ids = list(conn.execute(due).scalars())
        delivered = 0
        for message_id in ids:
            claimed = self._claim(message_id, now or self.clock())
            if claimed is not None and self._deliver(claimed, now):
                delivered += 1
        return delivered

    def run_forever(self, stop_event: threading.Event, poll_seconds: float = 2.0) -> None:
        """Loop for a background thread. Set `stop_event`, then call `wake()`, to stop at once."""
        while not stop_event.is_set():
            self._wake.clear()  # before the round, so a wake() during it is not lost
            delivered = 0
            try:
                delivered = self.run_once()
            except Exception as err:  # a database hiccup must not end the thread; the next round retries
                log.warning("outbox round failed: %s", type(err).__name__)
            if delivered < self.batch_size:  # a full batch may mean more are due: go again at once
                self._wake.wait(poll_seconds)

    def wake(self) -> None:
        """Start the next round now (e.g. right after enqueue) instead of after the poll interval."""
        self._wake.set()

    def _claim(self, message_id: str, now: datetime) -> _Claimed | None:
        # Compare-and-set: of any number of senders, exactly one sees rowcount 1.
        with self.engine.begin() as conn:
            result = conn.execute(
                update(outbox).where(outbox.c.id == message_id, _due(now))
                .values(status="sending", lease_until=now + self.lease, lease_owner=self.name,
                        attempts=outbox.c.attempts + 1))
            if result.rowcount != 1:
                return None
            row = conn.execute(select(outbox.c.recipient, outbox.c.message, outbox.c.attempts)
                               .where(outbox.c.id == message_id)).one()
        claimed = _Claimed(message_id, row.recipient, row.message, row.attempts)
        if claimed.attempts > self.max_attempts:
            # Only reachable when earlier senders died mid-send: stop, rather than crash-loop on it.
            self._settle(claimed, now, "failed", now, "delivery was interrupted too many times")
            return None
        return claimed

    def _deliver(self, claimed: _Claimed, now: datetime | None) -> bool:
        try:
            self.transport.send(claimed.message, claimed.recipient, claimed.id)
        except PermanentDeliveryError as err:
            self._settle(claimed, now or self.clock(), "failed", None, _clean(err, claimed.recipient))
            log.info("message %s failed for good after %d attempt(s)", claimed.id, claimed.attempts)
            return False
        except Exception as err:
            at = now or self.clock()
            final = claimed.attempts >= self.max_attempts
            self._settle(claimed, at, "failed" if final else "queued",
                         None if final else at + self.backoff(claimed.attempts), _clean(err, claimed.recipient))
            log.info("message %s attempt %d failed (%s)%s", claimed.id, claimed.attempts, type(err).__name__,
                     "; giving up" if final else "; will retry")
            return False
        # Right after the server accepted DATA: the shorter this gap, the smaller the duplicate window.
        if not self._settle(claimed, now or self.clock(), "sent", None, None):
            log.warning("message %s: lease lost before it was marked sent; another sender may repeat it",
                        claimed.id)
        return True

    def _settle(self, claimed: _Claimed, now: datetime, status: str, next_at: datetime | None,
                error: str | None) -> bool:
        values: dict[str, object] = {"status": status, "lease_until": None, "lease_owner": None}
        if status == "sent":
            # Sent mail keeps no content: the guide and address were only needed to deliver it.
            values.update(sent_at=now, message=b"", recipient="", last_error=None)
        else:
            values.update(last_error=error)
            if next_at is not None:
                values.update(next_attempt_at=next_at)
        with self.engine.begin() as conn:
            result = conn.execute(update(outbox).where(outbox.c.id == claimed.id, outbox.c.status == "sending",
                                                       outbox.c.lease_owner == self.name).values(**values))
        return result.rowcount == 1


def _due(now: datetime) -> ColumnElement[bool]:
    # Queued and due, or claimed by a sender whose lease ran out (it died mid-send).
    return or_(and_(outbox.c.status == "queued", outbox.c.next_attempt_at <= now),
               and_(outbox.c.status == "sending", outbox.c.lease_until < now))


def _clean(err: BaseException, recipient: str) -> str:
    """An error text safe to store and show: no addresses, no message content, bounded."""
    text = f"{type(err).__name__}: {err}"
    if recipient:
        text = text.replace(recipient, "<recipient>")
    text = _ADDRESS.sub("<address>", text)
    return " ".join(text.split())[:300]
