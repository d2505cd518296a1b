"""`mbcnav serve`: run the web app with uvicorn (registered on the main CLI group in mbcnav/cli.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import click

# Saved-guide tokens and email status ids are keys: keep them out of access logs.
_SECRET_PATHS = re.compile(r"(/g/|/email/)[A-Za-z0-9_-]{8,}")


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_PATHS.sub(r"\1…", a) if isinstance(a, str) else a for a in record.args)
        return True


def build_app() -> Any:
    """Uvicorn factory (used with --workers, where each process builds its own app)."""
    from mbcnav.web.app import create_app

    return create_app()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the SQLite file, secret key and mail folder live (env MBCNAV_DATA_DIR).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve_command(host: str, port: int, data_dir: Path | None, workers: int, access_log: bool) -> None:
    """Serve the patient web app (information, not medical advice).

    Settings come from the environment or a .env file: DATABASE_URL (PostgreSQL), SMTP_HOST,
    SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, MAIL_FROM, SECRET_KEY, COOKIE_SECURE.
    """
    import copy
    import os

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from mbcnav.web.settings import Settings

    if data_dir is not None:
        os.environ["MBCNAV_DATA_DIR"] = str(data_dir)
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.resolved_secret()  # create the key once, before any worker starts
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config.setdefault("filters", {})["redact"] = {"()": "mbcnav.web.cli.RedactSecrets"}
    log_config["handlers"]["access"]["filters"] = ["redact"]
    click.echo(f"mbcnav: serving on http://{host}:{port}  (data: {settings.data_dir})", err=True)
    if workers > 1:
        # Migrate once here: workers starting together would otherwise race to create the tables.
        from mbcnav.guide import make_engine, migrate

        engine = make_engine(settings.resolved_database_url())
        migrate(engine)
        engine.dispose()
        uvicorn.run("mbcnav.web.cli:build_app", factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, proxy_headers=False, log_config=log_config)
    else:
        from mbcnav.web.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, access_log=access_log, proxy_headers=False,
                    log_config=log_config)
