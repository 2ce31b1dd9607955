"""A Ray Tune ``Callback`` that turns a search experiment's trial lifecycle into dropsearch's typed events.

One trial of the experiment is one trial of the search (its config's ``proposal_index`` is the trial index). For
each trial the callback emits, in order: :class:`~dropsearch.runner.events.TrialStarted` (when the trial's first
report arrives, which carries the node it runs on, or when it ends without one), one
:class:`~dropsearch.runner.events.EpochReported` per epoch (a report may carry several short epochs), and
:class:`~dropsearch.runner.events.TrialFinished` (on the trial's last report, which carries its final epoch, or
when Tune ends it earlier). A retried trial (``max_failures``) starts again with the next
attempt number. The trial's ``reward`` is the raw objective by :func:`dropsearch.search.trial_reward`'s rule (the
direction is the spec's ``objective.mode``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from ray import tune

from dropsearch.runner._local import ProcessLocal
from dropsearch.runner.events import EpochReported, SearchCallbacks, TrialFinished, TrialStarted
from dropsearch.runner.trainable import HUNG_FILE
from dropsearch.search.reward import LAST_REPORT, objective_value
from dropsearch.search.spec import SearchSpec

__all__ = ["SearchEventsCallback"]


def raw_objective(metrics: list[dict[str, Any]], metric: str, *, last_k: int = 1) -> float | None:
    """The trial's objective as measured (by :func:`dropsearch.search.reward.objective_value`), never negated."""
    return objective_value((m.get(metric) for m in metrics), last_k=last_k)


