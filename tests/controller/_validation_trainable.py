"""The trainable of test_validation_tune, in its own module so Ray workers import only this (not torch).

A known true quality per arm plus deterministic noise from the seed: a seed effect every arm shares (what pairing
cancels) and a small arm-and-seed term.
"""

from ray import tune

QUALITY = {"search-1": 0.60, "search-2": 0.40, "search-3": 0.58, "none": 0.55}
SEED_EFFECT = {10000: 0.02, 10001: -0.03, 10002: 0.01}


def observed(arm: str, seed: int) -> float:
    """The final reported value of ``arm`` trained with ``seed``."""
    return QUALITY[arm] + SEED_EFFECT[seed] + 0.004 * ((seed * 7 + sum(map(ord, arm))) % 5 - 2)


def trainable(config):
    """Two epochs; the last reports the observed value (the first is worse, as training goes)."""
    final = observed(config["arm"], config["seed"])
    tune.report({"val_accuracy": final - 0.1})
    tune.report({"val_accuracy": final})
