"""The Tune callback's bookkeeping, driven directly with Tune's hook calls (no Ray needed)."""

from __future__ import annotations

from types import SimpleNamespace

from dropsearch.runner.events import ControllerUpdated, SearchCallbacks, TrialFinished, TrialStarted
from dropsearch.runner.tune_events import SearchEventsCallback
from dropsearch.search.reward import LAST_REPORT
from dropsearch.search.spec import SearchSpec

SPEC = SearchSpec.model_validate(
    {"model": {"name": "mlp"}, "dataset": {"name": "digits"}, "budget": {"trials": 3, "epochs_per_trial": 3}}
)


def trial(trial_id: str, index: int) -> SimpleNamespace:
    config = {"proposal_index": index, "tokens": [0], "pattern": {"variant": "none"}}
    return SimpleNamespace(trial_id=trial_id, config=config)


def callback(cancelling: bool) -> tuple[SearchEventsCallback, list]:
    seen: list = []
    hooks = SearchCallbacks(on_trial_started=seen.append, on_trial_finished=seen.append)
    events = SearchEventsCallback(hooks, SPEC, cancelling=lambda: cancelling)
    return events, seen


def test_a_trial_still_running_when_the_experiment_ends_is_finished_not_left_running() -> None:
    events, seen = callback(cancelling=True)
    done, running, never_reported = trial("a", 0), trial("b", 1), trial("c", 2)
    everything = [done, running, never_reported]
    for t in everything:
        events.on_trial_start(0, everything, t)
    for epoch in (1, 2, 3):
        events.on_trial_result(0, everything, done, {"epoch": epoch, "val_accuracy": 0.5, "node": "n"})
    events.on_trial_complete(0, everything, done)
    events.on_trial_result(0, everything, running, {"epoch": 1, "val_accuracy": 0.4, "node": "n"})
    # the stopper ends the experiment: Tune stops the actors of b and c without on_trial_complete
    events.on_experiment_end(everything)
    try:
        finished = [e for e in seen if isinstance(e, TrialFinished)]
        assert [(e.index, e.status) for e in finished] == [(0, "succeeded"), (1, "cancelled")]
        assert finished[1].reward is None and len(finished[1].metrics) == 1
        assert [e.index for e in seen if isinstance(e, TrialStarted)] == [0, 1]  # c never ran an epoch
        assert not events.trials
    finally:
        events.release()


def test_without_a_stop_reason_a_leftover_trial_ends_stopped_with_its_reward() -> None:
    events, seen = callback(cancelling=False)
    running = trial("b", 1)
    events.on_trial_start(0, [running], running)
    events.on_trial_result(0, [running], running, {"epoch": 1, "val_accuracy": 0.4, "node": "n"})
    events.on_experiment_end([running])
    try:
        (finished,) = [e for e in seen if isinstance(e, TrialFinished)]
        assert (finished.index, finished.status, finished.reward) == (1, "stopped", 0.4)
    finally:
        events.release()


def test_a_trial_that_fails_before_it_ever_started_is_recorded_failed_not_dropped() -> None:
    # seen in a study: the reused actor died while the trial was placed on it; Tune spent the trial's retries on
    # the dead actor and called on_trial_error without any on_trial_start
    events, seen = callback(cancelling=False)
    lost = trial("x", 16)
    lost.num_failures, lost.local_path, lost.error_file = 3, None, None
    events.on_trial_error(0, [lost], lost)
    events.on_trial_error(0, [lost], lost)  # a second call records nothing more
    try:
        started = [e for e in seen if isinstance(e, TrialStarted)]
        finished = [e for e in seen if isinstance(e, TrialFinished)]
        assert [(e.index, e.attempt) for e in started] == [(16, 3)]
        assert [(e.index, e.status, e.reward, e.error) for e in finished] == [(16, "failed", None, "trial raised")]
    finally:
        events.release()


def test_a_last_report_finishes_the_trial_before_the_controller_update_it_caused() -> None:
    seen: list = []
    hooks = SearchCallbacks(
        on_trial_started=seen.append, on_trial_finished=seen.append, on_controller_updated=seen.append
    )
    events = SearchEventsCallback(hooks, SPEC, cancelling=lambda: False)
    last = trial("a", 0)
    update = ControllerUpdated(1, 1, {}, {})
    try:
        events.on_trial_start(0, [last], last)
        events.on_trial_result(0, [last], last, {"epoch": 2, "val_accuracy": 0.3, "node": "n"})
        events.post(update)  # the searcher closed its batch on the trial's last report...
        final = {"epoch": 3, "val_accuracy": 0.6, "node": "n", LAST_REPORT: True}
        events.on_trial_result(0, [last], last, final)  # ...which the callback sees right after it
        assert [type(e).__name__ for e in seen] == ["TrialStarted", "TrialFinished", "ControllerUpdated"]
        assert (seen[1].status, seen[1].reward, len(seen[1].metrics)) == ("succeeded", 0.6, 2)
        # Tune then ends the trial (even failing it, or retrying it): nothing more is recorded for it
        events.on_trial_complete(0, [last], last)
        last.num_failures, last.local_path, last.error_file = 1, None, None
        events.on_trial_error(0, [last], last)
        events.on_trial_start(0, [last], last)
        events.on_trial_result(0, [last], last, {"epoch": 1, "val_accuracy": 0.1, "node": "n"})
        events.on_experiment_end([last])
        assert len(seen) == 3 and not events.trials
    finally:
        events.release()
