"""Fault injection with a real runner and a real local Ray: a Ray worker process killed during a trial, the
Postgres connections dropped while the runner writes, and the runner killed while a controller update is being
written. Each search must finish with every completed trial kept once and nothing left ``running``."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner import Runner
from tests.reliability._common import (
    assert_finished_cleanly,
    kill_group,
    runner_env,
    snapshot,
    spec,
    start_group,
    submit,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_ray")]


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copyfile(sqlite_template, tmp_path / "ds.db")
    return f"sqlite:///{tmp_path / 'ds.db'}"


def _settings(url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=url, heartbeat_s=0.5, lease_timeout_s=4.0, ray_num_cpus=2)


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descends_from_us(pid: int) -> bool:
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        pid = _parent(pid)
    return False


def _child_workers() -> dict[int, str]:
    """pid -> process title of this test's live trial worker processes (Ray Tune's ``ray::ImplicitFunc`` actors;
    Ray sets the title; the raylet that started them is our child, so other Ray sessions are never touched)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if title.startswith("ray::ImplicitFunc") and _descends_from_us(int(entry)):
                    found[int(entry)] = title.strip()
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_a_ray_worker_killed_during_a_trial_is_replaced_and_the_trial_retried(sqlite_url: str, tmp_path: Path):
    trials = 6
    search_id = submit(sqlite_url, spec(trials, epochs=3))
    runner = Runner(_settings(sqlite_url, tmp_path), poll_s=0.2)
    runner.start()
    try:

        before: list = []

        def kill_a_training_worker() -> bool:
            """Once a trial has finished and another runs, kill a worker inside a trial's train()."""
            snap = snapshot(sqlite_url, search_id)
            if snap.search.trials_done < 1 or not any(t.status == "running" for t in snap.trials):
                return False
            # read the titles right before the kill: on a loaded machine a store read is long enough for a
            # worker seen busy to finish its trial
            busy = [p for p, t in _child_workers().items() if ".train" in t]
            if not busy:
                return False
            before.append(snap.completed)
            os.kill(busy[0], signal.SIGKILL)
            return True

        wait_for(kill_a_training_worker, 240, "a worker busy training after one finished trial", poll_s=0.02)
        wait_for(lambda: snapshot(sqlite_url, search_id).search.status != "running", 300, "search finished")
    finally:
        runner.stop()
    snap = snapshot(sqlite_url, search_id)
    assert_finished_cleanly(snap, trials, 2, before[0])
    retried = [t for t in snap.trials if t.attempt == 2]
    assert len(retried) == 1 and len(retried[0].metrics) == 3  # the killed trial ran again, in full, once
    starts = [e.data["index"] for e in snap.events if e.kind == "trial_started"]
    assert starts.count(retried[0].index) == 2 and len(starts) == trials + 1


def test_postgres_connections_dropped_during_writes_lose_nothing(postgres_url: str, tmp_path: Path, caplog):
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("TRUNCATE api_keys, searches, trials, controller_states, events CASCADE"))
    trials = 6
    search_id = submit(postgres_url, spec(trials))
    database = admin.url.database
    dropped, stop = [0], threading.Event()

    def drop_connections() -> None:
        with admin.connect() as connection:
            while not stop.wait(0.15):
                rows = connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
                dropped[0] += sum(bool(row[0]) for row in rows)

    runner = Runner(_settings(postgres_url, tmp_path), poll_s=0.2)
    killer = threading.Thread(target=drop_connections, daemon=True)
    caplog.set_level(logging.WARNING, logger="dropsearch.runner")
    runner.start()
    try:
        wait_for(lambda: snapshot(postgres_url, search_id).search.status == "running", 120, "search claimed")
        killer.start()
        wait_for(lambda: snapshot(postgres_url, search_id).search.trials_done >= trials, 300, "every trial done")
        stop.set()
        killer.join()
        wait_for(lambda: snapshot(postgres_url, search_id).search.status != "running", 120, "search finished")
    finally:
        stop.set()
        runner.stop()
        store.dispose_engines()
    admin.dispose()
    snap = snapshot(postgres_url, search_id)
    retries = [r for r in caplog.records if "retry" in r.getMessage() or "retrying" in r.getMessage()]
    print(f"connections dropped: {dropped[0]}, store retries logged: {len(retries)}")
    assert dropped[0] >= 10
    assert_finished_cleanly(snap, trials, 2, {}, one_event_each=False)
    assert all(t.attempt == 1 for t in snap.trials) or all(t.attempt <= 2 for t in snap.trials)


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_runner_killed_while_a_controller_update_is_being_written_resumes_from_the_stored_state(
    sqlite_url: str, tmp_path: Path
):
    trials, batch = 10, 2
    search_id = submit(sqlite_url, spec(trials, epochs=1))
    path = sqlite_url.removeprefix("sqlite:///")
    env = runner_env(sqlite_url, tmp_path)
    log = tmp_path / "runner.log"
    proc = start_group(["-m", "dropsearch.runner", "--runner-id", "runner-a"], env, log)
    probe = sqlite3.connect(path, isolation_level=None, timeout=30)
    caught = None
    try:
        for boundary in range(batch, trials, batch):
            deadline = time.monotonic() + 240
            while probe.execute("SELECT trials_done FROM searches WHERE id = ?", (search_id,)).fetchone()[0] < boundary:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.001)
            probe.execute("BEGIN IMMEDIATE")  # the write lock: the runner's next write (the update) must wait
            stored = probe.execute(
                "SELECT count(*) FROM controller_states WHERE search_id = ? AND trials_seen = ?", (search_id, boundary)
            ).fetchone()[0]
            if stored:  # the update beat us to it: try the next batch
                probe.execute("ROLLBACK")
                continue
            time.sleep(1.0)  # the runner is now blocked inside the controller-update transaction
            kill_group(proc)
            probe.execute("ROLLBACK")
            caught = boundary
            print(f"runner killed while the controller update after trial {boundary} was being written")
            break
        assert caught is not None, "never caught a controller update in flight"
        before = snapshot(sqlite_url, search_id)
        assert before.controller is None or before.controller.trials_seen == caught - batch  # no partial state
        proc = start_group(["-m", "dropsearch.runner", "--runner-id", "runner-a"], env, log)  # same id: at once
        wait_for(lambda: snapshot(sqlite_url, search_id).search.status != "running", 300, "search finished")
    finally:
        probe.close()
        kill_group(proc, signal.SIGTERM)
    snap = snapshot(sqlite_url, search_id)
    assert_finished_cleanly(snap, trials, batch, before.completed)
    updates = [e.data for e in snap.events if e.kind == "controller_updated"]
    assert [u["trials_seen"] for u in updates] == list(range(batch, trials + 1, batch))  # the lost one made once
    assert [u["updates"] for u in updates] == list(range(1, trials // batch + 1))
