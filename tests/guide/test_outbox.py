"""The outbox against a real SMTP server (aiosmtpd on 127.0.0.1). Time is driven by `now`, never slept."""

from __future__ import annotations

import io
import logging
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select

from mbcnav.guide.db import make_engine, outbox, rate_events
from mbcnav.guide.export import SUBJECT, HeaderInjectionError, guide_email
from mbcnav.guide.model import Guide
from mbcnav.guide.outbox import EmlFolderTransport, InvalidRecipient, MessageStatus, Outbox, Sender, SmtpTransport
from tests.guide.conftest import SmtpServer, race

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FROM = "guide@mbcnav.example.org"
TO = "reader@example.com"


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing catches it."""


class DiesBeforeSending:
    def send(self, message: bytes, recipient: str, message_id: str) -> None:
        raise Crash


class DiesAfterServerAccepted:
    def __init__(self, inner: SmtpTransport) -> None:
        self.inner = inner

    def send(self, message: bytes, recipient: str, message_id: str) -> None:
        self.inner.send(message, recipient, message_id)
        raise Crash


def smtp_sender(engine: Engine, server: SmtpServer, **kwargs: Any) -> Sender:
    return Sender(engine, SmtpTransport("127.0.0.1", server.port, mail_from=FROM, timeout=5), **kwargs)


def row(engine: Engine, message_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(outbox).where(outbox.c.id == message_id)).one()._mapping)


def status_of(box: Outbox, message_id: str) -> MessageStatus:
    status = box.status(message_id)
    assert status is not None
    return status


def test_enqueue_commits_the_whole_message_before_returning(db_url: str, engine: Engine, guide: Guide) -> None:
    message_id = Outbox(engine, mail_from=FROM, reply_to="help@mbcnav.example.org").enqueue(
        " Reader@Example.com ", guide, "https://mbcnav.example.org/", now=T0)
    engine.dispose()  # another connection (as after a restart) must see it committed
    other = make_engine(db_url)
    stored = row(other, message_id)
    other.dispose()
    assert stored["status"] == "queued" and stored["attempts"] == 0 and stored["next_attempt_at"] == T0
    assert stored["recipient"] == "Reader@example.com"  # domain lower-cased; local part kept as typed
    assert len(message_id) == 22  # token_urlsafe(16): 128 bits
    message = BytesParser(policy=default).parsebytes(bytes(stored["message"]))
    assert message["Subject"] == SUBJECT and message["From"] == FROM and message["To"] == "Reader@example.com"
    assert message["Reply-To"] == "help@mbcnav.example.org"
    assert message["Message-ID"] == f"<{message_id}@mbcnav.example.org>"
    assert message["Cc"] is None and message["Bcc"] is None
    assert max(bytes(stored["message"])) < 128  # 7-bit clean


def test_delivered_once_and_content_dropped(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    sender = smtp_sender(engine, smtp)
    assert sender.run_once(now=T0) == 1
    assert sender.run_once(now=T0 + timedelta(hours=1)) == 0
    [envelope] = smtp.handler.envelopes
    assert envelope.mail_from == FROM and envelope.rcpt_tos == [TO]
    assert smtp.handler.message_ids() == [f"<{message_id}@mbcnav.example.org>"]
    status = status_of(box, message_id)
    assert status.status == "sent" and status.sent_at == T0 and status.attempts == 1
    stored = row(engine, message_id)
    assert stored["message"] == b"" and stored["recipient"] == ""  # sent mail keeps no content


def test_server_down_keeps_it_queued_then_delivers_once(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    sender = smtp_sender(engine, smtp)
    smtp.stop()
    assert sender.run_once(now=T0) == 0
    status = status_of(box, message_id)
    assert status.status == "queued" and status.attempts == 1
    assert status.next_attempt_at == T0 + timedelta(seconds=5) and status.struggling
    assert status.last_error and "Connection" in status.last_error and TO not in status.last_error
    assert sender.run_once(now=T0 + timedelta(seconds=4)) == 0  # not due yet: no new attempt
    assert status_of(box, message_id).attempts == 1
    assert sender.run_once(now=T0 + timedelta(seconds=5)) == 0  # due, server still down
    assert status_of(box, message_id).next_attempt_at == T0 + timedelta(seconds=15)
    smtp.start()
    assert sender.run_once(now=T0 + timedelta(seconds=15)) == 1
    assert sender.run_once(now=T0 + timedelta(days=1)) == 0
    assert len(smtp.handler.envelopes) == 1
    assert status_of(box, message_id).status == "sent"


def test_gives_up_after_max_attempts_and_can_be_retried(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    sender = smtp_sender(engine, smtp, max_attempts=3, base_delay_seconds=10, max_delay_seconds=15)
    smtp.stop()
    assert [sender.backoff(n).total_seconds() for n in (1, 2, 3)] == [10, 15, 15]
    now = T0
    for _ in range(3):
        sender.run_once(now=now)
        now += timedelta(minutes=1)
    status = status_of(box, message_id)
    assert status.status == "failed" and status.attempts == 3 and not status.struggling
    assert sender.run_once(now=now + timedelta(days=1)) == 0  # failed stays failed
    assert box.retry(message_id, now=now)
    assert not box.retry(message_id, now=now)  # already queued and due
    smtp.start()
    assert sender.run_once(now=now) == 1
    assert len(smtp.handler.envelopes) == 1


def test_retry_makes_a_waiting_message_due_now(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    sender = smtp_sender(engine, smtp)
    smtp.stop()
    sender.run_once(now=T0)
    smtp.start()
    assert sender.run_once(now=T0 + timedelta(seconds=1)) == 0
    assert box.retry(message_id, now=T0 + timedelta(seconds=1))
    assert sender.run_once(now=T0 + timedelta(seconds=1)) == 1
    assert box.status("no-such-id") is None and not box.retry("no-such-id")


def test_refused_recipient_fails_at_once_without_naming_it(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue("nobody@example.com", guide, now=T0)
    assert smtp_sender(engine, smtp).run_once(now=T0) == 0
    status = status_of(box, message_id)
    assert status.status == "failed" and status.attempts == 1
    assert status.last_error is not None and "550" in status.last_error and "nobody" not in status.last_error


def test_two_senders_racing_deliver_each_message_once(db_url: str, engine: Engine, guide: Guide,
                                                      smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    ids = {box.enqueue(f"reader{i}@example.com", guide, now=T0) for i in range(24)}
    engines = [make_engine(db_url), make_engine(db_url)]
    senders = [smtp_sender(e, smtp, batch_size=50) for e in engines]
    counts = race(senders, T0)
    for e in engines:
        e.dispose()
    assert sum(counts) == 24
    delivered = smtp.handler.message_ids()
    assert sorted(delivered) == sorted(f"<{i}@mbcnav.example.org>" for i in ids)  # each once, none lost


def test_a_sender_that_died_mid_send_is_replaced_after_its_lease(engine: Engine, guide: Guide,
                                                                  smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    with pytest.raises(Crash):
        Sender(engine, DiesBeforeSending(), lease_seconds=60).run_once(now=T0)
    stored = row(engine, message_id)
    assert stored["status"] == "sending" and stored["lease_until"] == T0 + timedelta(seconds=60)
    survivor = smtp_sender(engine, smtp)
    assert survivor.run_once(now=T0 + timedelta(seconds=59)) == 0  # lease still held: hands off
    assert survivor.run_once(now=T0 + timedelta(seconds=61)) == 1
    assert len(smtp.handler.envelopes) == 1
    status = status_of(box, message_id)
    assert status.status == "sent" and status.attempts == 2


def test_death_after_the_server_accepted_repeats_with_the_same_message_id(engine: Engine, guide: Guide,
                                                                           smtp: SmtpServer) -> None:
    # The documented at-least-once window of SMTP: the copy is recognisable by its Message-ID.
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    dying = Sender(engine, DiesAfterServerAccepted(SmtpTransport("127.0.0.1", smtp.port, mail_from=FROM)))
    with pytest.raises(Crash):
        dying.run_once(now=T0)
    assert smtp_sender(engine, smtp, lease_seconds=60).run_once(now=T0 + timedelta(hours=1)) == 1
    assert smtp.handler.message_ids() == [f"<{message_id}@mbcnav.example.org>"] * 2
    assert status_of(box, message_id).status == "sent"


def test_interrupted_too_often_is_failed_not_crash_looped(engine: Engine, guide: Guide) -> None:
    box = Outbox(engine, mail_from=FROM)
    message_id = box.enqueue(TO, guide, now=T0)
    dying = Sender(engine, DiesBeforeSending(), lease_seconds=1, max_attempts=2)
    now = T0
    for _ in range(2):
        with pytest.raises(Crash):
            dying.run_once(now=now)
        now += timedelta(seconds=2)
    assert dying.run_once(now=now) == 0
    status = status_of(box, message_id)
    assert status.status == "failed" and "interrupted" in (status.last_error or "")


def test_a_restart_loses_nothing(db_url: str, guide: Guide, smtp: SmtpServer) -> None:
    before = make_engine(db_url)
    ids = [Outbox(before, mail_from=FROM).enqueue(TO, guide, now=T0) for _ in range(3)]
    smtp.stop()
    smtp_sender(before, smtp).run_once(now=T0)  # one failed round before the "restart"
    before.dispose()
    smtp.start()
    after = make_engine(db_url)
    try:
        assert smtp_sender(after, smtp).run_once(now=T0 + timedelta(minutes=1)) == 3
        assert sorted(smtp.handler.message_ids()) == sorted(f"<{i}@mbcnav.example.org>" for i in ids)
    finally:
        after.dispose()


@pytest.mark.parametrize("recipient", [
    "reader@example.com\r\nBcc: victim@example.org",
    "reader@example.com\nBcc: victim@example.org",
    "reader@example.com\rBcc: victim@example.org",
    "reader@example.com, victim@example.org",
    "reader@example.com;victim@example.org",
    "Reader <reader@example.com>",
    "reader@example.com%0d%0aBcc:victim@example.org",
    "",
    "no-at-sign",
    "reader@localhost",
    "x" * 250 + "@example.com",
])
def test_bad_or_injected_recipients_are_refused(engine: Engine, guide: Guide, recipient: str) -> None:
    with pytest.raises(InvalidRecipient, match=r"^email: "):
        Outbox(engine, mail_from=FROM).enqueue(recipient, guide, now=T0)
    with engine.connect() as conn:
        assert conn.execute(select(outbox)).first() is None


def test_headers_cannot_be_injected_anywhere(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    with pytest.raises(InvalidRecipient):
        Outbox(engine, mail_from="guide@mbcnav.example.org\r\nBcc: victim@example.org")
    with pytest.raises(HeaderInjectionError):
        guide_email(guide, "reader@example.com\r\nBcc: victim@example.org", FROM)
    # The user's own text goes in the body only, however it is written.
    guide.add_note("Bcc: victim@example.org\nTo: victim@example.org\n\nSubject: spam")
    box = Outbox(engine, mail_from=FROM)
    box.enqueue(TO, guide, now=T0)
    smtp_sender(engine, smtp).run_once(now=T0)
    [envelope] = smtp.handler.envelopes
    assert envelope.rcpt_tos == [TO]
    message = message_from_bytes(bytes(envelope.original_content or b""))
    assert message.get_all("To") == [TO] and message["Bcc"] is None and message.get_all("Subject") == [SUBJECT]
    with pytest.raises(ValueError, match="link"):
        box.enqueue(TO, guide, "https://x.example.org/\r\nBcc: victim@example.org")


def test_rate_limit_allows_n_then_blocks_and_survives_restart(db_url: str, engine: Engine) -> None:
    box = Outbox(engine, mail_from=FROM)
    key = "addr:reader@example.com"
    assert [box.allow(key, 3, 60, now=T0 + timedelta(seconds=i)) for i in range(4)] == [True, True, True, False]
    assert box.allow("client:203.0.113.9", 3, 60, now=T0)  # other keys are counted apart
    engine.dispose()
    again = Outbox(make_engine(db_url), mail_from=FROM)
    assert not again.allow(key, 3, 60, now=T0 + timedelta(seconds=59))
    assert again.allow(key, 3, 60, now=T0 + timedelta(seconds=61))  # the first event left the window
    with again.engine.connect() as conn:
        stored = " ".join(str(r) for r in conn.execute(select(rate_events)).all())
    assert "reader@example.com" not in stored and "203.0.113.9" not in stored
    again.engine.dispose()


def test_eml_folder_transport_writes_a_parseable_message_with_the_pdf(tmp_path: Path, engine: Engine,
                                                                      guide: Guide) -> None:
    folder = tmp_path / "outbox"
    message_id = Outbox(engine, mail_from=FROM).enqueue(TO, guide, now=T0)
    transport = EmlFolderTransport(folder)
    assert Sender(engine, transport).run_once(now=T0) == 1
    assert sorted(p.name for p in folder.iterdir()) == [f"{message_id}.eml"]  # no temp files left
    message = BytesParser(policy=default).parsebytes((folder / f"{message_id}.eml").read_bytes())
    assert message["To"] == TO and message["Subject"] == SUBJECT
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "doctor-discussion-guide.pdf"
    pdf = attachment.get_content()
    assert isinstance(pdf, bytes)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "What is the main goal of my treatment?" in text
    body = message.get_body(("plain",))
    assert body is not None and "1. [ ] What is the main goal" in body.get_content()


def test_run_forever_delivers_in_the_background_and_stops(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    sender = smtp_sender(engine, smtp)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run_forever, args=(stop, 30.0), daemon=True)
    thread.start()
    Outbox(engine, mail_from=FROM).enqueue(TO, guide)
    sender.wake()  # no waiting for the 30 s poll
    assert smtp.handler.arrived.wait(10)
    stop.set()
    sender.wake()
    thread.join(10)
    assert not thread.is_alive() and len(smtp.handler.envelopes) == 1


def test_logs_never_carry_the_address_or_the_guide(engine: Engine, guide: Guide, smtp: SmtpServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    box = Outbox(engine, mail_from=FROM)
    box.enqueue(TO, guide, now=T0)
    box.enqueue("nobody@example.com", guide, now=T0)
    sender = smtp_sender(engine, smtp)
    smtp.stop()
    sender.run_once(now=T0)
    smtp.start()
    sender.run_once(now=T0 + timedelta(minutes=1))
    # Ours and the database layer's; the test SMTP server's own debug log is not the app's.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("mbcnav", "sqlalchemy")))
    assert "attempt 1 failed" in logged and "failed for good" in logged
    for secret in ("reader@", "nobody@", "main goal", "scan results"):
        assert secret not in logged


def test_purge_removes_settled_messages_and_old_rate_events(engine: Engine, guide: Guide, smtp: SmtpServer) -> None:
    box = Outbox(engine, mail_from=FROM)
    ids = [box.enqueue(TO, guide, now=T0) for _ in range(2)]
    assert smtp_sender(engine, smtp, batch_size=1).run_once(now=T0) == 1
    sent, waiting = sorted(ids, key=lambda i: status_of(box, i).status != "sent")
    assert status_of(box, waiting).status == "queued"
    box.allow("client:x", 5, 60, now=T0)
    assert box.purge(older_than_days=30, now=T0 + timedelta(days=29)) == 0
    assert box.purge(older_than_days=30, now=T0 + timedelta(days=31)) == 1
    assert box.status(sent) is None and status_of(box, waiting).status == "queued"  # never drops unsent mail
    with engine.connect() as conn:
        assert conn.execute(select(rate_events)).first() is None
