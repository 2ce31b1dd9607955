"""How many epochs a trial trains between two Tune reports (epochs_per_call)."""

from __future__ import annotations

from dropsearch.runner.grouping import CALL_TARGET_S, epochs_per_call


def test_one_epoch_until_the_epoch_time_is_known():
    assert epochs_per_call(0, 50, None, rungs=False) == 1


def test_short_epochs_are_grouped_to_about_the_call_target():
    assert epochs_per_call(1, 100, 0.05, rungs=False) == int(CALL_TARGET_S / 0.05)
    assert epochs_per_call(1, 100, 0.3, rungs=False, target_s=1.0) == 3


def test_long_epochs_go_one_per_call_and_never_past_the_budget():
    assert epochs_per_call(3, 10, 5.0, rungs=False) == 1
    assert epochs_per_call(97, 100, 0.001, rungs=False) == 3
    assert epochs_per_call(99, 100, 0.001, rungs=False) == 1


def test_with_asha_a_call_ends_at_the_next_rung():
    # rungs of grace 1 / reduction 2 at epochs 1, 2, 4, 8, 16, ...: every call ends on or before the next one
    ends = []
    done = 0
    while done < 40:
        done += epochs_per_call(done, 40, 0.001, rungs=True)
        ends.append(done)
    assert ends == [1, 2, 4, 8, 16, 32, 40]
    assert epochs_per_call(5, 40, 0.5, rungs=True, target_s=1.0) == 2  # time-bound before the rung at 8


def test_with_a_later_grace_the_calls_end_on_its_rungs():
    ends, done = [], 0
    while done < 60:
        done += epochs_per_call(done, 60, 0.001, rungs=True, grace=15)
        ends.append(done)
    assert ends == [15, 30, 60]
