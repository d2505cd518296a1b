"""Settings defaults, the persisted secret key, and the serve command."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from mbcnav.web.cli import RedactSecrets, serve_command
from mbcnav.web.settings import Settings, persistent_secret


def test_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'mbcnav.sqlite3'}"
    assert settings.resolved_mail_dir() == tmp_path / "mail"
    assert settings.smtp_host is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MBCNAV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/mbcnav")
    monkeypatch.setenv("SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.data_dir == tmp_path and settings.resolved_database_url() == "postgresql://u:p@db/mbcnav"
    assert settings.smtp_host == "mail.example.org" and settings.resolved_secret() == "s3cret"


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path, _env_file=None).resolved_secret()  # type: ignore[call-arg]
    second = Settings(data_dir=tmp_path, _env_file=None).resolved_secret()  # type: ignore[call-arg]
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert persistent_secret(tmp_path / "secret_key") == first


def test_serve_help() -> None:
    result = CliRunner().invoke(serve_command, ["--help"])
    assert result.exit_code == 0 and "--port" in result.output and "DATABASE_URL" in result.output


def test_access_log_hides_guide_tokens_and_email_ids() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/g/" + "A" * 43 + "/pdf", "1.1", 200), None)
    RedactSecrets().filter(record)
    assert "A" * 10 not in record.getMessage() and "/g/…/pdf" in record.getMessage()
    record.args = ("127.0.0.1:5", "GET", "/email/abcdefghijklmnopqrstuv", "1.1", 200)
    RedactSecrets().filter(record)
    assert "abcdefgh" not in record.getMessage()
