from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from dropsearch.store.controller_states import latest_controller_state, save_controller_state
from dropsearch.store.db import session_scope
from dropsearch.store.models import ControllerStateModel
from tests.store.factories import make_search


def _save(engine: Engine, search_id: str, blob: bytes, updates: int, keep: int | None = None) -> int:
    with session_scope(engine) as session:
        return save_controller_state(
            session=session, search_id=search_id, blob=blob, updates=updates, trials_seen=8 * updates, keep=keep
        )


def test_versions_are_monotonic_per_search_and_latest_wins(engine: Engine) -> None:
    search, other = make_search(engine), make_search(engine)
    with session_scope(engine) as session:
        assert latest_controller_state(session=session, search_id=search.id) is None
    blobs = [bytes([i]) * (1000 + i) + b"\x00\xff" for i in range(4)]
    assert [_save(engine, search.id, blob, updates) for updates, blob in enumerate(blobs, 1)] == [1, 2, 3, 4]
    assert _save(engine, other.id, b"other", 1) == 1
    with session_scope(engine) as session:
        latest = latest_controller_state(session=session, search_id=search.id)
    assert (latest.version, latest.blob, latest.updates, latest.trials_seen) == (4, blobs[3], 4, 32)
    assert latest.created_at.tzinfo is not None


def test_keep_prunes_old_versions(engine: Engine) -> None:
    search = make_search(engine)
    for updates in range(1, 6):
        version = _save(engine, search.id, b"x" * updates, updates, keep=2)
    assert version == 5
    with session_scope(engine) as session:
        versions = session.scalars(
            select(ControllerStateModel.version).where(ControllerStateModel.search_id == search.id)
        ).all()
    assert sorted(versions) == [4, 5]
    assert _save(engine, search.id, b"y", 6) == 6  # numbering continues after pruning
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(ControllerStateModel)) == 3


def test_bad_values_are_refused(engine: Engine) -> None:
    search = make_search(engine)
    with session_scope(engine) as session:
        with pytest.raises(ValueError, match="bytes"):
            save_controller_state(session=session, search_id=search.id, blob="text", updates=1, trials_seen=1)
        with pytest.raises(ValueError, match="keep"):
            save_controller_state(session=session, search_id=search.id, blob=b"", updates=1, trials_seen=1, keep=0)
