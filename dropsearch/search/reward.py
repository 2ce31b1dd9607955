"""A trial's objective: the raw value stored and shown (:func:`objective_value`), the signed reward controllers see."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["LAST_REPORT", "MODES", "objective_value", "report_values", "trial_reward"]

MODES = ("max", "min")

#: Key that marks a trial's final report (the one with its last epoch) with ``True``: the trial has trained all its
#: epochs, and its reward is known before its process has ended.
LAST_REPORT = "last_report"


def report_values(result: dict, metric: str) -> list[float | None]:
    """The ``metric`` of every epoch a trial's report carries, in order (``None`` where an epoch lacks it).

    dropsearch's trainable groups short epochs: a report lists them under ``epochs`` (its top level is the last
    one's metrics); any other report is one epoch.
    """
    epochs = result.get("epochs")
    return [e.get(metric) for e in epochs] if isinstance(epochs, list) else [result.get(metric)]


def objective_value(values: Iterable[float | None], *, last_k: int = 1) -> float | None:
    """The RAW objective of a trial: the mean of its last ``last_k`` reported values (no sign change).

    ``None`` entries (epochs that did not report the objective) are skipped. A trial that reported fewer than
    ``last_k`` values (e.g. stopped early) gets the mean of those it has. A NaN among the last ``last_k`` values (a
    child that diverged) gives ``None``, like a trial that reported nothing: it is not credited with earlier epochs.

    Args:
        values: the objective per reported epoch, in order (``None`` where an epoch did not report it).
        last_k: how many of the last reported values to average. Default: 1 (the last value).

    Examples::

        >>> objective_value([0.5, 0.75, 0.25]), objective_value([0.5, 0.75, 0.25], last_k=2)
        (0.25, 0.5)
        >>> objective_value([0.5, float("nan")], last_k=1) is None, objective_value([float("nan"), 0.5, 0.25], last_k=2)
        (True, 0.375)
    """
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise ValueError(f"last_k must be an integer >= 1, got {last_k!r}")
    window = [float(v) for v in values if v is not None][-last_k:]
    if not window or any(math.isnan(v) for v in window):
        return None
    return window[0] if len(window) == 1 else sum(window) / len(window)


def trial_reward(values: Iterable[float | None], mode: str, *, last_k: int = 1) -> float | None:
    """Reward of a trial from the objective values it reported, epoch by epoch, in order.

    The reward is the **last** reported value (``None`` entries, epochs that did not report the objective, are
    skipped), or the mean of the last ``last_k`` reported values (:func:`objective_value`), negated when
    ``mode == "min"`` so that the controller always maximizes. A trial whose last reported value (any of the last
    ``last_k``) is NaN (a diverged child) gets ``None``, like a failed one: it is left out of the update rather than
    credited with an earlier epoch. A trial that reported nothing gets ``None``. An early-stopped trial counts with
    its last epoch(s) like a finished one; the caller decides that failed trials get no reward at all.

    Args:
        values: the objective per reported epoch (``None`` where an epoch did not report it).
        mode: ``"max"`` or ``"min"``.
        last_k: reward over the last ``last_k`` reported values (``objective.last_k`` of the spec). Default: 1

    Returns:
        The reward, or ``None`` when the trial must be left out of the update.

    Examples::

        >>> trial_reward([0.5, 0.7, None], "max"), trial_reward([0.9, 0.4], "min")
        (0.7, -0.4)
        >>> trial_reward([0.5, float("nan")], "max") is None
        True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    value = objective_value(values, last_k=last_k)
    if value is None:
        return None
    return value if mode == "max" else -value
