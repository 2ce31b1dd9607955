"""Ray Tune ``Searcher`` adapter: a controller proposes trials batch by batch, as in AutoDropout.

Protocol:

- :meth:`ControllerSearcher.suggest` hands out the proposals of the current batch one per call; once they are all
  handed out it returns ``None`` (Tune asks again later) until every trial of the batch has completed; then it
  samples the next batch. After ``max_trials`` suggestions it returns ``Searcher.FINISHED``.
- :meth:`ControllerSearcher.on_trial_complete` records the trial's reward; when the batch's last trial completes,
  the controller is updated once with the batch.
- **Reward rule.** The reward is the trial's final ``metric`` (``-metric`` when ``mode="min"``: only the
  controller sees this signed value; everything it reports keeps the raw metric), i.e. the last value the trial
  reported (a report may carry several epochs under ``epochs``: the last of them counts). A trial stopped early
  by a scheduler (ASHA) therefore counts with its last reported metric, at the epoch it was stopped (a deliberate
  penalty: it looked worse than its peers). A trial that errored, or that completed without ever reporting
  ``metric``, is *excluded* from the update: a crash says more about the infrastructure than about the pattern,
  and a made-up reward would bias the baseline. A batch with no valid reward is dropped without an update
  (``on_update`` is still called, so the caller can record the progress). A trial that completes again after a
  restore (``resume_errored``) only counts if its batch is still open. A trial whose last report (the one marked
  ``LAST_REPORT``, with its final epoch) arrived counts from that report: it has trained all its epochs, and an
  error while its process ends does not take the reward back. Within a batch, the update sees the
  proposals in sample order, whatever order the trials finished in, so a run is reproducible.
- :meth:`save` / :meth:`restore` (and :meth:`get_state` / :meth:`set_state`) hold the controller's full state and the
  open batch, so ``Tuner.restore`` continues exactly where the interrupted run stopped.

The config of a trial is ``{"tokens": [...], "pattern": {...} | None, "proposal_index": int, "policy_version":
int}``; ``pattern`` is the decoded pattern document when the space has a ``variant`` decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from ray.tune.search import Searcher

from dropsearch.controller._base import BaseController, Proposal
from dropsearch.controller._tune_searcher import StatefulSearcher
from dropsearch.search.codec import tokens_to_pattern
from dropsearch.search.reward import LAST_REPORT, report_values, trial_reward
from dropsearch.search.space import SearchSpace

__all__ = ["ControllerSearcher"]


def _order(item: tuple[Proposal, float]) -> int:
    """Batches are learned in sample order, whatever order the trials finished in (reproducible updates)."""
    return -1 if item[0].index is None else item[0].index


class ControllerSearcher(StatefulSearcher):
    """Drive a Ray Tune run with a :class:`~dropsearch.controller.BaseController`.

    Args:
        controller: proposes token tuples and learns from rewards; the searcher owns and mutates it.
        space: the controller's space (checked against ``controller.space``). Default: ``controller.space``.
        metric: the reported metric to optimize. Default: set by Tune's ``TuneConfig(metric=...)``.
        mode: ``"max"`` or ``"min"``. Default: set by ``TuneConfig(mode=...)``.
        batch_size: proposals per controller update. Default: 8
        max_trials: suggestions in total, then ``FINISHED``; ``None`` leaves the limit to Tune's ``num_samples``.
        on_update: called as ``on_update(stats, controller)`` each time a batch closes (e.g. to store the
            controller state), also when no trial of the batch had a reward (``stats`` is then empty and the
            controller is not updated); not saved with the searcher's state.
        completed: raw objective values (``None``: failed) of trials that ended before a restart, by proposal
            index: when the restored controller samples them again they are not handed out, and their values
            are fed to the update as if they had just completed.

    Examples::

        searcher = ControllerSearcher(ReinforceController(space, seed=0), metric="val_accuracy", mode="max")
        tuner = tune.Tuner(train, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=64,
                                                              max_concurrent_trials=2))
    """

    def __init__(
        self,
        controller: BaseController,
        space: SearchSpace | None = None,
        *,
        metric: str | None = None,
        mode: str | None = None,
        batch_size: int = 8,
        max_trials: int | None = None,
        on_update: Callable[[dict[str, float], BaseController], None] | None = None,
        completed: Mapping[int, float | None] | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        if space is not None and (space.names, space.sizes) != (controller.space.names, controller.space.sizes):
            raise ValueError("space does not match controller.space")
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if max_trials is not None and max_trials < 1:
            raise ValueError(f"max_trials must be >= 1, got {max_trials!r}")
        self.controller, self.space = controller, controller.space
        self.batch_size, self.max_trials, self.on_update = int(batch_size), max_trials, on_update
        self._decodes = "variant" in self.space and bool(self.space.sites)
        self._queue: list[Proposal] = []  # sampled, not yet handed out
        self._open: dict[str, Proposal] = {}  # trial id -> proposal of the current batch
        self._rewards: dict[str, float | None] = {}  # completed trials of the current batch (None = excluded)
        self._values: dict[str, list[float | None]] = {}  # objective per reported epoch of running trials
        self._completed = dict(completed or {})
        self.n_suggested = 0  # trials handed out or fed from ``completed`` by this searcher

    def _signed(self, values: list[float | None]) -> float | None:
        return trial_reward(values, self._mode or "max")

    def _sample_batch(self) -> None:
        """Sample the next batch; proposals whose result is known from before a restart are fed, not handed out."""
        n = self.batch_size if self.max_trials is None else min(self.batch_size, self.max_trials - self.n_suggested)
        for proposal in self.controller.sample(n):
            if proposal.index is not None and proposal.index in self._completed:
                key = f"completed-{proposal.index}"
                self._open[key] = proposal
                self._rewards[key] = self._signed([self._completed.pop(proposal.index)])
                self.n_suggested += 1
            else:
                self._queue.append(proposal)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next proposal's config; ``None`` while the batch is still running; ``FINISHED`` after max_trials."""
        while not self._queue:
            if self._open:
                self._maybe_close_batch()  # a batch of trials stored before a restart closes here
            if self.max_trials is not None and self.n_suggested >= self.max_trials:
                return Searcher.FINISHED  # all handed out; the last batch may still be running
            if self._open:
                return None
            self._sample_batch()
        proposal = self._queue.pop(0)
        self._open[trial_id] = proposal
        self.n_suggested += 1
        pattern = tokens_to_pattern(self.space, proposal.tokens).to_dict() if self._decodes else None
        return {
            "tokens": list(proposal.tokens),
            "pattern": pattern,
            "proposal_index": proposal.index,
            "policy_version": self.controller.n_updates,
        }

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Remember the reported objective values (a report may carry several epochs under ``epochs``).

        A trial's last report (``LAST_REPORT``) completes it here, with the same reward rule as
        :meth:`on_trial_complete`, while Tune is still ending the trial: when that closes the batch, Tune asks for
        the next proposals before the trial's process is released, and reuses the process for one of them instead
        of starting a new one.
        """
        self._values.setdefault(trial_id, []).extend(report_values(result, self._metric))
        if result.get(LAST_REPORT) is True:
            self.on_trial_complete(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record the reward by the rule in the module docstring; update the controller when the batch is done."""
        values = self._values.pop(trial_id, None)
        if trial_id not in self._open or trial_id in self._rewards:
            return
        if values is None:  # never reported through on_trial_result: the final result is all there is
            values = [(result or {}).get(self._metric)]
        self._rewards[trial_id] = None if error else self._signed(values)
        self._maybe_close_batch()

    def _maybe_close_batch(self) -> bool:
        """Update the controller once every proposal of the batch has a result; returns whether it closed."""
        if self._queue or len(self._rewards) < len(self._open):
            return False
        done = sorted(((self._open[t], r) for t, r in self._rewards.items() if r is not None), key=_order)
        self._open, self._rewards = {}, {}
        stats = self.controller.update([p for p, _ in done], [r for _, r in done]) if done else {}
        if self.on_update is not None:
            self.on_update(stats, self.controller)
        return True

    def get_state(self) -> dict[str, Any]:
        """Plain, picklable state: the controller's state dict, the open batch and the counters."""
        return {
            "controller": self.controller.state_dict(),
            "queue": [asdict(p) for p in self._queue],
            "open": {t: asdict(p) for t, p in self._open.items()},
            "rewards": dict(self._rewards),
            "values": {t: list(v) for t, v in self._values.items()},
            "completed": dict(self._completed),
            "n_suggested": self.n_suggested,
            "metric": self._metric,
            "mode": self._mode,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`get_state` (the controller must be of the same kind and space)."""
        self.controller.load_state_dict(state["controller"])
        self._queue = [Proposal(tuple(p.pop("tokens")), **p) for p in map(dict, state["queue"])]
        self._open = {
            t: Proposal(tuple(p.pop("tokens")), **p) for t, p in ((t, dict(p)) for t, p in state["open"].items())
        }
        self._rewards = dict(state["rewards"])
        self._values = {t: list(v) for t, v in state["values"].items()}
        self._completed = dict(state["completed"])
        self.n_suggested = int(state["n_suggested"])
        self._metric = self._metric or state["metric"]
        self._mode = self._mode or state["mode"]
