"""Lease fencing with real `dropsearch runner` processes and real Ray: a runner frozen past its lease (SIGSTOP)
loses the search to another runner and, once resumed (SIGCONT), writes nothing more and stops its trials."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dropsearch.runner.runner import unique_runner_id
from tests.reliability import _common as common

pytestmark = pytest.mark.slow

TRIALS, BATCH = 10, 2


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copyfile(sqlite_template, tmp_path / "ds.db")
    return f"sqlite:///{tmp_path / 'ds.db'}"


def _runner(url: str, tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    # the same --runner-id for both processes: each still gets an id (and a lease) of its own
    env = common.runner_env(url, tmp_path, DROPSEARCH_LEASE_TIMEOUT_S="3", DROPSEARCH_HEARTBEAT_S="0.5", COLUMNS="400")
    return common.start_group(["-m", "dropsearch.cli", "runner", "--runner-id", "dup"], env, log)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        try:
            common.kill_group(proc, signal.SIGTERM, timeout=60)
        except subprocess.TimeoutExpired:
            common.kill_group(proc)


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_runner_that_lost_its_lease_keeps_writing(sqlite_url: str, tmp_path: Path) -> None:
    search_id = common.submit(sqlite_url, common.spec(TRIALS, epochs=2))
    log_a, log_b = tmp_path / "runner-a.log", tmp_path / "runner-b.log"
    proc_a = _runner(sqlite_url, tmp_path, log_a)
    proc_b = None
    try:

        def a_is_training() -> bool:
            snap = common.snapshot(sqlite_url, search_id)
            return snap.search.trials_done >= 2 and any(t.status == "running" for t in snap.trials)

        common.wait_for(a_is_training, 300, "runner A trained 2 trials and runs more")
        first = common.snapshot(sqlite_url, search_id).search
        os.kill(proc_a.pid, signal.SIGSTOP)  # A freezes holding its lease; its Ray workers go on training
        frozen_at = time.monotonic()
        kept = common.snapshot(sqlite_url, search_id).completed
        proc_b = _runner(sqlite_url, tmp_path, log_b)

        def started() -> list:
            return [e for e in common.snapshot(sqlite_url, search_id).events if e.kind == "search_started"]

        common.wait_for(lambda: len(started()) >= 2, 300, "runner B took the search over")
        takeover = started()[1]
        assert time.monotonic() - frozen_at >= 3.0  # B waited for A's lease to expire
        taken = common.snapshot(sqlite_url, search_id).search
        time.sleep(2.0)
        os.kill(proc_a.pid, signal.SIGCONT)  # A wakes up believing it trains the search
        common.wait_for(
            lambda: common.snapshot(sqlite_url, search_id).search.status != "running", 400, "search finished"
        )
        common.wait_for(
            lambda: re.search(r"lease (lost|of search \w+ was taken over)", log_a.read_text()) is not None,
            60,
            "runner A noticed it lost the lease",
        )
    finally:
        _stop(proc_a)
        if proc_b is not None:
            _stop(proc_b)
    snap = common.snapshot(sqlite_url, search_id)
    runners = [e.data["runner"] for e in snap.events if e.kind == "search_started"]
    print(f"runners {runners}; generations {first.lease_generation} -> {taken.lease_generation}")
    common.assert_finished_cleanly(snap, TRIALS, BATCH, kept)  # every trial once, the results B's (or kept from A)
    assert len(set(runners)) == len(runners) and all(r.startswith("dup-") for r in runners)  # unique ids
    assert taken.lease_generation > first.lease_generation and taken.lease_owner != first.lease_owner
    late = [e for e in snap.events if e.id > takeover.id]
    assert late and all(e.lease_generation == taken.lease_generation for e in late), [
        (e.kind, e.lease_generation) for e in late if e.lease_generation != taken.lease_generation
    ]
    for trial in snap.trials:  # every result after the take-over was written under B's lease
        if trial.index not in kept:
            assert trial.lease_generation == taken.lease_generation, (trial.index, trial.lease_generation)
    assert snap.controller.lease_generation == taken.lease_generation


def test_a_runner_id_prefix_gets_a_per_process_suffix() -> None:
    one, two = unique_runner_id("dup"), unique_runner_id("dup")
    assert one != two and one.startswith(f"dup-{os.getpid()}-") and two.startswith("dup-")
    with pytest.raises(ValueError, match="printable"):
        unique_runner_id("bad\nid")
