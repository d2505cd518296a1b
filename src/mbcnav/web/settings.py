"""Web app settings: embedded defaults, overridden by environment variables or a `.env` file.

Everything works with no settings at all: an SQLite file and a generated secret key in the data
directory, and emails written as .eml files to a folder there (no SMTP server needed). Set
DATABASE_URL for PostgreSQL, SMTP_HOST (and friends) to send real mail.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mbcnav"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir,
                           validation_alias=AliasChoices("MBCNAV_DATA_DIR", "data_dir"))
    database_url: str | None = None          # default: sqlite:///<data_dir>/mbcnav.sqlite3
    secret_key: SecretStr | None = None      # default: generated once, kept in <data_dir>/secret_key

    # Mail. Without SMTP_HOST, messages go to <data_dir>/mail as .eml files (a "pickup folder").
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "no-reply@example.org"   # a plain address; set MAIL_FROM for real mail
    mail_dir: Path | None = None
    sender_enabled: bool = True              # the background sender thread (off in some tests)
    sender_poll_seconds: float = 2.0
    sender_base_delay_seconds: float = 5.0   # first retry after a failed send; doubles each time
    sender_max_attempts: int = 10

    # Cookies: None = Secure only when the request came over https; True/False force it.
    cookie_secure: bool | None = None
    session_max_age_days: int = 7

    guide_ttl_days: int = 30
    # Email rate limits (outbox allow()): per recipient address and per client address.
    email_limit_per_address: int = 5
    email_limit_per_client: int = 20
    email_limit_window_seconds: int = 3600

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mbcnav.sqlite3'}"

    def resolved_mail_dir(self) -> Path:
        return self.mail_dir or self.data_dir / "mail"

    def resolved_secret(self) -> str:
        """SECRET_KEY, or one generated once and kept in the data dir so sessions survive restarts."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return persistent_secret(self.data_dir / "secret_key")


def persistent_secret(path: Path) -> str:
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write a private temporary file, then link it into place: the link fails if another process
    # got there first, and then everyone uses that process's key. Readers never see a half file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    try:
        os.link(temp, path)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
    finally:
        temp.unlink(missing_ok=True)
    return value
