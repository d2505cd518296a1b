"""CDS records every server process must see: explanations behind card links, JWT ids already used.

With one process the in-memory versions do (`_explanations.ExplanationStore`, the policy's own
set of `jti`s). With several (`mbcnav serve --workers N`) a card link may be opened in another
process than the one that made the card, and a replayed token may reach another process: the web
app then keeps both in its database (`guide.db`), which every process shares.

An explanation holds patient data, so the row holds only the FHIR import report (the profile is
part of it), zlib-compressed and encrypted (Fernet: AES-128-CBC with HMAC-SHA256) under a key
derived from the app's secret, and is deleted once expired. Opening the link evaluates the
profile again: the engine is deterministic for a knowledge version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import zlib
from datetime import timedelta
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from mbcnav.engine import Evaluation, evaluate
from mbcnav.fhir._explanations import TTL_SECONDS, Explanation
from mbcnav.fhir.report import ImportReport
from mbcnav.guide.db import cds_explanations, cds_token_uses, utcnow


class Explanations(Protocol):
    def put(self, evaluation: Evaluation, report: ImportReport) -> str: ...

    def get(self, key: str) -> Explanation | None: ...


class TokenLedger(Protocol):
    def first_use(self, issuer: str, jti: str, until: float) -> bool:
        """True the first time (issuer, jti) is seen before `until` (epoch seconds); False on a replay."""
        ...


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def fernet_for(secret: str, purpose: str = "mbcnav.cds.explanations") -> Fernet:
    """A Fernet key of its own for `purpose`, derived from the app's secret."""
    digest = hashlib.sha256(f"{purpose}\0{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class DatabaseExplanations:
    """Explanations in the app database: encrypted, shared by every process, deleted on expiry."""

    def __init__(self, engine: Engine, secret: str, ttl_seconds: int = TTL_SECONDS) -> None:
        self.engine = engine
        self.fernet = fernet_for(secret)
        self.ttl = timedelta(seconds=ttl_seconds)

    def put(self, evaluation: Evaluation, report: ImportReport) -> str:
        key = secrets.token_urlsafe(24)
        plain = json.dumps(report.model_dump(mode="json"), separators=(",", ":")).encode()
        payload = self.fernet.encrypt(zlib.compress(plain, 6))
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(cds_explanations).where(cds_explanations.c.expires_at < now))
            conn.execute(insert(cds_explanations).values(key_hash=_hash(key), payload=payload,
                                                         expires_at=now + self.ttl))
        return key

    def get(self, key: str) -> Explanation | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cds_explanations.c.payload, cds_explanations.c.expires_at)
                               .where(cds_explanations.c.key_hash == _hash(key))).first()
        if row is None or row.expires_at <= utcnow():
            return None
        try:
            plain = zlib.decompress(self.fernet.decrypt(row.payload))
        except (InvalidToken, zlib.error):
            return None     # written under another secret key: unreadable, treated as gone
        report = ImportReport.model_validate_json(plain)
        return Explanation(evaluate(report.profile), report, time.monotonic())


class DatabaseTokenLedger:
    """JWT ids already accepted, in the app database: a replay fails whichever process it reaches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, issuer: str, jti: str, until: float) -> bool:
        now = utcnow()
        expires = now + timedelta(seconds=max(0.0, until - time.time()))
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(cds_token_uses).where(cds_token_uses.c.expires_at < now))
                conn.execute(insert(cds_token_uses).values(use_hash=_hash(issuer, jti), expires_at=expires))
        except IntegrityError:
            return False
        return True
