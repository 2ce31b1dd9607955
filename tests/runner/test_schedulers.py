"""``budget.early_stopping`` and ``budget.grace_epochs`` become the Tune scheduler with the stated rungs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dropsearch.runner.schedulers import grace_epochs, make_scheduler
from dropsearch.search.spec import SearchSpec


def spec(**budget) -> SearchSpec:
    return SearchSpec.model_validate(
        {"name": "s", "model": {"name": "mlp"}, "dataset": {"name": "digits"}, "budget": {"trials": 4, **budget}}
    )


def rungs(scheduler) -> list[int]:
    return sorted(milestone for bracket in scheduler._brackets for milestone, _ in bracket._rungs)


def test_asha_rungs_start_at_the_grace_period_and_double() -> None:
    assert rungs(make_scheduler(spec(epochs_per_trial=60, grace_epochs=15))) == [15, 30, 60]
    assert rungs(make_scheduler(spec(epochs_per_trial=8))) == [1, 2, 4, 8]  # default grace 1
    assert grace_epochs(spec(epochs_per_trial=8)) == 1


def test_median_rule_waits_its_grace_period() -> None:
    assert make_scheduler(spec(epochs_per_trial=20, early_stopping="median"))._grace_period == 2
    assert make_scheduler(spec(epochs_per_trial=20, early_stopping="median", grace_epochs=7))._grace_period == 7


def test_no_scheduler_without_early_stopping_or_with_one_epoch() -> None:
    assert make_scheduler(spec(epochs_per_trial=20, early_stopping="none")) is None
    assert make_scheduler(spec(epochs_per_trial=1)) is None


def test_a_grace_period_longer_than_the_trial_is_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError, match=r"budget.grace_epochs \(9\).*budget.epochs_per_trial \(5\)"):
        spec(epochs_per_trial=5, grace_epochs=9)
    with pytest.raises(ValidationError, match="grace_epochs"):
        spec(grace_epochs=0)
