"""Engines and sessions: the only place that creates SQLAlchemy engines or opens sessions.

SQLite (the default) gets WAL, a 30 s busy timeout, ``synchronous=NORMAL`` and foreign keys on every new
connection. Every transaction on SQLite starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe for the
sqlite3 driver, "Enabling Non-Legacy SQLite Transactional Modes"): the write lock is taken up front, so parallel
writers queue on the busy timeout instead of failing with "database is locked" when a read transaction tries to
upgrade to a write. Read-only scopes (``session_scope(read_only=True)``) use a plain deferred ``BEGIN`` and never
wait for writers under WAL. Postgres engines get ``pool_pre_ping``.

Repository functions never open sessions; callers wrap them in :func:`session_scope` (workers, CLI, runner) or
in the API's session dependency, which should call :func:`session_scope` too. ``Engine`` and ``Session`` are
re-exported here for type hints, so that code outside the store never imports SQLAlchemy itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dropsearch.config import get_settings

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "Engine",
    "Session",
    "dispose_engines",
    "get_engine",
    "is_transient_error",
    "make_engine",
    "session_scope",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY_OPTION = "dropsearch_read_only"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with dropsearch's connection settings.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///data/dropsearch.db`` or
            ``postgresql+psycopg://user@host:5432/db``. The parent directory of a SQLite file is created.
        echo: log every SQL statement. Default: ``False``

    Returns:
        A new engine (the caller owns it and should ``dispose()`` it when done).

    Raises:
        ValueError: if ``url`` cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError; normalise it
        raise ValueError(f"invalid database url {url!r}: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take BEGIN away from the sqlite3 driver (it only emits a deferred BEGIN before DML); _sqlite_on_begin emits it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    read_only = conn.get_execution_options().get(_READ_ONLY_OPTION, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine | None = None, *, read_only: bool = False) -> Iterator[Session]:
    """One short transaction: commit on success, roll back on any exception, always close.

    Args:
        engine: the engine to use. Default: :func:`get_engine` (from settings)
        read_only: the block only reads. On SQLite this starts a deferred transaction that never waits for the
            write lock; writing inside it may then fail with "database is locked". Default: ``False``

    Yields:
        A session whose objects stay readable after commit (``expire_on_commit=False``).

    Examples::

        >>> with session_scope(engine) as session:  # doctest: +SKIP
        ...     record = create_search(session=session, owner="alice", name=None, spec={}, trials_total=8)
    """
    bind = engine if engine is not None else get_engine()
    if read_only:
        bind = bind.execution_options(**{_READ_ONLY_OPTION: True})
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_transient_error(exc: BaseException) -> bool:
    """Whether a failed transaction may succeed when run again.

    True for a dropped or invalidated connection (the server restarted, ``pg_terminate_backend``, a network
    blip; the pool then reconnects) and for other driver ``OperationalError``s such as SQLite's "database is
    locked" after the busy timeout. Constraint violations, programming errors and non-database exceptions are not
    transient.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the settings' database URL), created once and cached.

    Call :func:`dispose_engines` (e.g. in tests, or after ``get_settings.cache_clear()``) to drop the cache.
    """
    resolved = url if url is not None else get_settings().resolved_database_url
    with _engines_lock:
        engine = _engines.get(resolved)
        if engine is None:
            engine = _engines[resolved] = make_engine(resolved)
        return engine


def dispose_engines() -> None:
    """Dispose of and forget every engine cached by :func:`get_engine`."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
