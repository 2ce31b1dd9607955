from __future__ import annotations

import pytest
from sqlalchemy import Engine

from dropsearch.store.db import session_scope
from dropsearch.store.leases import claim_next_queued_search
from dropsearch.store.searches import (
    create_search,
    get_search,
    list_searches,
    load_search,
    mark_search_finished,
    request_cancel,
)
from tests.store.factories import make_search, spec


def test_create_and_get_round_trip(engine: Engine) -> None:
    job = spec(trials=7)
    with session_scope(engine) as session:
        created = create_search(session=session, owner="alice", name="run 1", spec=job, trials_total=7)
    with session_scope(engine) as session:
        got = get_search(session=session, owner="alice", search_id=created.id)
    assert got == created
    assert (got.status, got.name, got.spec, got.trials_total, got.trials_done) == ("queued", "run 1", job, 7, 0)
    assert (got.best_reward, got.best_trial_id, got.cancel_requested, got.lease_owner) == (None, None, False, None)
    assert len(got.id) == 32 and got.started_at is None and got.finished_at is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"owner": ""}, "owner"),
        ({"trials_total": 0}, "trials_total"),
        ({"trials_total": True}, "trials_total"),
        ({"objective_mode": "best"}, "objective_mode"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_create_refuses_bad_values(engine: Engine, kwargs: dict, match: str) -> None:
    arguments = {"owner": "alice", "name": None, "spec": spec(), "trials_total": 3} | kwargs
    with session_scope(engine) as session, pytest.raises(ValueError, match=match):
        create_search(session=session, **arguments)


def test_owner_isolation(engine: Engine) -> None:
    mine = make_search(engine, owner="alice")
    make_search(engine, owner="bob")
    with session_scope(engine) as session:
        assert get_search(session=session, owner="bob", search_id=mine.id) is None
        assert request_cancel(session=session, owner="bob", search_id=mine.id) is None
        assert [s.owner for s in list_searches(session=session, owner="bob").items] == ["bob"]
        assert list_searches(session=session, owner="carol").total == 0
    with session_scope(engine) as session:
        assert get_search(session=session, owner="alice", search_id=mine.id).status == "queued"  # bob's cancel: no-op


def test_list_is_newest_first_with_total_and_pages(engine: Engine) -> None:
    ids = [make_search(engine, owner="alice").id for _ in range(5)]
    with session_scope(engine) as session:
        first = list_searches(session=session, owner="alice", limit=2)
        rest = list_searches(session=session, owner="alice", limit=10, offset=2)
        queued = list_searches(session=session, owner="alice", status="running")
    assert first.total == rest.total == 5
    assert [s.id for s in first.items + rest.items] == ids[::-1]
    assert queued.total == 0 and queued.items == []
    with session_scope(engine) as session, pytest.raises(ValueError, match="limit"):
        list_searches(session=session, owner="alice", limit=0)


def test_cancel_queued_search_is_immediate(engine: Engine) -> None:
    record = make_search(engine)
    with session_scope(engine) as session:
        cancelled = request_cancel(session=session, owner="alice", search_id=record.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with session_scope(engine) as session:  # a cancelled search is never claimed
        assert claim_next_queued_search(session=session, runner_id="r1", lease_s=30) is None


def test_cancel_running_search_sets_the_flag_for_the_runner(engine: Engine) -> None:
    record = make_search(engine)
    with session_scope(engine) as session:
        claim_next_queued_search(session=session, runner_id="r1", lease_s=30)
    with session_scope(engine) as session:
        flagged = request_cancel(session=session, owner="alice", search_id=record.id)
    assert (flagged.status, flagged.cancel_requested) == ("running", True)
    with session_scope(engine) as session:
        assert mark_search_finished(session=session, search_id=record.id, status="cancelled", runner_id="r1")
    with session_scope(engine) as session:
        final = load_search(session=session, search_id=record.id)
        again = request_cancel(session=session, owner="alice", search_id=record.id)
    assert (final.status, final.lease_owner, final.lease_expires_at) == ("cancelled", None, None)
    assert again == final


def test_mark_finished_is_guarded(engine: Engine) -> None:
    record = make_search(engine)
    with session_scope(engine) as session:
        claim_next_queued_search(session=session, runner_id="r1", lease_s=30)
    with session_scope(engine) as session:
        with pytest.raises(ValueError, match="running"):
            mark_search_finished(session=session, search_id=record.id, status="running")
        assert not mark_search_finished(session=session, search_id=record.id, status="failed", runner_id="r2")
        assert mark_search_finished(session=session, search_id=record.id, status="failed", error="oom", runner_id="r1")
        assert not mark_search_finished(session=session, search_id=record.id, status="succeeded")
    with session_scope(engine) as session:
        final = load_search(session=session, search_id=record.id)
    assert (final.status, final.error) == ("failed", "oom")
    assert final.started_at <= final.finished_at
