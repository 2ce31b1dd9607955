from __future__ import annotations

import math
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from dropsearch.store.db import session_scope
from dropsearch.store.errors import NotFoundError, TrialCompletedError
from dropsearch.store.models import TrialModel, utcnow
from dropsearch.store.searches import load_search
from dropsearch.store.trials import (
    best_trial,
    completed_trials,
    get_trial,
    list_trials,
    requeue_stale_trials,
    trial_finished,
    trial_reported,
    trial_started,
)
from tests.store.factories import make_search

PATTERN = {"format": "dropsearch.pattern/v1", "variant": "bernoulli", "sites": [], "params": {}}


def _start(engine: Engine, search_id: str, index: int, tokens=(1, 2, 3)):
    with session_scope(engine) as session:
        return trial_started(
            session=session, search_id=search_id, index=index, tokens=tokens, pattern=PATTERN, node="node-1"
        )


def _finish(engine: Engine, search_id: str, index: int, status: str = "succeeded", reward: float | None = 0.5):
    with session_scope(engine) as session:
        return trial_finished(session=session, search_id=search_id, index=index, status=status, reward=reward)


def _report(engine: Engine, search_id: str, index: int, epoch: int, **metrics):
    with session_scope(engine) as session:
        return trial_reported(session=session, search_id=search_id, index=index, epoch=epoch, metrics=metrics)


def _search(engine: Engine, search_id: str):
    with session_scope(engine) as session:
        return load_search(session=session, search_id=search_id)


def test_lifecycle_round_trip(engine: Engine) -> None:
    search = make_search(engine, trials=3)
    started = _start(engine, search.id, 0)
    assert (started.status, started.attempt, started.tokens, started.pattern) == ("running", 1, [1, 2, 3], PATTERN)
    assert started.node == "node-1" and started.heartbeat_at == started.started_at
    _report(engine, search.id, 0, 1, val_accuracy=0.7, loss=0.9)
    _report(engine, search.id, 0, 0, val_accuracy=0.6, loss=float("nan"))  # out of order, NaN
    reported = _report(engine, search.id, 0, 1, val_accuracy=0.75, loss=0.8)  # epoch 1 again: replaced
    assert reported.metrics == [
        {"epoch": 0, "val_accuracy": 0.6, "loss": None},
        {"epoch": 1, "val_accuracy": 0.75, "loss": 0.8},
    ]
    assert reported.heartbeat_at >= started.heartbeat_at
    finished = _finish(engine, search.id, 0, reward=0.75)
    assert (finished.status, finished.reward, finished.completed) == ("succeeded", 0.75, True)
    assert finished.wall_s == pytest.approx((finished.finished_at - finished.started_at).total_seconds())
    assert finished.metrics == reported.metrics
    progress = _search(engine, search.id)
    assert (progress.trials_done, progress.best_reward, progress.best_trial_id) == (1, 0.75, finished.id)
    with session_scope(engine) as session:
        assert get_trial(session=session, owner="alice", trial_id=finished.id) == finished
        assert get_trial(session=session, owner="bob", trial_id=finished.id) is None


def test_finishing_twice_keeps_one_result(engine: Engine) -> None:
    search = make_search(engine, trials=2)
    _start(engine, search.id, 0)
    first = _finish(engine, search.id, 0, reward=0.4)
    again = _finish(engine, search.id, 0, reward=0.9)
    failed_later = _finish(engine, search.id, 0, status="failed", reward=None)
    assert first == again == failed_later
    progress = _search(engine, search.id)
    assert (progress.trials_done, progress.best_reward) == (1, 0.4)


