"""One reward rule for both engines: the last reported objective, negated for min, NaN left out."""

import math

import pytest

from dropsearch.search import trial_reward
from dropsearch.workers.search_loop import reward_of


@pytest.mark.parametrize(
    ("values", "mode", "expected"),
    [
        ([0.5, 0.7, 0.6], "max", 0.6),  # the last epoch, not the best one
        ([0.5, 0.7, None], "max", 0.7),  # an epoch that did not report the objective is skipped
        ([2.0, 1.5], "min", -1.5),
        ([None, None], "max", None),
        ([], "min", None),
        ([0.9, float("nan")], "max", None),  # diverged at the end: left out, not credited with epoch 1
        ([float("nan"), 0.4], "min", -0.4),
        ([3], "max", 3.0),
    ],
)
def test_trial_reward(values, mode, expected):
    got = trial_reward(values, mode)
    assert got == expected and (got is None or isinstance(got, float))


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="mode"):
        trial_reward([1.0], "maximize")


def test_the_pool_engine_reads_the_objective_from_each_epoch_with_the_same_rule():
    metrics = [{"val_loss": 0.9, "val_accuracy": 0.5}, {"val_accuracy": 0.6}, {"val_loss": 0.7}]
    assert reward_of(metrics, "val_loss", "min") == -0.7
    assert reward_of(metrics, "val_accuracy", "max") == 0.6
    assert reward_of([{"val_loss": math.nan}], "val_loss", "min") is None
