"""``dropsearch keys create|list|revoke``: API keys, directly on the database (not over HTTP).

Whoever can run these commands can read the database, so no API key is needed. Only the sha256 of a key is
stored: ``create`` prints the plain key once.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from dropsearch.cli._common import (
    EXIT_ERROR,
    EXIT_USAGE,
    DatabaseUrlOpt,
    DataDirOpt,
    console,
    err_console,
    fail,
    load_settings,
)
from dropsearch.cli.db import open_engine

__all__ = ["app", "create", "list_keys", "revoke"]

app = typer.Typer(help="API keys: create, list and revoke them (on the database directly).", no_args_is_help=True)


@app.command(epilog="Example: dropsearch keys create --owner alice --name laptop")
def create(
    owner: Annotated[str, typer.Option(help="Who the key acts for; its searches belong to this owner.")],
    name: Annotated[str, typer.Option(help="A label for the key, e.g. 'laptop'.")] = "cli",
    admin: Annotated[bool, typer.Option("--admin", help="The key may manage other keys.")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""
    from dropsearch.store.api_keys import create_api_key
    from dropsearch.store.db import session_scope

    engine = open_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        with session_scope(engine) as session:
            plain, record = create_api_key(session=session, owner=owner, name=name, is_admin=admin)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        engine.dispose()
    role = "admin key" if record.is_admin else "key"
    title = f"new {role} #{record.id} for {escape(record.owner)} ({escape(record.name)})"
    if not console.is_terminal:  # a pipe or a script (KEY=$(dropsearch keys create ...)): the bare key on stdout
        err_console.print(f"{title}; it is shown only this once")
        typer.echo(plain)
        return
    console.print(
        Panel(
            f"[bold]{plain}[/]\n\nUse it as `Authorization: Bearer <key>` or `export DROPSEARCH_API_KEY=<key>`.\n"
            "It is shown only this once.",
            title=title,
            expand=False,
        )
    )


@app.command("list", epilog="Example: dropsearch keys list --owner alice")
def list_keys(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """List API keys (their id, owner, label and 8-character prefix; never the key)."""
    from dropsearch.store.api_keys import list_api_keys
    from dropsearch.store.db import session_scope

    engine = open_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        with session_scope(engine, read_only=True) as session:
            keys = list_api_keys(session=session, owner=owner, include_revoked=all_)
    finally:
        engine.dispose()
    table = Table(title=f"{len(keys)} key(s)", title_justify="left")
    for column in ("id", "owner", "name", "prefix", "admin", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            str(key.id),
            escape(key.owner),
            escape(key.name),
            key.prefix + "...",
            "yes" if key.is_admin else "",
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "",
        )
    console.print(table)


@app.command(epilog="Example: dropsearch keys revoke 3   (the id from dropsearch keys list)")
def revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `dropsearch keys list`).")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    from dropsearch.store.api_keys import revoke_api_key
    from dropsearch.store.db import session_scope

    engine = open_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        with session_scope(engine) as session:
            revoked = revoke_api_key(session=session, key_id=key_id)
    finally:
        engine.dispose()
    if not revoked:
        fail(f"no active key with id {key_id} (see `dropsearch keys list --all`)", EXIT_ERROR)
    console.print(f"key #{key_id} revoked")
