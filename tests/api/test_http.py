"""End to end over real HTTP (uvicorn on a free port): submit, list, follow the live SSE stream while a simulated
runner moves the search to its final state, download /best, fetch plot.png."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from dropsearch.api.app import create_app
from dropsearch.client import parse_sse
from dropsearch.store.db import make_engine
from tests.api import runner_sim
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve

SPEC = runner_sim.spec("e2e", trials=3, epochs_per_trial=2, max_concurrent=1)


def simulate_runner(engine, sid: str, delay: float) -> None:
    time.sleep(delay)
    runner_sim.claim(engine, sid)
    for index, reward in enumerate([0.4, 0.8, 0.6]):
        runner_sim.run_trial(engine, sid, index, reward)
        time.sleep(0.05)
    runner_sim.finish(engine, sid)


def test_end_to_end_over_http(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    key = make_key(engine, "alice")
    app = create_app(make_settings(db_url, tmp_path), migrate=True, sse_poll_s=0.05, sse_keepalive_s=0.15)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with serve(app) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok", "database": "ok"}
            created = http.post("/v1/searches", json=SPEC)
            assert created.status_code == 201
            sid = created.json()["id"]
            assert [s["id"] for s in http.get("/v1/searches").json()["data"]] == [sid]

            runner = threading.Thread(target=simulate_runner, args=(engine, sid, 0.5))
            runner.start()
            lines: list[str] = []
            started = time.monotonic()
            with http.stream("GET", f"/v1/searches/{sid}/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for line in stream.iter_lines():
                    lines.append(line)
            runner.join()
            assert time.monotonic() - started < 20
            assert ": keep-alive" in lines  # sent while the search was still queued
            events = list(parse_sse(iter(lines)))
            kinds = [e["event"] for e in events]
            assert kinds.count("trial.finished") == 3 and kinds.count("trial.reported") == 6
            assert kinds[-2:] == ["search.finished", "end"] and events[-1]["data"]["status"] == "succeeded"

            search = http.get(f"/v1/searches/{sid}").json()
            assert search["status"] == "succeeded" and search["progress"]["trials_done"] == 3
            best = http.get(f"/v1/searches/{sid}/best")
            assert best.headers["content-disposition"] == 'attachment; filename="e2e-best-pattern.json"'
            document = best.json()
            assert document["provenance"]["reward"] == 0.8 and document["provenance"]["search_id"] == sid
            assert document["provenance"]["trial_id"] == search["best_trial_id"]
            plot = http.get(f"/v1/searches/{sid}/plot.png")
            assert plot.headers["content-type"] == "image/png" and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
            huge = http.post("/v1/searches", content=b"x" * 30_000, headers={"Content-Type": "application/json"})
            assert huge.status_code == 413
    finally:
        engine.dispose()


def test_startup_migrates_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    app = create_app(make_settings(url, tmp_path), migrate=True)
    with serve(app) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "database": "ok"}
        engine = make_engine(url)
        key = make_key(engine, "carol")
        engine.dispose()
        response = httpx.post(f"{base}/v1/searches", json=SPEC, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 201


def test_healthz_reports_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with serve(create_app(make_settings(url, tmp_path), migrate=False)) as base:
        response = httpx.get(f"{base}/healthz")
    assert response.status_code == 503 and response.json() == {"status": "degraded", "database": "unavailable"}
