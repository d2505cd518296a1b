"""How a queued message leaves the machine: SMTP, or .eml files in a folder when no SMTP host is set."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Protocol

_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PermanentDeliveryError(Exception):
    """The server refused for good (5xx): retrying the same message will not help."""


class Transport(Protocol):
    def send(self, message: bytes, recipient: str, message_id: str) -> None:
        """Deliver `message` to `recipient` (the only envelope recipient) or raise."""


class SmtpTransport:
    def __init__(self, host: str, port: int = 25, *, mail_from: str, username: str | None = None,
                 password: str | None = None, starttls: bool = False, use_ssl: bool = False,
                 timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None,
                 local_hostname: str | None = None) -> None:
        self.host, self.port, self.mail_from = host, port, mail_from
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        # Both are costly to make (CA store load, reverse DNS), so once per transport, not per message.
        self.ssl_context = ssl_context or (ssl.create_default_context() if starttls or use_ssl else None)
        self.local_hostname = local_hostname or socket.getfqdn()

    def send(self, message: bytes, recipient: str, message_id: str) -> None:
        context, name = self.ssl_context, self.local_hostname
        smtp = (smtplib.SMTP_SSL(self.host, self.port, name, timeout=self.timeout, context=context) if self.use_ssl
                else smtplib.SMTP(self.host, self.port, name, timeout=self.timeout))
        try:
            smtp.ehlo()
            if self.starttls and not self.use_ssl:
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            # Envelope: fixed sender, exactly one recipient. Never any address taken from the message.
            smtp.sendmail(self.mail_from, [recipient], message)
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            if codes and min(codes) >= 500:
                raise PermanentDeliveryError(f"recipient refused ({min(codes)})") from None
            raise
        except smtplib.SMTPResponseException as err:
            if err.smtp_code >= 500:
                raise PermanentDeliveryError(f"server refused ({err.smtp_code})") from None
            raise
        finally:
            # DATA was accepted before QUIT, so a failing QUIT must not turn a delivery into a retry.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()


class EmlFolderTransport:
    """Writes `<id>.eml` per message; a retry overwrites the same file, so it never duplicates."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def send(self, message: bytes, recipient: str, message_id: str) -> None:
        if not _MESSAGE_ID.match(message_id):
            raise ValueError("message_id: unexpected characters")
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{message_id}.eml"
        temp = self.directory / f".{message_id}.{secrets.token_hex(4)}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)  # atomic: a reader sees no file or the whole file
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, harmless to skip there.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
