"""``budget.early_stopping`` and ``budget.grace_epochs`` become the Tune scheduler with the stated rungs."""

from __future__ import annotations

from types import SimpleNamespace

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


def _decide(scheduler, trial, epoch: int, accuracy: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_accuracy": accuracy})


def test_asha_lets_a_trial_end_by_itself_at_its_last_epoch_unless_that_rung_stops_it() -> None:
    from ray.tune.schedulers import TrialScheduler

    for early_stopping in ("asha", "hyperband"):
        scheduler = make_scheduler(spec(epochs_per_trial=6, grace_epochs=3, early_stopping=early_stopping))
        scheduler.set_search_properties("val_accuracy", "max")
        good, bad = SimpleNamespace(trial_id="good"), SimpleNamespace(trial_id="bad")
        for trial in (good, bad):
            scheduler.on_trial_add(None, trial)
        # 6 epochs, grace 3, factor 2: rungs at 3 and 6 (one bracket) or later first rungs (HyperBand)
        assert _decide(scheduler, good, 6, 0.9) == TrialScheduler.CONTINUE  # not stopped for reaching epoch 6
        if early_stopping == "asha":
            assert _decide(scheduler, bad, 6, 0.1) == TrialScheduler.STOP  # below the last rung's cutoff
