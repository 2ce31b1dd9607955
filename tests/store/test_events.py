from __future__ import annotations

import pytest
from sqlalchemy import Engine

from dropsearch.store.db import session_scope
from dropsearch.store.events import append_event, events_after
from tests.store.factories import make_search


def test_cursor_returns_events_in_order_per_search(engine: Engine) -> None:
    search, other = make_search(engine), make_search(engine)
    appended = []
    for step in range(7):
        with session_scope(engine) as session:
            target = search.id if step != 3 else other.id
            appended.append(
                append_event(session=session, search_id=target, kind="trial.reported", data={"epoch": step})
            )
    mine = [event for event in appended if event.search_id == search.id]
    assert [event.id for event in appended] == sorted(event.id for event in appended)
    with session_scope(engine) as session:
        everything = events_after(session=session, search_id=search.id)
        page1 = events_after(session=session, search_id=search.id, after_id=0, limit=4)
        page2 = events_after(session=session, search_id=search.id, after_id=page1[-1].id, limit=4)
        tail = events_after(session=session, search_id=search.id, after_id=page2[-1].id)
    assert everything == mine
    assert [event.data["epoch"] for event in page1 + page2] == [0, 1, 2, 4, 5, 6]
    assert tail == []
    assert everything[0].kind == "trial.reported" and everything[0].created_at.tzinfo is not None


def test_event_data_is_json_safe(engine: Engine) -> None:
    search = make_search(engine)
    with session_scope(engine) as session:
        event = append_event(session=session, search_id=search.id, kind="x", data={"r": float("inf"), "t": (1, 2)})
    with session_scope(engine) as session:
        assert events_after(session=session, search_id=search.id)[0].data == {"r": None, "t": [1, 2]} == event.data
        with pytest.raises(ValueError, match="kind"):
            append_event(session=session, search_id=search.id, kind="", data={})
        with pytest.raises(ValueError, match="limit"):
            events_after(session=session, search_id=search.id, limit=0)
