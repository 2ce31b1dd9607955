"""A throw-away Postgres database on a server: for tests, benchmarks and migration drills."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

__all__ = ["scratch_database"]


@contextmanager
def scratch_database(server_url: str, *, prefix: str = "dropsearch_scratch", migrate: bool = True) -> Iterator[str]:
    """Create a uniquely named database on the Postgres server of ``server_url``; drop it when the block ends.

    Args:
        server_url: a URL of any database on the server (the one connected to for ``CREATE``/``DROP DATABASE``).
        prefix: the new database's name is ``prefix`` plus 12 random hex digits.
        migrate: run the migrations up to head on it first. Default: ``True``.

    Yields:
        The new database's URL (password kept, for connecting).

    Raises:
        sqlalchemy.exc.OperationalError: when the server cannot be reached (within 3 s).
    """
    from dropsearch.store.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            if migrate:
                upgrade(url)
            yield url
        finally:
            with admin.connect() as connection:  # FORCE: connections still open to it are ended
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
