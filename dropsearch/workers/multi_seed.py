"""Several seeds of one child trained in lockstep, reported as one child: less noisy rewards for ``n`` times the cost.

A search's reward is one child's validation metric, and on small tasks the seed-to-seed spread of that metric is
often as large as the differences between patterns. :class:`MultiSeedTraining` trains ``config.seeds`` children of
the same pattern on the same data with seeds ``seed, seed + 1, ...``, one epoch of each per :meth:`run_epoch`, and
returns the mean of every numeric metric under its usual name (so a scheduler and a reward rule read it as one
child's metrics) plus the per-seed values as ``<metric>_seeds`` lists. The mean of ``n`` seeds has ``1 / n`` of one
seed's variance.

Each child keeps its own global random state (saved after its construction and after each of its epochs, restored
before its next epoch), so a child trained in lockstep is bit for bit the child trained alone with that seed.
``ChildTraining(config)`` returns a :class:`MultiSeedTraining` when ``config.seeds > 1``, so engines need no change.
A data-parallel child (``workers_per_trial > 1``) trains one seed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import DatasetBundle, load_dataset

__all__ = ["MultiSeedTraining", "mean_metrics"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_metrics(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics dict from several seeds': the mean of each numeric metric, plus ``<metric>_seeds`` lists.

    ``epoch`` is kept as is (the seeds run in lockstep); a metric that is not a number is taken from the first seed.
    A NaN in any seed makes the mean NaN (a diverged seed is not hidden).

    Args:
        per_seed: the metrics of each seed for the same epoch (at least one).

    Returns:
        The merged metrics.
    """
    if not per_seed:
        raise ValueError("mean_metrics needs the metrics of at least one seed")
    out: dict[str, Any] = {}
    for key, first in per_seed[0].items():
        values = [m.get(key) for m in per_seed]
        if key == "epoch" or not all(_is_number(v) for v in values):
            out[key] = first
            continue
        floats = [float(v) for v in values]  # type: ignore[arg-type]
        out[key] = math.fsum(floats) / len(floats)
        out[f"{key}_seeds"] = floats
    return out


class MultiSeedTraining:
    """``config.seeds`` children of one pattern, trained in lockstep; the interface of ``ChildTraining``.

    Args:
        config: what to train; child ``i`` uses ``seed = config.seed + i``.
        bundle: the dataset, shared by every seed; loaded once with ``config.seed`` when not given (so every
            seed sees the same split).
        device: where to train; ``None`` resolves ``config.device``.
        model_factory: builds each seed's model instead of the registry (see ``ChildTraining``).

    Examples::

        >>> config = ChildConfig(model="mlp", dataset="synthetic", pattern={"variant": "none"}, seeds=3, device="cpu")
        >>> metrics = MultiSeedTraining(config).run_epoch()
        >>> len(metrics["val_accuracy_seeds"])
        3
    """

    def __init__(
        self,
        config: ChildConfig,
        *,
        bundle: DatasetBundle | None = None,
        device: str | None = None,
        model_factory: Any = None,
    ):
        from dropsearch.workers.train import ChildTraining

        n = check_positive_int(config.seeds, name="seeds")
        self.config = config
        bundle = bundle or load_dataset(
            config.dataset, params=config.dataset_params, seed=config.seed, allowed_roots=config.allowed_roots
        )
        self.children: list[ChildTraining] = []
        self._rng: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        for i in range(n):
            one = replace(config, seed=config.seed + i, seeds=1)
            child = ChildTraining(one, bundle=bundle, device=device, model_factory=model_factory)
            self.children.append(child)
            self._rng.append(self._get_rng(child.device))
        self.device = self.children[0].device
        self.epoch = 0

    @property
    def seeds(self) -> list[int]:
        """The seed of each child."""
        return [c.config.seed for c in self.children]

    @staticmethod
    def _get_rng(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    @staticmethod
    def _set_rng(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)

    def _each(self, method: str) -> list[Any]:
        """Call ``method`` on every child under that child's own global random state."""
        results = []
        for i, child in enumerate(self.children):
            self._set_rng(child.device, self._rng[i])
            results.append(getattr(child, method)())
            self._rng[i] = self._get_rng(child.device)
        return results

    def run_epoch(self) -> dict[str, Any]:
        """One epoch of every seed; the mean of each metric, and ``<metric>_seeds`` with the per-seed values."""
        merged = mean_metrics(self._each("run_epoch"))
        self.epoch += 1
        merged["seeds"] = self.seeds
        return merged

    def evaluate(self) -> dict[str, Any]:
        """Validation (and held-out-domain) metrics of every seed: mean and ``<metric>_seeds``."""
        return mean_metrics(self._each("evaluate"))

    def evaluate_test(self) -> dict[str, Any]:
        """Test-split metrics of every seed (see ``ChildTraining.evaluate_test``): mean and ``<metric>_seeds``."""
        return mean_metrics(self._each("evaluate_test"))

    def state_dict(self) -> dict[str, Any]:
        """Every seed's model and optimizer state, for a per-epoch checkpoint."""
        return {"epoch": self.epoch, "seeds": [c.state_dict() for c in self.children]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        states = state["seeds"]
        if len(states) != len(self.children):
            raise ValueError(f"checkpoint holds {len(states)} seeds, this child trains {len(self.children)}")
        for child, s in zip(self.children, states, strict=True):
            child.load_state_dict(s)
        self.epoch = int(state["epoch"])
