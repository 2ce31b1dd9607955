from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from dropsearch.store.db import session_scope
from dropsearch.store.leases import (
    acquire_lease,
    claim_next_queued_search,
    find_resumable,
    release_lease,
    renew_lease,
)
from dropsearch.store.models import SearchModel, utcnow
from dropsearch.store.searches import load_search, mark_search_finished
from tests.store.factories import make_search


def _claim(engine: Engine, runner_id: str, lease_s: float = 30.0):
    with session_scope(engine) as session:
        return claim_next_queued_search(session=session, runner_id=runner_id, lease_s=lease_s)


def _expire(engine: Engine, search_id: str) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(SearchModel)
            .where(SearchModel.id == search_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_claim_takes_the_oldest_queued_search_with_a_lease(engine: Engine) -> None:
    first, second = make_search(engine), make_search(engine)
    before = utcnow()
    claimed = _claim(engine, "r1", lease_s=30)
    assert claimed.id == first.id
    assert (claimed.status, claimed.lease_owner) == ("running", "r1")
    assert before + timedelta(seconds=29) < claimed.lease_expires_at < utcnow() + timedelta(seconds=31)
    assert claimed.started_at is not None
    assert _claim(engine, "r2").id == second.id
    assert _claim(engine, "r3") is None


def _race(engine: Engine, runner_ids: list[str], attempt) -> dict[str, object]:
    """Run ``attempt(runner_id)`` in one thread per runner, all released together; return each runner's result."""
    barrier = threading.Barrier(len(runner_ids))
    results: dict[str, object] = {}

    def run(runner_id: str) -> None:
        barrier.wait()
        results[runner_id] = attempt(runner_id)

    threads = [threading.Thread(target=run, args=(runner_id,)) for runner_id in runner_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_runners_claiming_at_once_never_share_a_search(engine: Engine) -> None:
    for _ in range(3):
        record = make_search(engine)
        results = _race(engine, ["a", "b"], lambda runner_id: _claim(engine, runner_id))
        winners = [name for name, got in results.items() if got is not None]
        assert len(winners) == 1, results
        assert results[winners[0]].id == record.id
        with session_scope(engine) as session:
            assert load_search(session=session, search_id=record.id).lease_owner == winners[0]


def test_many_runners_claim_each_search_exactly_once(engine: Engine) -> None:
    ids = {make_search(engine).id for _ in range(12)}
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def runner(runner_id: str) -> None:
        barrier.wait()
        while (got := _claim(engine, runner_id)) is not None:
            with lock:
                claims.append((runner_id, got.id))

    threads = [threading.Thread(target=runner, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(search_id for _, search_id in claims) == Counter(ids)


def test_renew_extends_only_the_holders_lease(engine: Engine) -> None:
    record = make_search(engine)
    claimed = _claim(engine, "r1", lease_s=5)
    time.sleep(0.01)
    with session_scope(engine) as session:
        assert renew_lease(session=session, search_id=record.id, runner_id="r1", lease_s=60)
        assert not renew_lease(session=session, search_id=record.id, runner_id="r2", lease_s=60)
        renewed = load_search(session=session, search_id=record.id)
    assert renewed.lease_expires_at > claimed.lease_expires_at + timedelta(seconds=50)
    with pytest.raises(ValueError, match="lease_s"):
        with session_scope(engine) as session:
            renew_lease(session=session, search_id=record.id, runner_id="r1", lease_s=0)


def test_live_lease_blocks_takeover_and_expired_lease_can_be_taken_over(engine: Engine) -> None:
    record = make_search(engine)
    _claim(engine, "dead")
    with session_scope(engine) as session:
        assert find_resumable(session=session, runner_id="other") == []
        assert acquire_lease(session=session, search_id=record.id, runner_id="other", lease_s=30) is None
        assert [s.id for s in find_resumable(session=session, runner_id="dead")] == [record.id]  # its own restart
    _expire(engine, record.id)
    with session_scope(engine) as session:
        assert [s.id for s in find_resumable(session=session, runner_id="other")] == [record.id]
        taken = acquire_lease(session=session, search_id=record.id, runner_id="other", lease_s=30)
    assert (taken.lease_owner, taken.status) == ("other", "running")
    assert taken.lease_expires_at > utcnow()
    with session_scope(engine) as session:  # the old runner learns it lost the lease and cannot finish the search
        assert not renew_lease(session=session, search_id=record.id, runner_id="dead", lease_s=30)
        assert not mark_search_finished(session=session, search_id=record.id, status="failed", runner_id="dead")
        assert find_resumable(session=session, runner_id="dead") == []


def test_concurrent_takeover_of_an_expired_lease_has_one_winner(engine: Engine) -> None:
    record = make_search(engine)
    _claim(engine, "dead")
    _expire(engine, record.id)

    def take(runner_id: str):
        with session_scope(engine) as session:
            return acquire_lease(session=session, search_id=record.id, runner_id=runner_id, lease_s=30)

    results = _race(engine, ["a", "b", "c"], take)
    assert sum(got is not None for got in results.values()) == 1


def test_release_makes_the_search_resumable_at_once(engine: Engine) -> None:
    record = make_search(engine)
    _claim(engine, "r1")
    with session_scope(engine) as session:
        assert not release_lease(session=session, search_id=record.id, runner_id="r2")
        assert release_lease(session=session, search_id=record.id, runner_id="r1")
    with session_scope(engine) as session:
        released = load_search(session=session, search_id=record.id)
        assert (released.status, released.lease_owner, released.lease_expires_at) == ("running", None, None)
        assert [s.id for s in find_resumable(session=session, runner_id="r2")] == [record.id]
        assert acquire_lease(session=session, search_id=record.id, runner_id="r2", lease_s=30).lease_owner == "r2"


def test_finished_searches_are_not_resumable(engine: Engine) -> None:
    record = make_search(engine)
    _claim(engine, "r1")
    with session_scope(engine) as session:
        mark_search_finished(session=session, search_id=record.id, status="succeeded", runner_id="r1")
    with session_scope(engine) as session:
        assert find_resumable(session=session, runner_id="r1") == []
        assert acquire_lease(session=session, search_id=record.id, runner_id="r1", lease_s=30) is None
