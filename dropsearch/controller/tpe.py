"""``controller.name: tpe``: Optuna's Tree-structured Parzen Estimator over a search space, through Ray Tune.

:class:`TPESearcher` wraps Ray Tune's ``OptunaSearch`` (with ``optuna.samplers.TPESampler``) so that its trials
carry the same config as the REINFORCE and random controllers' (tokens, decoded pattern, trial index): each
decision of the space becomes one categorical parameter over its choice indices. TPE learns after every trial,
not in batches. It sees the raw objective and the direction (``mode``); Optuna handles the sign.

Resume: trials that ended before a restart are handed to TPE with ``add_evaluated_point`` (no re-run), and the
trial indices they used are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.search import Searcher

from dropsearch.search.codec import tokens_to_pattern
from dropsearch.search.reward import report_values, trial_reward
from dropsearch.search.space import SearchSpace

__all__ = ["TPESearcher"]


class TPESearcher(Searcher):
    """Ray Tune searcher: TPE proposes token tuples of ``space``.

    Args:
        space: the search space.
        metric: the objective reported by trials.
        mode: ``"max"`` or ``"min"``.
        max_trials: trial indices ``0 .. max_trials - 1`` are handed out, then ``FINISHED``.
        seed: seeds the TPE sampler.
        completed: trials that ended before a restart, by index: ``(tokens, raw objective or None)``.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        metric: str,
        mode: str,
        max_trials: int,
        seed: int = 0,
        completed: Mapping[int, tuple[Sequence[int], float | None]] | None = None,
    ) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(metric=metric, mode=mode)
        self.space, self.max_trials = space, int(max_trials)
        self._keys = [f"d{i}" for i in range(len(space.names))]  # decision names may hold "/" or "."
        choices = optuna.distributions.CategoricalDistribution
        param_space = {key: choices(list(range(size))) for key, size in zip(self._keys, space.sizes, strict=True)}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._inner = OptunaSearch(
            space=param_space, metric=metric, mode=mode, sampler=optuna.samplers.TPESampler(seed=seed)
        )
        self._done = set(completed or {})
        for tokens, value in (completed or {}).values():
            if value is not None and value == value:
                self._inner.add_evaluated_point(self._params(tokens), value)
        self._decodes = "variant" in space and bool(space.sites)
        self._next = 0
        self._values: dict[str, list[float | None]] = {}

    def _params(self, tokens: Sequence[int]) -> dict[str, int]:
        return {key: int(t) for key, t in zip(self._keys, tokens, strict=True)}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Metric and mode are fixed at construction; Tune's must agree."""
        return (metric in (None, self._metric)) and (mode in (None, self._mode))

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next trial's config, or ``FINISHED`` once every index was handed out."""
        while self._next in self._done:
            self._next += 1
        if self._next >= self.max_trials:
            return Searcher.FINISHED
        params = self._inner.suggest(trial_id)
        if params is None or params == Searcher.FINISHED:
            return params
        index, self._next = self._next, self._next + 1
        tokens = [int(params[key]) for key in self._keys]
        pattern = tokens_to_pattern(self.space, tokens).to_dict() if self._decodes else None
        return {"tokens": tokens, "pattern": pattern, "proposal_index": index, "policy_version": 0}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a resumed search re-feeds its stored trials (``completed``)."""

    def restore(self, checkpoint_path: str) -> None:
        """See :meth:`save`."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Remember the reported objective values (a report may carry several epochs under ``epochs``)."""
        self._values.setdefault(trial_id, []).extend(report_values(result, self._metric))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Give TPE the trial's raw objective by the same rule as the other controllers (last reported value)."""
        values = self._values.pop(trial_id, None) or [(result or {}).get(self._metric)]
        signed = trial_reward(values, self._mode)
        if error or signed is None:
            self._inner.on_trial_complete(trial_id, None, error=True)
            return
        raw = signed if self._mode == "max" else -signed
        self._inner.on_trial_complete(trial_id, {self._metric: raw}, error=False)
