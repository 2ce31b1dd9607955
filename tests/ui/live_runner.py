"""A runner simulated through the store's own functions, writing exactly the events the real runner writes.

:class:`dropsearch.runner.execution.SearchExecution` stores ``trial_started`` / ``trial_reported`` /
``trial_finished`` / ``controller_updated`` / ``search_finished`` events with the payloads reproduced here; the
browser test calls :meth:`LiveRunner.run_trial` while the page is open to see a trial appear live.
"""

from __future__ import annotations

import math

from dropsearch.store.controller_states import save_controller_state
from dropsearch.store.db import Engine, session_scope
from dropsearch.store.events import append_event
from dropsearch.store.searches import load_search, mark_search_finished
from dropsearch.store.trials import trial_finished, trial_reported, trial_started
from tests.api import runner_sim

__all__ = ["LiveRunner"]


class LiveRunner:
    """Drive one claimed search: trials, controller updates, cancel handling and the final status."""

    def __init__(self, engine: Engine, search_id: str, *, epochs: int = 2, node: str = "node-a") -> None:
        self.engine, self.search_id, self.epochs, self.node = engine, search_id, epochs, node
        self.updates = 0

    def _event(self, session: object, kind: str, data: dict) -> None:
        append_event(session=session, search_id=self.search_id, kind=kind, data=data)

    def start(self) -> None:
        """Claim the search (it must be the oldest queued one) and write ``search_started``."""
        runner_sim.claim(self.engine, self.search_id)
        with session_scope(self.engine) as session:
            self._event(session, "search_started", {"runner": runner_sim.RUNNER, "resumed": False})

    def run_trial(self, index: int, reward: float, *, variant: str = "autodropout", rate: float = 0.2) -> None:
        """Start, report and finish trial ``index``, then make one controller update (as REINFORCE would)."""
        pattern = runner_sim.pattern(variant, rate=rate)
        with session_scope(self.engine) as session:
            trial = trial_started(
                session=session,
                search_id=self.search_id,
                index=index,
                tokens=[index, 1],
                pattern=pattern,
                node=self.node,
            )
            data = {"index": index, "attempt": trial.attempt, "node": self.node, "variant": variant}
            self._event(session, "trial_started", data)
        for epoch in range(self.epochs):
            metrics = {"val_accuracy": reward * (epoch + 1) / self.epochs, "loss": 1.0 / (epoch + 1)}
            with session_scope(self.engine) as session:
                trial_reported(session=session, search_id=self.search_id, index=index, epoch=epoch, metrics=metrics)
                self._event(session, "trial_reported", {"index": index, "epoch": epoch, "metrics": metrics})
        with session_scope(self.engine) as session:
            done = trial_finished(
                session=session, search_id=self.search_id, index=index, status="succeeded", reward=reward
            )
            data = {"index": index, "status": "succeeded", "reward": reward, "wall_s": done.wall_s}
            self._event(session, "trial_finished", data)
        self.controller_update(mean_reward=reward)

    def controller_update(self, *, mean_reward: float) -> dict:
        """Store a controller state and its ``controller_updated`` event; returns the event's stats."""
        self.updates += 1
        stats = {
            "mean_reward": mean_reward,
            "loss": 0.1 / self.updates,
            "baseline": 0.5 * mean_reward + 0.1 * self.updates,
            "entropy": 3.0 * math.exp(-0.2 * self.updates),
        }
        with session_scope(self.engine) as session:
            version = save_controller_state(
                session=session, search_id=self.search_id, blob=b"state", updates=self.updates, trials_seen=self.updates
            )
            data = {"version": version, "updates": self.updates, "trials_seen": self.updates, "stats": stats}
            self._event(session, "controller_updated", data)
        return stats

    def honour_cancel(self) -> bool:
        """If a cancel was requested, finish the search as ``cancelled`` (what the runner does); True if it did."""
        with session_scope(self.engine, read_only=True) as session:
            record = load_search(session=session, search_id=self.search_id)
        if record is None or not record.cancel_requested:
            return False
        self.finish("cancelled")
        return True

    def finish(self, status: str = "succeeded", error: str | None = None) -> None:
        """Write ``search_finished`` and give the search its final status."""
        with session_scope(self.engine) as session:
            self._event(session, "search_finished", {"status": status, "error": error})
        with session_scope(self.engine) as session:
            assert mark_search_finished(
                session=session, search_id=self.search_id, status=status, error=error, runner_id=runner_sim.RUNNER
            )
