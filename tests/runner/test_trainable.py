"""The trial watchdog's limits (defaults, environment overrides) and the watchdog ending a real process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dropsearch.runner.trainable import (
    FIRST_EPOCH_FLOOR_S,
    HANG_FACTOR,
    HANG_FLOOR_S,
    HUNG_FILE,
    TrialSettings,
    watchdog_limits,
)


def test_defaults_are_kept_without_the_variables():
    assert watchdog_limits({}) == {"hang_factor": 10.0, "hang_floor_s": 60.0, "first_epoch_floor_s": 600.0}
    assert (HANG_FACTOR, HANG_FLOOR_S, FIRST_EPOCH_FLOOR_S) == (10.0, 60.0, 600.0)
    assert watchdog_limits({"DROPSEARCH_HANG_FLOOR_S": "  "})["hang_floor_s"] == 60.0


def test_each_variable_overrides_its_limit():
    env = {"DROPSEARCH_HANG_FACTOR": "2.5", "DROPSEARCH_HANG_FLOOR_S": "5", "DROPSEARCH_FIRST_EPOCH_FLOOR_S": "30"}
    assert watchdog_limits(env) == {"hang_factor": 2.5, "hang_floor_s": 5.0, "first_epoch_floor_s": 30.0}


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "nan", "inf"])
def test_a_bad_value_is_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match=f"DROPSEARCH_HANG_FLOOR_S must be a positive number of seconds, got '{raw}'"):
        watchdog_limits({"DROPSEARCH_HANG_FLOOR_S": raw})


def test_trial_settings_take_the_limits_of_the_environment_they_are_made_in(monkeypatch):
    monkeypatch.setenv("DROPSEARCH_HANG_FACTOR", "3")
    monkeypatch.delenv("DROPSEARCH_HANG_FLOOR_S", raising=False)
    settings = TrialSettings(child={})
    assert (settings.hang_factor, settings.hang_floor_s, settings.first_epoch_floor_s) == (3.0, 60.0, 600.0)
    assert TrialSettings(child={}, hang_floor_s=7).hang_floor_s == 7


def _watched(trial_dir: Path, body: str, **settings: float) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh Python process under a watchdog with ``settings``; returns the finished process."""
    script = textwrap.dedent(
        f"""
        import time
        from dropsearch.runner.trainable import TrialSettings, _Watchdog
        watchdog = _Watchdog({str(trial_dir)!r}, TrialSettings(child={{}}, **{settings!r}))
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_the_watchdog_ends_a_process_whose_first_epoch_outlives_the_first_epoch_floor(tmp_path: Path):
    done = _watched(tmp_path, "time.sleep(60)\nprint('not ended')", first_epoch_floor_s=1.0)
    assert done.returncode == 3 and "not ended" not in done.stdout
    note = (tmp_path / HUNG_FILE).read_text()
    assert note == "trial hung: no epoch finished in 1 s; its worker process was ended"
    assert note in done.stderr


def test_the_watchdog_takes_the_larger_of_the_floor_and_factor_times_the_slowest_epoch(tmp_path: Path):
    # slowest epoch 0.5 s: factor 4 -> 2 s beats the 1.5 s floor; epochs done every 0.2 s keep the process alive
    body = """
        watchdog.epoch_done(0.5)
        for _ in range(10):
            time.sleep(0.2)
            watchdog.epoch_done(0.1)
        print("alive", flush=True)
        time.sleep(60)
    """
    done = _watched(tmp_path, body, hang_factor=4.0, hang_floor_s=1.5)
    assert done.returncode == 3 and "alive" in done.stdout
    assert (tmp_path / HUNG_FILE).read_text() == "trial hung: no epoch finished in 2 s; its worker process was ended"


def test_trial_timeout_s_ends_a_process_that_keeps_finishing_epochs(tmp_path: Path):
    body = """
        for _ in range(600):
            time.sleep(0.1)
            watchdog.epoch_done(0.1)
    """
    done = _watched(tmp_path, body, trial_timeout_s=1.5)
    assert done.returncode == 3
    note = (tmp_path / HUNG_FILE).read_text()
    assert note == "trial hung: budget.trial_timeout_s (1.5 s) exceeded; its worker process was ended"


def test_a_stopped_watchdog_ends_nothing(tmp_path: Path):
    done = _watched(tmp_path, "watchdog.stop()\ntime.sleep(2.5)\nprint('done')", first_epoch_floor_s=1.0)
    assert done.returncode == 0 and done.stdout.strip() == "done"
    assert not (tmp_path / HUNG_FILE).exists()


def test_time_spent_handing_a_report_to_tune_is_not_a_hang(tmp_path: Path):
    # the driver may take long to accept a report; a trial Tune stops at a rung never returns from it
    body = """
        watchdog.epoch_done(0.1)
        with watchdog.reporting():
            time.sleep(3.0)
        print("returned", flush=True)
        time.sleep(0.5)
        print("alive", flush=True)
        time.sleep(60)
    """
    done = _watched(tmp_path, body, hang_factor=1.0, hang_floor_s=1.5)
    assert done.returncode == 3 and "returned" in done.stdout and "alive" in done.stdout  # counted from the return
    assert (tmp_path / HUNG_FILE).read_text() == "trial hung: no epoch finished in 1.5 s; its worker process was ended"


def test_a_new_trial_in_a_reused_worker_stops_the_watchdog_of_the_trial_before_it(tmp_path: Path):
    # the trial before was stopped by Tune while it handed over a report: its watchdog was never stopped
    body = f"""
        with watchdog.reporting():
            pass
        second = _Watchdog({str(tmp_path / "second")!r}, TrialSettings(child={{}}, first_epoch_floor_s=30.0))
        time.sleep(2.5)
        print("alive", watchdog.done.is_set(), flush=True)
    """
    done = _watched(tmp_path, body, first_epoch_floor_s=1.0)
    assert done.returncode == 0 and done.stdout.strip() == "alive True", done.stderr
    assert not (tmp_path / HUNG_FILE).exists()
