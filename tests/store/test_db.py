from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from dropsearch.config import get_settings
from dropsearch.store import db
from dropsearch.store.db import get_engine, make_engine, session_scope
from dropsearch.store.models import SearchModel, utcnow
from dropsearch.store.searches import create_search, load_search
from tests.store.factories import make_search, spec


def test_sqlite_connections_get_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    engine.dispose()
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1, "synchronous": 1}


def test_make_engine_refuses_a_bad_url() -> None:
    with pytest.raises(ValueError, match="not a url"):
        make_engine("not a url")


def test_session_scope_commits_and_rolls_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        kept = create_search(session=session, owner="alice", name="kept", spec=spec(), trials_total=2).id
    with pytest.raises(RuntimeError, match="boom"):
        with session_scope(engine) as session:
            lost = create_search(session=session, owner="alice", name="lost", spec=spec(), trials_total=2).id
            raise RuntimeError("boom")
    with session_scope(engine, read_only=True) as session:
        assert load_search(session=session, search_id=kept) is not None
        assert load_search(session=session, search_id=lost) is None


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    before = utcnow()
    record = make_search(engine)
    with session_scope(engine) as session:
        row = session.get(SearchModel, record.id)
        # store an aware non-UTC time: it must come back as the same instant, in UTC
        row.lease_expires_at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5)))
    with session_scope(engine) as session:
        row = session.scalar(select(SearchModel).where(SearchModel.id == record.id))
        assert row.created_at.tzinfo == timezone.utc
        assert before <= row.created_at <= utcnow()
        assert row.lease_expires_at == datetime(2030, 1, 1, 22, 4, 5, 678901, tzinfo=timezone.utc)
        assert row.lease_expires_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    record = make_search(engine)
    with pytest.raises(Exception, match="naive datetime"):
        with session_scope(engine) as session:
            session.get(SearchModel, record.id).started_at = datetime(2030, 1, 1)


def test_get_engine_is_cached_per_url_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROPSEARCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DROPSEARCH_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        engine = get_engine()
        assert engine is get_engine()
        assert engine.url.database == str((tmp_path / "dropsearch.db").resolve())
        other = get_engine(f"sqlite:///{tmp_path / 'other.db'}")
        assert other is not engine
    finally:
        db.dispose_engines()
        get_settings.cache_clear()
    assert db._engines == {}


def test_sqlite_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path, sqlite_template: Path) -> None:
    # Another connection holds the write lock for 0.5 s; a store write started meanwhile waits, then succeeds.
    path = tmp_path / "store.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, blocker.rollback)
    release.start()
    started = time.perf_counter()
    record = make_search(engine)
    waited = time.perf_counter() - started
    release.join()
    blocker.close()
    engine.dispose()
    assert record.status == "queued"
    assert 0.4 < waited < 10


def test_sqlite_read_only_scope_does_not_wait_for_writers(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}")
    record = make_search(engine)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        with session_scope(engine, read_only=True) as session:
            assert load_search(session=session, search_id=record.id) == record
        assert time.perf_counter() - started < 0.3
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
