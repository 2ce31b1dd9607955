"""Fault injection: ``dropsearch serve`` (API + runner + local Ray + SQLite) is killed with SIGKILL three times
during one search, each time after a different number of finished trials, and restarted; the search must finish
with every completed trial kept exactly once and the controller continuing from its stored state."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.api.server import free_port
from tests.reliability._common import assert_finished_cleanly, kill_group, runner_env, snapshot, spec, start_group

pytestmark = pytest.mark.slow

TRIALS, BATCH = 10, 2
KILL_AFTER = (2, 5, 7)  # finished trials at each kill: a batch boundary, mid-batch, mid-batch


def _start(data: Path, port: int, log: Path):
    url = f"sqlite:///{(data / 'dropsearch.db').resolve()}"
    args = ["-m", "dropsearch.cli", "serve", "--port", str(port), "--data-dir", str(data), "--no-dashboard"]
    return start_group(args, runner_env(url, data), log)


def _healthy(base: str, proc) -> bool:
    assert proc.poll() is None, "serve exited early"
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.1)


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_serve_killed_three_times_finishes_the_search_keeping_every_trial_once(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    url = f"sqlite:///{(data / 'dropsearch.db').resolve()}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(data, port, log)
    try:
        _wait(lambda: _healthy(base, proc), 120, "serve healthy")
        key = (data / "admin.key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        created = httpx.post(f"{base}/v1/searches", json=spec(TRIALS), headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        search_id = created.json()["id"]

        kept: dict[int, tuple] = {}
        versions = []
        for kills, after in enumerate(KILL_AFTER, start=1):
            _wait(lambda a=after: snapshot(url, search_id).search.trials_done >= a, 300, f"{after} trials done")
            kill_group(proc)  # API, runner and the embedded Ray die at once, mid-trial
            snap = snapshot(url, search_id)
            assert snap.search.status == "running" and snap.search.lease_owner is not None  # a dead runner's lease
            for index, record in snap.completed.items():
                assert kept.setdefault(index, record) == record, f"trial {index} changed after kill {kills}"
            versions.append(snap.controller.updates if snap.controller else 0)
            proc = _start(data, port, log)  # a new runner id: it takes over once the dead lease expires (3 s)
            _wait(lambda p=proc: _healthy(base, p), 120, "serve healthy again")
            assert httpx.get(f"{base}/v1/searches/{search_id}", headers=auth, timeout=10).status_code == 200

        def finished() -> bool:
            answer = httpx.get(f"{base}/v1/searches/{search_id}", headers=auth, timeout=10)
            return answer.json()["status"] != "running"

        _wait(finished, 400, "search finished after the third restart")
    finally:
        kill_group(proc)
    snap = snapshot(url, search_id)
    assert len(kept) >= KILL_AFTER[-1]
    assert versions == sorted(versions) and versions[-1] >= 3  # the controller kept learning across the kills
    assert_finished_cleanly(snap, TRIALS, BATCH, kept)
    started = [e for e in snap.events if e.kind == "search_started"]
    resumed = [bool(e.data["resumed"]) for e in started]
    print(
        f"serve killed {len(KILL_AFTER)} times after {KILL_AFTER} trials; controller updates at kills {versions}; "
        f"search_started resumed={resumed}; trials done {snap.search.trials_done}/{TRIALS}"
    )
    assert len(started) == 4 and sum(bool(e.data["resumed"]) for e in started) >= 2, log.read_text()[-3000:]
