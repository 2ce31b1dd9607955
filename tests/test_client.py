"""dropsearch.client.Client over real HTTP (uvicorn on a free port, SQLite file)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropsearch.api.app import create_app
from dropsearch.client import ApiError, Client
from dropsearch.search.spec import SearchSpec
from dropsearch.store.db import Engine, make_engine
from tests.api import runner_sim
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve
from tests.store.conftest import sqlite_template  # noqa: F401  (fixture)

SPEC = runner_sim.spec("client-test", trials=2, epochs_per_trial=2, max_concurrent=1)


@pytest.fixture
def served(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, Engine, str, str]]:  # noqa: F811
    shutil.copyfile(sqlite_template, tmp_path / "c.db")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    app = create_app(make_settings(url, tmp_path), migrate=False, sse_poll_s=0.05, sse_keepalive_s=0.2)
    with serve(app) as base:
        yield base, engine, alice, bob
    engine.dispose()


def test_client_follows_a_search_to_its_best_pattern(served, tmp_path: Path) -> None:
    base, engine, alice, _ = served
    with Client(base, alice) as client:
        search = client.submit(SearchSpec.model_validate(SPEC))
        sid = search["id"]
        assert search["status"] == "queued" and client.get(sid)["name"] == "client-test"
        assert client.list()["count"] == 1 and client.list(status="running")["count"] == 0

        def runner() -> None:
            time.sleep(0.3)
            runner_sim.claim(engine, sid)
            runner_sim.run_trial(engine, sid, 0, 0.7, variant="dropblock")
            runner_sim.run_trial(engine, sid, 1, 0.6, variant="dropblock")
            runner_sim.finish(engine, sid)

        thread = threading.Thread(target=runner)
        thread.start()
        events = list(client.events(sid))
        thread.join()
        assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "succeeded"
        assert [e["event"] for e in events].count("trial.finished") == 2
        # resuming after the first event gives the rest
        rest = list(client.events(sid, after=events[0]["id"]))
        assert [e["id"] for e in rest] == [e["id"] for e in events[1:]]

        final = client.wait(sid, timeout=5, poll_s=0.05)
        assert final["status"] == "succeeded" and final["best_reward"] == 0.7
        trials = client.trials(sid)
        assert trials["count"] == 2 and [t["reward"] for t in trials["data"]] == [0.7, 0.6]
        target = tmp_path / "best.json"
        pattern = client.best(sid, path=target)
        assert pattern["variant"] == "dropblock" and pattern["provenance"]["reward"] == 0.7
        assert json.loads(target.read_text()) == pattern
        assert client.plot(sid)[:4] == b"\x89PNG"
        assert client.mask(trials["data"][0]["id"])[:4] == b"\x89PNG"
        assert "convnet" in {m["name"] for m in client.catalog()["models"]}
        with pytest.raises(ApiError) as finished:
            client.cancel(sid)
        assert finished.value.status_code == 409


def test_client_errors_and_wait_timeout(served) -> None:
    base, _, alice, bob = served
    with Client(base, alice) as client:
        sid = client.submit(SPEC)["id"]
        with pytest.raises(ApiError) as bad:
            client.submit({**SPEC, "budget": {"trials": 0}})
        assert bad.value.status_code == 422 and "budget.trials" in bad.value.detail
        with pytest.raises(TimeoutError, match=sid):
            client.wait(sid, timeout=0.2, poll_s=0.05)
        assert client.cancel(sid)["status"] == "cancelled"
        assert client.wait(sid, timeout=1)["status"] == "cancelled"
    with Client(base, bob) as other:
        for call in (lambda: other.get(sid), lambda: list(other.events(sid)), lambda: other.best(sid)):
            with pytest.raises(ApiError) as missing:
                call()
            assert missing.value.status_code == 404 and sid in missing.value.detail
    with Client(base, "ds_wrong") as wrong, pytest.raises(ApiError) as denied:
        wrong.list()
    assert denied.value.status_code == 401 and "invalid API key" in denied.value.detail