class _TrialState:
    """What the callback knows of one running trial."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.kind = config.get("kind", "search")
        if self.kind == "validation":
            self.index = int(config["trial_index"])  # set by the validation stage (store index space)
        else:
            self.index = int(config["proposal_index"])
        self.arm, self.seed = config.get("arm"), config.get("seed")
        self.tokens = tuple(config.get("tokens") or ())
        self.pattern = config["pattern"]
        self.attempt = 0
        self.started_at = time.perf_counter()
        self.announced = False
        self.metrics: list[dict[str, Any]] = []


class SearchEventsCallback(ProcessLocal, tune.Callback):
    """Emits a search's events to ``callbacks`` as Tune runs its trials.

    Args:
        callbacks: the receivers (the runner stores each event).
        spec: the search's spec (epochs of a full trial, objective).
        cancelling: returns ``True`` once the search is being cancelled; trials then end ``cancelled``.

    Controller updates (:class:`~dropsearch.runner.events.ControllerUpdated`) are handed to :meth:`post` by the
    searcher, which learns of a trial's end before this callback does; they are emitted after the trial's
    ``TrialFinished``, so a stored controller state never counts a trial whose end is not stored yet.
    """

    def __init__(self, callbacks: SearchCallbacks, spec: SearchSpec, cancelling: Any) -> None:
        self.callbacks, self.spec, self.cancelling = callbacks, spec, cancelling
        self._posted: list[Any] = []
        self.updates = 0  # controller updates emitted
        self.validation_report: dict[str, Any] | None = None  # the validation stage's latest report
        self.keep_alive()
        self.trials: dict[str, _TrialState] = {}
        self._ended: set[str] = set()  # Tune trial ids already finished here
        self.finished: list[TrialFinished] = []
        self.patterns: dict[int, dict[str, Any]] = {}  # trial index -> pattern, of the trials that ended

    def post(self, event: Any) -> None:
        """Emit ``event`` once the trial that caused it has been reported finished (see the class docstring)."""
        self._posted.append(event)

    def flush(self) -> None:
        """Emit every posted event now."""
        while self._posted:
            event = self._posted.pop(0)
            self.updates = max(self.updates, getattr(event, "updates", 0))
            self.callbacks.emit(event)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Emit updates that no trial end preceded (a batch closed by trials stored before a restart)."""
        self.flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """No trial is left unfinished and nothing posted is left behind.

        A trial still running when the stopper ended the experiment (a cancel, a time limit, a lost lease) gets
        no ``on_trial_complete`` from Tune: its actor is just stopped in the clean-up. It ends here, ``cancelled``
        (``stopped`` if the experiment ended for another reason), so the store never keeps it ``running``.
        """
        for trial in trials:
            if trial.trial_id in self.trials:
                self._finish(trial, "cancelled" if self.cancelling() else "stopped")
        self.flush()

    def _state(self, trial: Any) -> _TrialState:
        state = self.trials.get(trial.trial_id)
        if state is None:
            state = self.trials[trial.trial_id] = _TrialState(trial.config)
        return state

    def _announce(self, state: _TrialState, node: str) -> None:
        if not state.announced:
            state.announced = True
            started = TrialStarted(
                state.index, state.tokens, state.pattern, state.attempt, node, state.kind, state.arm, state.seed
            )
            self.callbacks.emit(started)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial (or a retry of it) was handed to a worker."""
        if trial.trial_id in self._ended:
            return  # finished by its last report; a failure while its process ended does not re-run it here
        state = self._state(trial)
        state.attempt += 1
        state.announced, state.metrics, state.started_at = False, [], time.perf_counter()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """One report: announce the trial on its first, then one event per epoch it carries.

        The trial's last report (``LAST_REPORT``: all its epochs trained) finishes it ``succeeded`` here: the
        searcher has counted it already, and its controller update is emitted after this ``TrialFinished``.
        """
        if trial.trial_id in self._ended:
            return
        state = self._state(trial)
        epochs = result.get("epochs") or [result]
        self._announce(state, str(epochs[0].get("node", "")))
        for metrics in epochs:
            clean = {k: v for k, v in metrics.items() if isinstance(v, int | float | str) and k != "node"}
            state.metrics.append(clean)
            self.callbacks.emit(EpochReported(state.index, clean))
        if result.get(LAST_REPORT) is True:
            self._finish(trial, "succeeded")

    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        state = self.trials.pop(trial.trial_id, None)
        if state is None and status == "failed" and trial.trial_id not in self._ended:
            # it failed before it ever started: its worker died while being placed or reused (Tune calls
            # on_trial_error without on_trial_start); it is recorded failed, never silently dropped
            state = _TrialState(trial.config)
            state.attempt = max(1, int(getattr(trial, "num_failures", 1) or 1))
        if state is None:
            return
        self._ended.add(trial.trial_id)
        if not state.announced:
            if status == "cancelled":
                return  # never ran an epoch: nothing to record, a resumed search runs it
            self._announce(state, "")
        reward = (
            None
            if status in ("failed", "cancelled")
            else raw_objective(
                state.metrics, self.spec.objective.metric, last_k=getattr(self.spec.objective, "last_k", 1)
            )
        )
        wall_s = time.perf_counter() - state.started_at
        event = TrialFinished(state.index, status, reward, list(state.metrics), wall_s, error, state.kind)
        self.finished.append(event)
        self.patterns[state.index] = state.pattern
        self.callbacks.emit(event)
        self.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Ended without error: all its epochs, stopped by the scheduler, or stopped by a cancel."""
        state = self.trials.get(trial.trial_id)
        full = state is not None and len(state.metrics) >= self.spec.budget.epochs_per_trial
        if full:
            self._finish(trial, "succeeded")
        else:
            self._finish(trial, "cancelled" if self.cancelling() else "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Failed for good (its retries are spent)."""
        self._finish(trial, "failed", error=_error_text(trial))


def _error_text(trial: Any) -> str:
    """Why a trial failed: the watchdog's note, else the last line of Tune's error file."""
    local = getattr(trial, "local_path", None)
    if local and os.path.exists(os.path.join(local, HUNG_FILE)):
        with open(os.path.join(local, HUNG_FILE)) as f:
            return f.read().strip()[:2000]
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
        for line in reversed(lines):
            if "Error" in line or "Exception" in line:
                return line[:2000]
        return (lines[-1] if lines else "trial raised")[:2000]
    return "trial raised"
