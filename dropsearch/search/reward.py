"""The controller's reward of a trial: one rule for both engines (the actor pool and Ray Tune's searcher)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MODES", "trial_reward"]

MODES = ("max", "min")


def trial_reward(values: Iterable[float | None], mode: str) -> float | None:
    """Reward of a trial from the objective values it reported, epoch by epoch, in order.

    The reward is the **last** reported value (``None`` entries, epochs that did not report the objective, are
    skipped), negated when ``mode == "min"`` so that the controller always maximizes. A trial whose last reported
    value is NaN (a diverged child) gets ``None``, like a failed one: it is left out of the update rather than
    credited with an earlier epoch. A trial that reported nothing gets ``None``. An early-stopped trial counts with
    its last epoch like a finished one; the caller decides that failed trials get no reward at all.

    Args:
        values: the objective per reported epoch (``None`` where an epoch did not report it).
        mode: ``"max"`` or ``"min"``.

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
    last = None
    for value in values:
        if value is not None:
            last = float(value)
    if last is None or last != last:
        return None
    return last if mode == "max" else -last