def test_concurrent_finishes_count_once(engine: Engine) -> None:
    search = make_search(engine, trials=1)
    _start(engine, search.id, 0)
    barrier = threading.Barrier(4)
    rewards = [0.1, 0.2, 0.3, 0.4]

    def finish(reward: float) -> None:
        barrier.wait()
        _finish(engine, search.id, 0, reward=reward)

    threads = [threading.Thread(target=finish, args=(reward,)) for reward in rewards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress = _search(engine, search.id)
    with session_scope(engine) as session:
        stored = completed_trials(session=session, search_id=search.id)
    assert progress.trials_done == 1 and len(stored) == 1
    assert stored[0].reward in rewards and progress.best_reward == stored[0].reward


@pytest.mark.parametrize("status", ["succeeded", "stopped", "failed"])
def test_completed_trial_is_never_restarted(engine: Engine, status: str) -> None:
    search = make_search(engine, trials=2)
    _start(engine, search.id, 1)
    done = _finish(engine, search.id, 1, status=status, reward=None if status == "failed" else 0.3)
    with pytest.raises(TrialCompletedError, match="never re-run"):
        _start(engine, search.id, 1, tokens=(9, 9, 9))
    with session_scope(engine) as session:
        assert completed_trials(session=session, search_id=search.id) == [done]
        assert requeue_stale_trials(session=session, older_than_s=0) == 0


def test_restart_of_an_unfinished_trial_bumps_attempt_and_clears_metrics(engine: Engine) -> None:
    search = make_search(engine, trials=2)
    first = _start(engine, search.id, 0)
    _report(engine, search.id, 0, 0, val_accuracy=0.5)
    second = _start(engine, search.id, 0, tokens=(4, 5, 6))
    assert (second.id, second.attempt, second.metrics, second.tokens) == (first.id, 2, [], [4, 5, 6])
    _finish(engine, search.id, 0, status="cancelled", reward=None)
    third = _start(engine, search.id, 0)
    assert (third.attempt, third.status) == (3, "running")
    assert _search(engine, search.id).trials_done == 0  # a cancel is not a completion
    with session_scope(engine) as session:
        assert list_trials(session=session, search_id=search.id).total == 1


def test_stale_running_trials_are_requeued_and_keep_their_attempt(engine: Engine) -> None:
    search = make_search(engine, trials=4)
    other = make_search(engine, trials=4)
    for index in range(3):
        _start(engine, search.id, index)
    _start(engine, other.id, 0)
    _finish(engine, search.id, 2, reward=0.9)
    with session_scope(engine) as session:  # trial 0 has not reported for 2 minutes
        session.execute(
            update(TrialModel)
            .where(TrialModel.search_id == search.id, TrialModel.index == 0)
            .values(heartbeat_at=utcnow() - timedelta(minutes=2))
        )
    with session_scope(engine) as session:
        assert requeue_stale_trials(session=session, older_than_s=60) == 1
    with session_scope(engine) as session:
        by_index = {t.index: t for t in list_trials(session=session, search_id=search.id).items}
    assert {i: t.status for i, t in by_index.items()} == {0: "queued", 1: "running", 2: "succeeded"}
    assert by_index[0].attempt == 1
    _report(engine, search.id, 0, 0, val_accuracy=0.1)  # a late report from the dead worker is ignored
    with session_scope(engine) as session:  # a runner taking the search over requeues all its running trials
        assert requeue_stale_trials(session=session, older_than_s=0, search_id=search.id) == 1
        queued = list_trials(session=session, search_id=search.id, statuses=["queued"])
        assert [t.index for t in queued.items] == [0, 1] and queued.items[0].metrics == []
        assert list_trials(session=session, search_id=other.id).items[0].status == "running"
    assert _start(engine, search.id, 0).attempt == 2


def test_best_trial_follows_the_objective_mode(engine: Engine) -> None:
    for mode, expected in (("max", 0.9), ("min", 0.2)):
        search = make_search(engine, trials=5, mode=mode)
        rewards = {0: ("succeeded", 0.5), 1: ("stopped", 0.9), 2: ("failed", None), 3: ("succeeded", 0.2)}
        for index, (status, reward) in rewards.items():
            _start(engine, search.id, index)
            _finish(engine, search.id, index, status=status, reward=reward)
        progress = _search(engine, search.id)
        with session_scope(engine) as session:
            best = best_trial(session=session, search_id=search.id)
        assert best.reward == expected == progress.best_reward
        assert best.id == progress.best_trial_id
        assert progress.trials_done == 4


def test_bad_calls_are_refused(engine: Engine) -> None:
    search = make_search(engine, trials=2)
    with pytest.raises(ValueError, match="index"):
        _start(engine, search.id, 2)
    with pytest.raises(NotFoundError):
        _start(engine, "0" * 32, 0)
    with pytest.raises(NotFoundError):
        _finish(engine, search.id, 0)
    _start(engine, search.id, 0)
    with pytest.raises(ValueError, match="finite reward"):
        _finish(engine, search.id, 0, reward=None)
    with pytest.raises(ValueError, match="finite reward"):
        _finish(engine, search.id, 0, reward=math.inf)
    with pytest.raises(ValueError, match="status"):
        _finish(engine, search.id, 0, status="running")
    with session_scope(engine) as session:
        assert best_trial(session=session, search_id=search.id) is None
