"""``dropsearch db upgrade`` and ``dropsearch db current``: the database schema (Alembic), directly on the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dropsearch.cli._common import EXIT_ERROR, DatabaseUrlOpt, DataDirOpt, console, fail, load_settings

if TYPE_CHECKING:
    from dropsearch.config import Settings
    from dropsearch.store.db import Engine

__all__ = ["app", "current", "open_engine", "upgrade"]

app = typer.Typer(help="Database schema: migrate it, or show its revision.", no_args_is_help=True)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the store with its own message
        return url


def _migrate(url: str, revision: str = "head") -> None:
    from dropsearch.store.migrate import upgrade as store_upgrade

    try:
        store_upgrade(url, revision)
    except ValueError as exc:
        fail(str(exc))
    except Exception as exc:  # Alembic and the driver raise many types; name the database and the cause
        fail(f"migrating {_redact(url)} failed: {type(exc).__name__}: {exc}")


def open_engine(settings: Settings) -> Engine:
    """An engine on the settings' database, migrated first when ``settings.migrate_on_start`` (else checked).

    Exits with a message when the database is unreachable or has no schema and may not be migrated.
    """
    from dropsearch.store.db import make_engine
    from dropsearch.store.migrate import current_revision

    url = settings.resolved_database_url
    if settings.migrate_on_start:
        _migrate(url)
    else:
        try:
            revision = current_revision(url)
        except Exception as exc:
            fail(f"cannot open the database {_redact(url)}: {type(exc).__name__}: {exc}")
        if revision is None:
            fail(f"the database {_redact(url)} has no schema yet: run `dropsearch db upgrade`")
    try:
        return make_engine(url)
    except ValueError as exc:
        fail(str(exc))


@app.command(epilog="Example: dropsearch db upgrade --database-url postgresql+psycopg://user@host/db")
def upgrade(
    revision: Annotated[str, typer.Option(help="Target Alembic revision.")] = "head",
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Migrate the database to the newest schema (safe to run repeatedly)."""
    from dropsearch.store.migrate import current_revision

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    url = settings.resolved_database_url
    _migrate(url, revision)
    console.print(f"database {_redact(url)} is at revision [bold]{current_revision(url)}[/]")


@app.command(epilog="Example: dropsearch db current || dropsearch db upgrade")
def current(data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None) -> None:
    """Show the database's schema revision and whether it is the newest; exit 1 when it is behind."""
    from dropsearch.store.migrate import current_revision, head_revision

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    url = settings.resolved_database_url
    try:
        revision = current_revision(url)
    except Exception as exc:
        fail(f"cannot open the database {_redact(url)}: {type(exc).__name__}: {exc}")
    head = head_revision()
    console.print(f"database: {_redact(url)}")
    console.print(f"current revision: [bold]{revision or '(none: never migrated)'}[/]")
    console.print(f"newest revision:  [bold]{head}[/]")
    if revision != head:
        console.print("[yellow]the schema is behind: run `dropsearch db upgrade`[/]")
        raise typer.Exit(EXIT_ERROR)
    console.print("[green]up to date[/]")
