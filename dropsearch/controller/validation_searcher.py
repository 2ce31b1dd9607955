"""Ray Tune ``Searcher`` of the validation stage: one trial per (arm, seed), in rounds, with racing.

Protocol:

- Round 1 trains every arm at the first :data:`~dropsearch.search.validation.RACING_MIN_SEEDS` seeds (2); then,
  with racing, search arms worse than the leader beyond noise are stopped
  (:meth:`~dropsearch.search.validation.ValidationResults.race`, on round 1's results); round 2 trains the
  surviving arms and every baseline at the remaining seeds. Without racing there is one round. Within a round the
  trials are handed out seed by seed (every arm at seed 1, then every arm at seed 2, ...), so a run cut short
  still holds complete pairs.
- :meth:`ValidationSearcher.suggest` returns ``None`` while the round's last trials run, and ``Searcher.FINISHED``
  after the last round.
- The config of a trial is ``{"kind": "validation", "arm": name, "pattern": {...}, "seed": int,
  "validation_index": int}``; ``validation_index = arm position * len(seeds) + seed position`` is stable across
  resumes (a key for the store).
- **Result rule.** A trial's result is its RAW ``metric`` over its last reported epoch(s)
  (:func:`~dropsearch.search.reward.objective_value` with ``last_k``); a trial that errored, reported nothing or
  ended on NaN counts as failed at that seed (left out of the statistics, not retried by the searcher; Tune's
  ``FailureConfig`` does the retries).
- ``completed`` (``(arm, seed, value)`` of finished runs, e.g. from the store) makes a resumed stage skip them:
  nothing finished is trained again. Racing decides on round 1's results only, so the resumed stage stops the same
  arms. :meth:`save` / :meth:`restore` hold the whole state for ``Tuner.restore``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ray.tune.search import Searcher

from dropsearch.controller._tune_searcher import StatefulSearcher
from dropsearch.search.reward import objective_value
from dropsearch.search.validation import RACING_MIN_SEEDS, Arm, ValidationResults, validation_seeds
from dropsearch.search.validation_report import ValidationReport

__all__ = ["ValidationSearcher"]


class ValidationSearcher(StatefulSearcher):
    """Drive the validation stage as a Ray Tune run.

    Args:
        arms: the arms, e.g. from :func:`~dropsearch.search.validation.make_arms` (names distinct).
        seeds: the training seeds (the same for every arm), or their number ``n`` for
            ``validation_seeds(0, n)``; use :func:`~dropsearch.search.validation.validation_seeds` with the spec's
            seed.
        mode: ``"max"`` or ``"min"``. Default: set by ``TuneConfig(mode=...)``.
        metric: the reported metric. Default: set by ``TuneConfig(metric=...)``.
        racing: stop search arms worse than the leader beyond noise after round 1. Default: True
        completed: ``(arm, seed, value)`` of runs that already finished (``value`` ``None`` for a failed run).
        last_k: a trial's result is the mean of its last ``last_k`` reported values. Default: 1
        level: confidence level of the paired intervals. Default: 0.95
        on_result: called as ``on_result(config, value)`` when a trial's result is recorded (e.g. to store it);
            not saved with the searcher's state.

    Examples::

        arms = make_arms(trials, spec.validation.baselines, sites, top_k=3, mode="max")
        searcher = ValidationSearcher(arms, validation_seeds(spec.seed, 3), "max", "val_accuracy")
        tune.Tuner(train, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1)).fit()
        report = searcher.report().to_dict()
    """

    def __init__(
        self,
        arms: Sequence[Arm],
        seeds: Sequence[int] | int,
        mode: str | None = None,
        metric: str | None = None,
        racing: bool = True,
        completed: Iterable[tuple[str, int, float | None]] = (),
        *,
        last_k: int = 1,
        level: float = 0.95,
        on_result: Callable[[dict[str, Any], float | None], None] | None = None,
    ) -> None:
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        super().__init__(metric=metric, mode=mode)
        seed_list = validation_seeds(0, seeds) if isinstance(seeds, int) else [int(s) for s in seeds]
        objective_value([], last_k=last_k)  # checks last_k
        self.results = ValidationResults(list(arms), seed_list, mode or "max", level)
        self.racing, self.last_k, self.on_result = bool(racing), int(last_k), on_result
        first = min(RACING_MIN_SEEDS, len(seed_list)) if self.racing else len(seed_list)
        self.rounds: list[list[int]] = [seed_list[:first]] + ([seed_list[first:]] if seed_list[first:] else [])
        self.round = -1  # index of the current round; -1 before the first
        self._queue: list[tuple[str, int]] = []  # (arm, seed) of the current round not yet handed out
        self._open: dict[str, tuple[str, int]] = {}  # trial id -> (arm, seed), handed out and not complete
        self._values: dict[str, dict[tuple[int, int], Any]] = {}  # trial id -> (iteration, epoch) -> metric
        self.n_suggested = 0
        for arm, seed, value in completed:
            self.results.record(arm, seed, value)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take ``metric`` / ``mode`` from ``TuneConfig`` unless given to the constructor (they must agree)."""
        super().set_search_properties(metric, mode, config, **spec)
        if self._mode in ("max", "min"):
            self.results.mode = self._mode
        return True

    def _index(self, arm: str, seed: int) -> int:
        names = [a.name for a in self.results.arms]
        return names.index(arm) * len(self.results.seeds) + self.results.seeds.index(seed)

    def _next_round(self) -> bool:
        """Race on the finished round (if any), then queue the next round's unfinished pairs; False when done."""
        while self.round + 1 < len(self.rounds):
            if self.racing and self.round == 0:
                self.results.race(self.rounds[0])
            self.round += 1
            self._queue = [
                (a.name, seed)
                for seed in self.rounds[self.round]
                for a in self.results.arms
                if a.name not in self.results.dropped and not self.results.done(a.name, seed)
            ]
            if self._queue:
                return True
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next (arm, seed) config; ``None`` while the round's trials run; ``FINISHED`` after the last round."""
        if not self._queue:
            if self._open:
                return None
            if not self._next_round():
                return Searcher.FINISHED
        arm, seed = self._queue.pop(0)
        self._open[trial_id] = (arm, seed)
        self.n_suggested += 1
        return {
            "kind": "validation",
            "arm": arm,
            "pattern": self.results.arm(arm).pattern,
            "seed": seed,
            "validation_index": self._index(arm, seed),
        }

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Remember the reported metric per training iteration (the last ``last_k`` make the result)."""
        if trial_id not in self._open:
            return
        values = self._values.setdefault(trial_id, {})
        iteration = int(result.get("training_iteration", len(values) + 1))
        epochs = result.get("epochs")  # a report may carry several epochs (dropsearch's trainable groups them)
        if isinstance(epochs, list):
            for j, epoch in enumerate(epochs):
                if self._metric in epoch:
                    values[(iteration, j)] = epoch[self._metric]
        elif self._metric in result:
            values[(iteration, 0)] = result[self._metric]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record the trial's RAW result (``None`` if it failed) by the rule in the module docstring."""
        if trial_id not in self._open:
            return
        if result and not error:
            self.on_trial_result(trial_id, result)
        values = self._values.pop(trial_id, {})
        arm, seed = self._open.pop(trial_id)
        value = None if error else objective_value([values[k] for k in sorted(values)], last_k=self.last_k)
        self.results.record(arm, seed, value)
        if self.on_result is not None:
            config = {"arm": arm, "seed": seed, "validation_index": self._index(arm, seed)}
            self.on_result(config, value)

    @property
    def finished(self) -> bool:
        """Whether every round has been handed out and completed."""
        return not self._queue and not self._open and self.round + 1 >= len(self.rounds) and self.round >= 0

    def report(self) -> ValidationReport:
        """The :class:`~dropsearch.search.validation_report.ValidationReport` of the results so far."""
        return self.results.report(metric=self._metric)

    def get_state(self) -> dict[str, Any]:
        """Plain, picklable state: the results, the round, the queue and the open trials."""
        return {
            "results": self.results.state_dict(),
            "rounds": [list(r) for r in self.rounds],
            "round": self.round,
            "queue": [list(p) for p in self._queue],
            "open": {t: list(p) for t, p in self._open.items()},
            "values": {t: dict(v) for t, v in self._values.items()},
            "n_suggested": self.n_suggested,
            "metric": self._metric,
            "mode": self._mode,
            "racing": self.racing,
            "last_k": self.last_k,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`get_state`."""
        self.results = ValidationResults.from_state(state["results"])
        self.rounds = [list(r) for r in state["rounds"]]
        self.round = int(state["round"])
        self._queue = [(a, int(s)) for a, s in state["queue"]]
        self._open = {t: (a, int(s)) for t, (a, s) in state["open"].items()}
        self._values = {t: dict(v) for t, v in state["values"].items()}
        self.n_suggested = int(state["n_suggested"])
        self._metric = self._metric or state["metric"]
        self._mode = self._mode or state["mode"]
        self.racing, self.last_k = bool(state["racing"]), int(state["last_k"])
