"""Fixtures: a migrated database per test, on SQLite (a temp file) and on the Postgres at 127.0.0.1:5432.

Postgres tests run in a database of their own (created for the session, dropped at the end) and every test starts
from empty tables; they are skipped only when the server cannot be reached. Set DROPSEARCH_TEST_POSTGRES_URL to
use another server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from dropsearch.store.db import make_engine
from dropsearch.store.migrate import upgrade
from dropsearch.store.scratch import scratch_database

POSTGRES_URL = os.environ.get("DROPSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = "api_keys, searches, trials, controller_states, events"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, migrated Postgres database for this test session."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(POSTGRES_URL, prefix="dropsearch_store"))
        except OperationalError as exc:  # no server: skip the Postgres half
            pytest.skip(f"Postgres at {POSTGRES_URL} is unreachable: {exc}")
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: a SQLite copy of the template, or the session's Postgres database truncated."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine made by the store's ``make_engine`` for ``db_url``."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
