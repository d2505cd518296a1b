"""The same schema and the same outbox guarantees on PostgreSQL, in a throwaway local cluster.

Needs the server binaries (Debian: apt-get install postgresql). Without them the tests are skipped
and reported as not run, unless MBCNAV_REQUIRE_POSTGRES=1, where they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from mbcnav.guide.db import make_engine, migrate
from mbcnav.guide.model import Guide
from mbcnav.guide.outbox import EmlFolderTransport, Outbox, Sender
from mbcnav.guide.store import GuideStore
from tests.guide.conftest import race
from tests.guide.test_db import schema_drift

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _unavailable(reason: str) -> None:
    if os.environ.get("MBCNAV_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"MBCNAV_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not run: {reason}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    bindir = _binaries()
    if bindir is None:
        _unavailable("no initdb found (install the Debian package 'postgresql')")
        raise AssertionError("unreachable")
    # initdb refuses to run as root; the Debian package's 'postgres' account runs the cluster then.
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="mbcnav-pg-"))
    if as_user:
        os.chown(root, account.pw_uid, account.pw_gid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        shutil.rmtree(root, ignore_errors=True)
        output = getattr(err, "stderr", b"") or b""
        _unavailable(f"the throwaway cluster did not start: {output.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    migrate(pg_url)
    engine = make_engine(pg_url)
    yield engine
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE saved_guides, outbox, rate_events, cds_explanations, cds_token_uses"))
    engine.dispose()


def test_migrations_match_on_postgres(pg_url: str, pg: Engine) -> None:
    assert schema_drift(pg) == []
    migrate(pg_url)  # idempotent
    with pg.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM guide_alembic_version")).scalar_one() == "0002"


def test_cds_records_on_postgres(pg: Engine) -> None:
    import time

    from mbcnav.engine import evaluate
    from mbcnav.fhir._cds_store import DatabaseExplanations, DatabaseTokenLedger
    from mbcnav.fhir.mcode import import_bundle
    from tests.fhir.test_cds_hooks import mitre01

    report = import_bundle({"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": r} for r in mitre01()]})
    explanations = DatabaseExplanations(pg, secret="pg-test-secret")
    key = explanations.put(evaluate(report.profile), report)
    found = DatabaseExplanations(pg, secret="pg-test-secret").get(key)     # as another process would
    assert found is not None and found.report == report
    assert found.evaluation.recommendation == evaluate(report.profile).recommendation
    assert DatabaseExplanations(pg, secret="another-secret").get(key) is None
    ledger = DatabaseTokenLedger(pg)
    until = time.time() + 300
    assert ledger.first_use("https://ehr.example.org/", "jti-1", until)
    assert not DatabaseTokenLedger(pg).first_use("https://ehr.example.org/", "jti-1", until)
    assert ledger.first_use("https://other.example.org/", "jti-1", until)


def test_store_on_postgres(pg: Engine, guide: Guide) -> None:
    store = GuideStore(pg)
    token, expires = store.save(guide, ttl_days=1, now=T0)
    assert store.load(token, now=T0) == guide
    assert store.load(token, now=expires) is None
    assert store.purge_expired(now=expires) == 1


def test_outbox_and_racing_senders_on_postgres(pg_url: str, pg: Engine, guide: Guide, tmp_path: Path) -> None:
    box = Outbox(pg, mail_from="guide@mbcnav.example.org")
    ids = {box.enqueue(f"reader{i}@example.com", guide, now=T0) for i in range(12)}
    engines = [make_engine(pg_url), make_engine(pg_url)]
    senders = [Sender(e, EmlFolderTransport(tmp_path / f"out{n}"), batch_size=50) for n, e in enumerate(engines)]
    counts = race(senders, T0)
    for e in engines:
        e.dispose()
    written = [p.stem for n in range(2) if (tmp_path / f"out{n}").exists() for p in (tmp_path / f"out{n}").iterdir()]
    assert sum(counts) == 12 and sorted(written) == sorted(ids)  # each exactly once across both senders
    assert all(getattr(box.status(i), "status", None) == "sent" for i in ids)
    key = "client:203.0.113.9"
    assert [box.allow(key, 2, 60, now=T0 + timedelta(seconds=i)) for i in range(3)] == [True, True, False]
