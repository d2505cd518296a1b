from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from mbcnav.guide.db import make_engine, saved_guides
from mbcnav.guide.model import Guide, GuideError
from mbcnav.guide.store import GuideStore

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_save_and_load_round_trip(engine: Engine, guide: Guide) -> None:
    store = GuideStore(engine)
    token, expires = store.save(guide, ttl_days=30, now=T0)
    assert expires == T0 + timedelta(days=30)
    assert len(token) == 43  # token_urlsafe(32): 256 random bits
    assert store.load(token, now=T0) == guide
    assert store.expires_at(token) == expires
    other, _ = store.save(guide, ttl_days=30, now=T0)
    assert other != token


def test_only_a_hash_of_the_token_is_stored(engine: Engine, guide: Guide) -> None:
    token, _ = GuideStore(engine).save(guide, ttl_days=1, now=T0)
    with engine.connect() as conn:
        rows = conn.execute(select(saved_guides)).all()
    assert len(rows) == 1
    raw = " ".join(str(v) for v in rows[0])
    assert token not in raw
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()


def test_expired_guides_are_gone(engine: Engine, guide: Guide) -> None:
    store = GuideStore(engine)
    token, expires = store.save(guide, ttl_days=7, now=T0)
    assert store.load(token, now=expires - timedelta(seconds=1)) is not None
    assert store.load(token, now=expires) is None
    assert not store.replace(token, guide, now=expires)
    keep, _ = store.save(guide, ttl_days=30, now=T0)
    assert store.purge_expired(now=expires) == 1
    assert store.expires_at(token) is None
    assert store.load(keep, now=expires) == guide


def test_delete(engine: Engine, guide: Guide) -> None:
    store = GuideStore(engine)
    token, _ = store.save(guide, ttl_days=1, now=T0)
    assert store.delete(token)
    assert store.load(token, now=T0) is None
    assert not store.delete(token)


def test_replace_keeps_the_link(engine: Engine, guide: Guide) -> None:
    store = GuideStore(engine)
    token, expires = store.save(guide, ttl_days=1, now=T0)
    guide.add_note("Added later")
    assert store.replace(token, guide, now=T0)
    loaded = store.load(token, now=T0)
    assert loaded is not None and loaded.items[-1].text == "Added later"
    assert store.expires_at(token) == expires


@pytest.mark.parametrize("token", ["", "short", "A" * 42, "A" * 44, "A" * 42 + "!", "../" * 14 + "x", "A" * 43])
def test_malformed_or_unknown_tokens_find_nothing(engine: Engine, guide: Guide, token: str) -> None:
    store = GuideStore(engine)
    store.save(guide, ttl_days=1, now=T0)
    assert store.load(token, now=T0) is None
    assert not store.delete(token)


def test_ttl_is_checked(engine: Engine, guide: Guide) -> None:
    with pytest.raises(GuideError, match="ttl_days"):
        GuideStore(engine).save(guide, ttl_days=0)


def test_saved_guides_survive_a_restart(db_url: str, guide: Guide) -> None:
    first = make_engine(db_url)
    token, _ = GuideStore(first).save(guide, ttl_days=1)
    first.dispose()
    second = make_engine(db_url)
    try:
        assert GuideStore(second).load(token) == guide
    finally:
        second.dispose()
