"""The search engine on a real local Ray: one Tune experiment per search, ASHA, retries, cancel, DDP children."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from dropsearch.runner.engine import run_search
from dropsearch.runner.events import SearchCallbacks
from dropsearch.search.spec import SearchSpec
from dropsearch.workers.setup import InsufficientResourcesError
from tests._live import DIGITS, with_overrides

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


BODY = with_overrides(
    DIGITS, space={"variants": ["bernoulli", "dropblock", "autodropout", "ydrop"], "rates": [0.0, 0.2, 0.5]}
)


def _spec(**overrides) -> SearchSpec:
    return SearchSpec.model_validate(with_overrides(BODY, **overrides))


class Recorder(SearchCallbacks):
    def __init__(self):
        super().__init__()
        self.events = []
        self.on_trial_started = self.events.append
        self.on_epoch = self.events.append
        self.on_trial_finished = self.events.append
        self.on_controller_updated = self.events.append

    def of(self, kind):
        return [e for e in self.events if type(e).__name__ == kind]


def test_a_search_runs_every_trial_with_per_epoch_metrics_and_updates_the_controller():
    rec = Recorder()
    result = run_search(_spec(), callbacks=rec)
    assert result.status == "succeeded"
    finished = rec.of("TrialFinished")
    assert sorted(t.index for t in finished) == list(range(8))
    for trial in finished:
        assert trial.status == "succeeded"
        assert [m["epoch"] for m in trial.metrics] == [1, 2]
        assert trial.reward == trial.metrics[-1]["val_accuracy"]
    assert len(rec.of("EpochReported")) == 16
    updates = rec.of("ControllerUpdated")
    assert [u.updates for u in updates] == [1, 2] and [u.trials_seen for u in updates] == [4, 8]
    assert result.best_reward == max(t.reward for t in finished)
    # a controller state never counts a trial whose end was not reported before it
    order = [type(e).__name__ for e in rec.events]
    for update in updates:
        position = rec.events.index(update)
        ended = {e.index for e in rec.events[:position] if type(e).__name__ == "TrialFinished"}
        assert set(range(update.trials_seen)) <= ended, order
    assert result.best_pattern["variant"] in ("bernoulli", "dropblock", "autodropout", "ydrop")


def test_asha_stops_weak_trials_early():
    rec = Recorder()
    spec = _spec(budget={"trials": 8, "epochs_per_trial": 4, "early_stopping": "asha"})
    run_search(spec, callbacks=rec)
    finished = rec.of("TrialFinished")
    stopped = [t for t in finished if t.status == "stopped"]
    assert stopped, [t.status for t in finished]
    for t in stopped:  # ASHA (grace 1, reduction 2) decides at the rungs, epochs 1 and 2 here
        assert len(t.metrics) in (1, 2) and t.reward is not None
    assert any(len(t.metrics) == 4 for t in finished)


def _short_epochs_spec(*, trials: int, epochs: int, concurrent: int) -> SearchSpec:
    """A tiny MLP on 200 synthetic examples: epochs of a few milliseconds, grouped several per call."""
    return _spec(
        model={"name": "mlp", "params": {"hidden": [16]}},
        dataset={"name": "synthetic", "params": {"n": 200}},
        space={"variants": ["bernoulli"], "rates": [0.0, 0.2]},
        controller={"name": "random", "batch_size": concurrent},
        budget={"trials": trials, "epochs_per_trial": epochs, "max_concurrent": concurrent},
    )


def test_short_epochs_go_several_per_call_and_every_epoch_is_still_reported_in_order():
    rec = Recorder()
    run_search(_short_epochs_spec(trials=2, epochs=30, concurrent=2), callbacks=rec)
    for index in (0, 1):
        epochs = [e.metrics["epoch"] for e in rec.of("EpochReported") if e.index == index]
        assert epochs == list(range(1, 31))
    finished = rec.of("TrialFinished")
    assert all(t.status == "succeeded" and len(t.metrics) == 30 for t in finished)


def test_a_failure_inside_a_group_of_short_epochs_reports_the_epochs_before_it_then_retries():
    rec = Recorder()
    spec = _short_epochs_spec(trials=1, epochs=20, concurrent=1)
    run_search(spec, callbacks=rec, max_failures=1, child_overrides={"inject_failure_at_epoch": 9})
    reported = [(e.index, e.metrics["epoch"]) for e in rec.of("EpochReported")]
    assert reported == [(0, k) for k in range(1, 9)] * 2  # each attempt reports epochs 1-8, then fails at 9
    (finished,) = rec.of("TrialFinished")
    assert finished.status == "failed" and "injected failure at epoch 9" in finished.error
    assert [s.attempt for s in rec.of("TrialStarted")] == [1, 2]


def test_a_trial_that_raises_is_retried_then_reported_failed_and_the_search_goes_on():
    rec = Recorder()
    result = run_search(
        _spec(budget={"trials": 4}),
        callbacks=rec,
        max_failures=1,
        child_overrides={"inject_failure_at_epoch": 2},
    )
    starts = rec.of("TrialStarted")
    assert sorted((s.index, s.attempt) for s in starts) == [(i, a) for i in range(4) for a in (1, 2)]
    finished = rec.of("TrialFinished")
    assert sorted(t.index for t in finished) == [0, 1, 2, 3]
    assert all(t.status == "failed" and "injected failure" in t.error for t in finished)
    assert result.status == "succeeded" and result.updates == 0


def test_a_trial_that_fails_once_succeeds_on_its_retry():
    rec = Recorder()
    run_search(
        _spec(budget={"trials": 2}),
        callbacks=rec,
        max_failures=2,
        child_overrides={"inject_failure_at_epoch": 1, "inject_failure_attempts": 1},
    )
    finished = rec.of("TrialFinished")
    assert all(t.status == "succeeded" for t in finished)
    assert max(s.attempt for s in rec.of("TrialStarted")) == 2


def test_cancel_stops_running_trials_and_keeps_finished_ones():
    rec = Recorder()
    rec.should_cancel = lambda: len(rec.of("TrialFinished")) >= 2
    result = run_search(_spec(budget={"trials": 8, "epochs_per_trial": 3}), callbacks=rec)
    assert result.status == "cancelled"
    statuses = [t.status for t in rec.of("TrialFinished")]
    assert statuses.count("succeeded") >= 2 and len(statuses) < 8


def test_more_gpus_per_trial_than_the_cluster_has_is_refused_before_any_trial():
    rec = Recorder()
    with pytest.raises(InsufficientResourcesError, match="gpus_per_trial"):
        run_search(_spec(resources={"gpus_per_trial": 1}), callbacks=rec)
    assert rec.events == []


def test_ddp_child_with_two_workers_reports_once_per_epoch():
    rec = Recorder()
    spec = _spec(
        budget={"trials": 1, "epochs_per_trial": 2, "max_concurrent": 1},
        controller={"batch_size": 1},
        resources={"cpus_per_trial": 0.5, "workers_per_trial": 2},
    )
    run_search(spec, callbacks=rec)
    epochs = rec.of("EpochReported")
    assert [e.metrics["epoch"] for e in epochs] == [1, 2]
    assert all(e.metrics["workers"] == 2 for e in epochs)
    assert rec.of("TrialFinished")[0].status == "succeeded"


def test_largedrop_pretraining_epochs_are_reported_inside_epochs_per_trial():
    rec = Recorder()
    spec = _spec(
        space={"variants": ["largedrop"]},  # params.pretrain_epochs 2 or 5: capped at 2 of the 3 epochs
        budget={"trials": 2, "epochs_per_trial": 3, "max_concurrent": 2},
        controller={"batch_size": 2},
    )
    result = run_search(spec, callbacks=rec)
    assert result.status == "succeeded"
    finished = rec.of("TrialFinished")
    assert len(finished) == 2
    for trial in finished:
        assert trial.status == "succeeded", trial
        assert [m["epoch"] for m in trial.metrics] == [1, 2, 3]  # pre-training epochs included, not 3 more
    assert len(rec.of("EpochReported")) == 6


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_ddp_child_pretrains_then_fine_tunes_within_its_epochs():
    rec = Recorder()
    spec = _spec(
        space={"variants": ["largedrop"]},
        budget={"trials": 1, "epochs_per_trial": 3, "max_concurrent": 1},
        controller={"batch_size": 1},
        resources={"cpus_per_trial": 0.5, "workers_per_trial": 2},
    )
    run_search(spec, callbacks=rec)
    epochs = rec.of("EpochReported")
    assert [e.metrics["epoch"] for e in epochs] == [1, 2, 3]
    assert all(e.metrics["workers"] == 2 for e in epochs)
    assert rec.of("TrialFinished")[0].status == "succeeded"


def test_the_trials_of_every_batch_run_at_the_same_time_in_the_processes_of_the_batch_before():
    # 3 batches of 2, 2 at a time: a batch closes on its last trial's last report, while Tune still holds that
    # trial's process, so both processes carry over. Before, Tune kept one of the two: the next batch's second
    # trial waited for a new process (~5 s) or for the first to end, and batches ran one trial at a time.
    rec = Recorder()
    spans: dict[int, tuple[float, float]] = {}  # trial index -> (start, end) on the driver's clock

    def finished(event):
        now = time.monotonic()
        spans[event.index] = (now - event.wall_s, now)
        rec.events.append(event)

    rec.on_trial_finished = finished
    spec = _spec(controller={"batch_size": 2}, budget={"trials": 6, "epochs_per_trial": 4})
    with tempfile.TemporaryDirectory() as storage:
        result = run_search(spec, callbacks=rec, storage_path=storage, loggers=("json",))
        pids = {json.loads(line)["pid"] for path in Path(storage).rglob("result.json") for line in path.open()}
    assert result.status == "succeeded"
    assert sorted((t.index, t.status) for t in rec.of("TrialFinished")) == [(i, "succeeded") for i in range(6)]
    assert [u.trials_seen for u in rec.of("ControllerUpdated")] == [2, 4, 6]
    assert len(pids) == 2  # the search's two trial processes ran all six trials
    for first in (2, 4):
        (start_a, end_a), (start_b, end_b) = spans[first], spans[first + 1]
        assert max(start_a, start_b) < min(end_a, end_b), spans  # the two trials of the batch overlap
