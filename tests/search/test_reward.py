"""One reward rule: the last reported objective (raw in the store, negated for min inside controllers), NaN left out."""

import math

import pytest

from dropsearch.runner.tune_events import raw_objective
from dropsearch.search import trial_reward
from dropsearch.search.reward import objective_value


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


def test_the_engine_stores_the_raw_objective_of_each_epoch_by_the_same_rule_never_negated():
    metrics = [{"val_loss": 0.9, "val_accuracy": 0.5}, {"val_accuracy": 0.6}, {"val_loss": 0.7}]
    assert raw_objective(metrics, "val_loss") == 0.7
    assert raw_objective(metrics, "val_accuracy") == 0.6
    assert raw_objective([{"val_loss": math.nan}], "val_loss") is None
    assert raw_objective([{"val_loss": 0.9}, {"val_loss": 0.5}], "val_loss", last_k=2) == 0.7


@pytest.mark.parametrize(
    ("values", "last_k", "expected"),
    [
        ([0.5, 0.7, 0.6], 1, 0.6),
        ([0.5, 0.75, 0.25], 2, 0.5),  # mean of the last two reported values
        ([0.2, None, 0.4, None, 0.6], 2, 0.5),  # epochs that did not report are skipped, not counted
        ([0.3, 0.6], 5, 0.45),  # stopped before k epochs: the mean of what it reported
        ([float("nan"), 0.5, 0.25], 2, 0.375),  # a NaN outside the window does not matter
        ([0.5, float("nan"), 0.25], 2, None),  # a NaN inside the window: diverged, left out
        ([], 3, None),
    ],
)
def test_objective_value_over_the_last_k_epochs(values, last_k, expected):
    got = objective_value(values, last_k=last_k)
    assert got == (None if expected is None else pytest.approx(expected))
    signed = trial_reward(values, "min", last_k=last_k)
    assert signed == (None if expected is None else pytest.approx(-expected))


def test_last_k_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="last_k"):
            objective_value([1.0], last_k=bad)
