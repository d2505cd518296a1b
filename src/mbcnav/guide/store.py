"""Saved guides behind unguessable links. Only a hash of each link's token is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from mbcnav.guide.db import saved_guides, utcnow
from mbcnav.guide.model import Guide, GuideError, parse_guide


@dataclass(frozen=True, slots=True)
class _Row:
    content: str
    expires_at: datetime


# secrets.token_urlsafe(32): 32 random bytes (256 bits) -> 43 URL-safe characters.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_TTL_DAYS = 3650


def token_hash(token: str) -> str:
    # A plain hash is enough: the token has 256 bits of entropy, so it cannot be guessed from it.
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class GuideStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, guide: Guide, ttl_days: float, now: datetime | None = None) -> tuple[str, datetime]:
        """Store `guide`; returns the link token (shown once, never stored) and the expiry."""
        if not 0 < ttl_days <= MAX_TTL_DAYS:
            raise GuideError([f"ttl_days: must be more than 0 and at most {MAX_TTL_DAYS}"])
        now = now or utcnow()
        expires = now + timedelta(days=ttl_days)
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(saved_guides).values(
                token_hash=token_hash(token), content=guide.model_dump_json(), created_at=now, expires_at=expires))
        return token, expires

    def load(self, token: str, now: datetime | None = None) -> Guide | None:
        """The guide for `token`, or None when it is unknown, deleted or expired."""
        row = self._row(token)
        if row is None or row.expires_at <= (now or utcnow()):
            return None
        return parse_guide(row.content)

    def expires_at(self, token: str) -> datetime | None:
        row = self._row(token)
        return None if row is None else row.expires_at

    def replace(self, token: str, guide: Guide, now: datetime | None = None) -> bool:
        """Overwrite a saved guide in place (same link, same expiry); False when gone or expired."""
        if not _TOKEN.match(token):
            return False
        with self.engine.begin() as conn:
            result = conn.execute(
                update(saved_guides)
                .where(saved_guides.c.token_hash == token_hash(token), saved_guides.c.expires_at > (now or utcnow()))
                .values(content=guide.model_dump_json()))
        return result.rowcount == 1

    def delete(self, token: str) -> bool:
        if not _TOKEN.match(token):
            return False
        with self.engine.begin() as conn:
            result = conn.execute(delete(saved_guides).where(saved_guides.c.token_hash == token_hash(token)))
        return result.rowcount == 1

    def purge_expired(self, now: datetime | None = None) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(delete(saved_guides).where(saved_guides.c.expires_at <= (now or utcnow())))
        return result.rowcount

    def _row(self, token: str) -> _Row | None:
        # Malformed tokens never reach the database; lookups go by the hash (an indexed equality),
        # so timing says nothing about the token, and the final compare is constant-time anyway.
        if not _TOKEN.match(token):
            return None
        wanted = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(saved_guides.c.token_hash, saved_guides.c.content, saved_guides.c.expires_at)
                .where(saved_guides.c.token_hash == wanted)).first()
        if row is None or not hmac.compare_digest(row.token_hash, wanted):
            return None
        return _Row(content=row.content, expires_at=row.expires_at)

