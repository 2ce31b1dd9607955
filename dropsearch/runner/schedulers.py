"""``budget.early_stopping`` as a Ray Tune trial scheduler.

- ``asha``: ``AsyncHyperBandScheduler`` (successive halving, one bracket), rungs at epochs ``g, 2g, 4g, ...``
  where ``g`` is ``budget.grace_epochs`` (default 1);
- ``hyperband``: the same over 3 brackets (asynchronous HyperBand), so some trials get a later first rung;
- ``median``: ``MedianStoppingRule`` after ``budget.grace_epochs`` epochs (default 2): a trial below the median
  of the others' running averages at the same epoch stops;
- ``none``: every trial trains all its epochs.

All schedulers count time in ``epoch`` (reported by every trial); the objective and mode come from the
experiment's ``TuneConfig``. ASHA does not stop a trial at its last epoch (``stop_last_trials=False``): the trial
ends by itself, and its last report reaches the searcher first (a rung at the last epoch may still stop it).
"""

from __future__ import annotations

from typing import Any

from dropsearch.runner.grouping import ASHA_GRACE_PERIOD, ASHA_REDUCTION_FACTOR
from dropsearch.search.spec import SearchSpec

__all__ = ["grace_epochs", "make_scheduler", "reports_end_on_rungs"]

#: Epochs a trial trains before the median stopping rule may stop it.
MEDIAN_GRACE_EPOCHS = 2


def grace_epochs(spec: SearchSpec) -> int:
    """Epochs a trial trains before the scheduler may stop it (``budget.grace_epochs`` or the rule's default)."""
    if spec.budget.grace_epochs is not None:
        return spec.budget.grace_epochs
    return MEDIAN_GRACE_EPOCHS if spec.budget.early_stopping == "median" else ASHA_GRACE_PERIOD


def reports_end_on_rungs(spec: SearchSpec) -> bool:
    """Whether the scheduler decides only at ASHA rungs (grouped reports must then end on them)."""
    return spec.budget.early_stopping in ("asha", "hyperband")


def make_scheduler(spec: SearchSpec) -> Any:
    """The Tune scheduler of ``spec.budget.early_stopping`` (``None`` for ``none`` or one-epoch trials)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule

    budget = spec.budget
    if budget.early_stopping == "none" or budget.epochs_per_trial < 2:
        return None
    if budget.early_stopping == "median":
        return MedianStoppingRule(
            time_attr="epoch",
            grace_period=grace_epochs(spec),
            min_samples_required=3,
        )
    return AsyncHyperBandScheduler(
        time_attr="epoch",
        max_t=budget.epochs_per_trial,
        grace_period=grace_epochs(spec),
        reduction_factor=ASHA_REDUCTION_FACTOR,
        brackets=3 if budget.early_stopping == "hyperband" else 1,
        # a trial ends by itself after its last epoch; stopping it there as well would end it before the searcher
        # sees its last report, and the next trial could not take over its process (see the trainable)
        stop_last_trials=False,
    )
