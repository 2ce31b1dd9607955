"""How many epochs a trial trains between two reports to Ray Tune.

A Tune report costs the driver a round trip, a callback pass and a scheduler decision (milliseconds), which is
noise for a 10 s epoch and most of the cost of a 40 ms one. The trainable therefore trains about
:data:`CALL_TARGET_S` seconds of short epochs per report, and never past a rung of ASHA, which decides only at
rungs (epochs ``grace * reduction ** k``), so its decisions, and the epochs a stopped trial trains, are the same
as with one report per epoch. Every epoch is still reported (the report carries the group's epochs).
"""

from __future__ import annotations

__all__ = ["ASHA_GRACE_PERIOD", "ASHA_REDUCTION_FACTOR", "CALL_TARGET_S", "epochs_per_call"]

#: Seconds of training between two reports when epochs are shorter than this.
CALL_TARGET_S = 1.0
#: ASHA's settings (``budget.early_stopping: asha`` and ``hyperband``): rungs at epochs ``grace * reduction ** k``.
ASHA_GRACE_PERIOD = 1
ASHA_REDUCTION_FACTOR = 2


def epochs_per_call(
    done: int,
    total: int,
    epoch_s: float | None,
    *,
    rungs: bool,
    grace: int = ASHA_GRACE_PERIOD,
    target_s: float = CALL_TARGET_S,
) -> int:
    """How many epochs the trial trains before its next report.

    One epoch while the epoch time is unknown; otherwise as many as fit in ``target_s`` (at least one), never
    past the trial's last epoch, and with ``rungs`` never past the next ASHA rung.

    Args:
        done: epochs the trial has reported.
        total: epochs of the trial's budget.
        epoch_s: measured seconds per epoch (``None`` before the first).
        rungs: whether a rung-based scheduler (ASHA) decides early stops.
        grace: ASHA's first rung (``budget.grace_epochs``); later rungs at ``grace * 2 ** k``.
        target_s: seconds between reports. Default: :data:`CALL_TARGET_S`.

    Examples::

        >>> epochs_per_call(0, 10, None, rungs=True)
        1
        >>> epochs_per_call(2, 100, 0.1, rungs=True)  # next rung at epoch 4
        2
        >>> epochs_per_call(2, 100, 0.1, rungs=False)
        10
        >>> epochs_per_call(0, 100, 0.1, rungs=True, grace=5)  # rungs at 5, 10, 20, ...
        5
    """
    remaining = total - done
    if remaining <= 1 or epoch_s is None:
        return 1
    n = max(1, min(remaining, int(target_s / max(epoch_s, 1e-6))))
    if rungs:
        rung = grace
        while rung <= done:
            rung *= ASHA_REDUCTION_FACTOR
        n = min(n, rung - done)
    return n
