"""The app's database: saved guides, the email outbox and rate limits, and the CDS service's
short-lived records (explanations behind card links, JWT ids already used). SQLite by default,
PostgreSQL by URL.

The schema is created only by the Alembic migrations (`migrate`); the tables below mirror them for
queries, and a test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "guide_alembic_version"  # own name, so other parts of the app can share the database
SQLITE_BUSY_MS = 10_000


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which has no time zones) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text, so every stored value must have the same (naive) form.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

saved_guides = Table(
    "saved_guides", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the link token
    Column("content", Text, nullable=False),                        # Guide as JSON
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_saved_guides_expires_at", "expires_at"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", String(32), primary_key=True),  # random: the status page link must not be guessable
    Column("recipient", String(320), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("message", LargeBinary, nullable=False),  # the full RFC 5322 message, built at enqueue time
    Column("status", String(10), nullable=False),    # queued | sending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("lease_owner", String(32), nullable=True),
    Column("last_error", String(500), nullable=True),  # sanitised: no recipient, no guide text
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

rate_events = Table(
    "rate_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),  # SHA-256 hex of e.g. "addr:..." or "client:...", never raw
    Column("at", UTCDateTime, nullable=False),
    Index("ix_rate_events_key_at", "key", "at"),
)


# CDS Hooks: what a card's "full explanation" link shows, shared by every server process. The
# payload is the FHIR import report (profile included), compressed and encrypted with a key
# derived from the app's secret; rows are deleted when they expire (one hour).
cds_explanations = Table(
    "cds_explanations", metadata,
    Column("key_hash", String(64), primary_key=True),   # SHA-256 hex of the link key
    Column("payload", LargeBinary, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_cds_explanations_expires_at", "expires_at"),
)

# CDS Hooks: JWT ids (`jti`) already accepted, until the token expires, so a replay fails in any process.
cds_token_uses = Table(
    "cds_token_uses", metadata,
    Column("use_hash", String(64), primary_key=True),   # SHA-256 hex of issuer and jti
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_cds_token_uses_expires_at", "expires_at"),
)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+pysqlite:///{Path(path)}"


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An Engine for `url`; SQLite gets WAL (readers never block the writer) and a busy timeout."""
    parsed = make_url(url)
    # Error messages and logs must never carry row values (addresses, guide text).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("database URL: SQLite needs a file (each in-memory connection is a separate database)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # e.g. a fresh data/ folder
        connect_args = {"timeout": SQLITE_BUSY_MS / 1000, **kwargs.pop("connect_args", {})}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the declared driver
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA synchronous=FULL")  # the outbox promise ("queued") must survive power loss
    finally:
        cursor.close()


def migrate(url: str | URL | Engine) -> None:
    """Bring the database at `url` to the newest schema (alembic `upgrade head`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an object, not through the ini option: a URL with '%' would break ConfigParser.
    if isinstance(url, Engine):
        config.attributes["engine"] = url
    else:
        config.attributes["url"] = url
    command.upgrade(config, "head")


def utcnow() -> datetime:
    return datetime.now(UTC)
