"""``smsguard dashboard``: the read-only Datasette view of the case database (see :mod:`bot.dashboard`)."""

from __future__ import annotations

import sqlite3

import click

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True)
def dashboard(host: str, port: int) -> None:
    """Browse cases in Datasette: read-only, redacted text only, canned queries for the review."""
    from bot.cli import build_settings, fail
    from bot.dashboard import serve
    from bot.store import CaseStore

    settings = build_settings()
    path = settings.SMSGUARD_DB
    if not path.is_file():
        fail(f"no case database at {path} (cases are logged by `smsguard chat` and the bots)")
    try:  # bring the schema up to date once; the dashboard itself never writes
        CaseStore(path, settings.user_hash_key(), settings.STORE_RAW_TEXT).close()
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot open the case database {path}: {exc}")
    if host not in LOCAL_HOSTS:
        click.echo(f"warning: listening on {host}: anyone who can reach it can read the cases", err=True)
    click.echo(f"dashboard on http://{host}:{port}/ (read-only; Ctrl-C stops it)", err=True)
    serve(path, host, port, settings.LOW_CONFIDENCE)
