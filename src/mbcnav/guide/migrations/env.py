"""Alembic environment for the guide tables; the URL or Engine comes from `mbcnav.guide.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mbcnav.guide.db import VERSION_TABLE, make_engine

config = context.config


def run() -> None:
    engine = config.attributes.get("engine")
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    own = engine is None
    if own:
        if not url:
            raise RuntimeError("no database URL: call mbcnav.guide.db.migrate(url)")
        engine = make_engine(url)
    assert isinstance(engine, Engine)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, version_table=VERSION_TABLE)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if own:
            engine.dispose()


run()
