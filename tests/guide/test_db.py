from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from mbcnav.guide.db import (
    MIGRATIONS,
    VERSION_TABLE,
    cds_explanations,
    make_engine,
    metadata,
    migrate,
    rate_events,
    saved_guides,
)


def schema_drift(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))


def test_migrations_match_the_table_definitions(db_url: str, engine: Engine) -> None:
    assert schema_drift(engine) == []
    migrate(db_url)  # a second run is a no-op
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar_one() == "0002"


def test_upgrading_a_database_from_the_first_release_keeps_its_saved_guides(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite+pysqlite:///{tmp_path}/old.db"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    command.upgrade(config, "0001")             # the schema of the first release
    eng = make_engine(url)
    try:
        now = datetime.now(UTC)
        with eng.begin() as conn:
            conn.execute(insert(saved_guides).values(token_hash="a" * 64, content="{}", created_at=now,
                                                     expires_at=now + timedelta(days=30)))
        migrate(url)
        assert schema_drift(eng) == []
        with eng.connect() as conn:
            assert conn.execute(select(saved_guides.c.token_hash)).scalar_one() == "a" * 64
            assert conn.execute(select(cds_explanations.c.key_hash)).first() is None
    finally:
        eng.dispose()


def test_sqlite_uses_wal_and_waits_for_locks(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 5000


def test_timestamps_come_back_as_aware_utc(engine: Engine) -> None:
    local = datetime(2026, 11, 23, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(insert(rate_events).values(key="k", at=local))
        at = conn.execute(select(rate_events.c.at)).scalar_one()
    assert at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC) and at.tzinfo is UTC
    with pytest.raises(StatementError, match="naive"), engine.begin() as conn:
        conn.execute(insert(rate_events).values(key="k", at=datetime(2026, 1, 1)))


def test_migrate_accepts_an_engine(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite+pysqlite:///{tmp_path}/other.db")
    try:
        migrate(eng)
        assert schema_drift(eng) == []
    finally:
        eng.dispose()


def test_database_errors_do_not_show_row_values(engine: Engine) -> None:
    row = {"token_hash": "h" * 64, "content": "secret guide text",
           "created_at": datetime(2026, 1, 1, tzinfo=UTC), "expires_at": datetime(2026, 2, 1, tzinfo=UTC)}
    with engine.begin() as conn:
        conn.execute(insert(saved_guides).values(**row))
    with pytest.raises(IntegrityError) as err, engine.begin() as conn:
        conn.execute(insert(saved_guides).values(**row))
    assert "secret guide text" not in str(err.value)


def test_sqlite_file_gets_its_folder_and_memory_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path}/new/folder/guide.db"
    migrate(url)
    assert (tmp_path / "new" / "folder" / "guide.db").is_file()
    with pytest.raises(ValueError, match="SQLite needs a file"):
        make_engine("sqlite://")
