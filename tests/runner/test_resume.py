"""Resuming a cancelled search over real HTTP with the real runner and a real local Ray: the finished trials are
kept (never trained again) and the search ends ``succeeded``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from dropsearch import store
from dropsearch.api.app import create_app
from dropsearch.config import Settings
from dropsearch.runner import Runner
from tests.api.conftest import make_key
from tests.api.server import serve
from tests.reliability._common import TINY, snapshot, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_ray")]


def test_failed_or_cancelled_search_cannot_be_resumed(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "ds.db")
    url = f"sqlite:///{tmp_path / 'ds.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url, heartbeat_s=0.5, lease_timeout_s=4.0, ray_num_cpus=2)
    engine = store.get_engine(url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    body = {**TINY, "budget": {**TINY["budget"], "trials": 8, "epochs_per_trial": 2}}
    runner = Runner(settings, poll_s=0.2)
    with serve(create_app(settings, migrate=False)) as base, httpx.Client(base_url=base, timeout=30) as http:
        auth = {"Authorization": f"Bearer {alice}"}
        sid = http.post("/v1/searches", json=body, headers=auth).json()["id"]
        runner.start()
        try:
            wait_for(lambda: snapshot(url, sid).search.trials_done >= 2, 300, "2 trials done")
            assert http.post(f"/v1/searches/{sid}/resume", headers=auth).status_code == 409  # running
            assert http.post(f"/v1/searches/{sid}/cancel", headers=auth).status_code == 200
            wait_for(lambda: snapshot(url, sid).search.status == "cancelled", 120, "search cancelled")
            time.sleep(1.0)  # the runner is idle again (nothing queued)
            kept = snapshot(url, sid).completed
            assert 2 <= len(kept) < 8
            other = http.post(f"/v1/searches/{sid}/resume", headers={"Authorization": f"Bearer {bob}"})
            assert other.status_code == 404 and "alice" not in other.text
            resumed = http.post(f"/v1/searches/{sid}/resume", headers=auth)
            assert resumed.status_code == 202, resumed.text
            assert resumed.json()["status"] in ("queued", "running")
            assert resumed.json()["progress"]["trials_done"] == len(kept)
            wait_for(lambda: snapshot(url, sid).search.status not in ("queued", "running"), 400, "resumed search done")
            again = http.post(f"/v1/searches/{sid}/resume", headers=auth)
        finally:
            runner.stop()
    snap = snapshot(url, sid)
    assert snap.search.status == "succeeded", snap.search.error
    assert again.status_code == 409 and "succeeded" in again.json()["detail"]
    assert snap.search.trials_done == 8 and sorted(t.index for t in snap.trials) == list(range(8))
    assert all(t.status == "succeeded" for t in snap.trials)
    for index, before in kept.items():  # finished before the cancel: never trained again
        assert snap.completed[index] == before, index
    starts = [e.data["index"] for e in snap.events if e.kind == "trial_started"]
    assert all(starts.count(i) == 1 for i in kept), starts
