"""Alembic environment of the dropsearch store.

The database URL comes from, in order: ``config.attributes["url"]`` (set by ``dropsearch.store.migrate``), the
``sqlalchemy.url`` option, then the settings. A connection passed in ``config.attributes["connection"]`` is used
as is. Logging is left alone (no ``fileConfig``) so that running migrations from the service does not reset it.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from dropsearch.config import get_settings
from dropsearch.store.db import make_engine
from dropsearch.store.models import Base, UTCDateTime

target_metadata = Base.metadata
_PG_LOCK_KEY = 0x64726F70  # "drop": the advisory lock held while migrating
# ``context.config`` only exists inside an Alembic run; importing this file elsewhere (pytest --doctest-modules)
# must be harmless.
config = getattr(context, "config", None)


def _url() -> str:
    return (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or (get_settings().resolved_database_url)
    )


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions must not import dropsearch code: write the UTC type as the column type it stands for.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=target_metadata, render_item=_render_item, render_as_batch=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades (API and runner starting together); SQLite's BEGIN IMMEDIATE already does.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


if config is None:
    pass
elif context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
