"""API under load: 50 concurrent submissions (SQLite and Postgres) and GET latency while a search runs.

Two measurements, both against the real app served by uvicorn on loopback (127.0.0.1, a free port):

- ``submissions``: ``--submissions`` clients (threads, released together by a barrier) each POST one job spec.
  Counted: answers by status, searches stored afterwards, lost submissions (answered 201 but not stored, or not
  answered 201), and any "database is locked" in an answer. Run on a SQLite file and, when ``--postgres-url``
  reaches a server, on a fresh Postgres database (created and dropped here).
- ``get_latency``: the API and a runner with a local Ray in one process (as ``dropsearch serve`` runs them) on
  SQLite; while a tiny search trains, ``--clients`` threads send ``--requests`` GETs in all, round-robin over the
  read routes. Reported: p50/p95/p99/max per route and overall, in milliseconds, and the status codes.

Prints JSON::

    {"machine": {...}, "submissions": {"sqlite": {...}, "postgres": {...}}, "get_latency": {...}}

Usage: ``python benchmarks/api_latency.py [--submissions 50] [--requests 600] [--clients 4]
[--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--no-search]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

SPEC = {
    "name": "bench",
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock"]},
    "controller": {"name": "reinforce", "batch_size": 2},
    "budget": {"trials": 8, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
}
#: The search trained while GET latency is measured: long enough to outlast the measurement (stopped after it).
LONG_SPEC = {**SPEC, "name": "bench-long", "budget": {**SPEC["budget"], "trials": 64, "epochs_per_trial": 3}}
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _run_threads(target: Callable[[int], None], args: Iterable[int]) -> float:
    """Run ``target(i)`` for each ``i`` in a thread of its own, all at once; returns the wall time in seconds."""
    threads = [threading.Thread(target=target, args=(i,)) for i in args]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated Postgres database on the server of ``admin_url``; dropped on exit."""
    from dropsearch.store.db import dispose_engines
    from dropsearch.store.scratch import scratch_database

    with scratch_database(admin_url, prefix="dropsearch_bench") as url:
        try:
            yield url
        finally:
            dispose_engines()  # the engines this process cached for the database go before it does


def _settings(url: str, data_dir: Path) -> Any:
    from dropsearch.config import Settings

    return Settings(
        database_url=url,
        data_dir=data_dir,
        heartbeat_s=0.5,
        lease_timeout_s=5.0,
        ray_num_cpus=2,
        migrate_on_start=False,
    )


def _key(url: str, owner: str = "bench") -> str:
    from dropsearch.store.api_keys import create_api_key
    from dropsearch.store.db import get_engine, session_scope

    with session_scope(get_engine(url)) as session:
        plain, _ = create_api_key(session=session, owner=owner, name="bench", is_admin=True)  # /metrics is admin-only
    return plain


def _stored(url: str, owner: str) -> list[str]:
    from dropsearch.store.db import get_engine, session_scope
    from dropsearch.store.searches import list_searches

    with session_scope(get_engine(url), read_only=True) as session:
        return [s.id for s in list_searches(session=session, owner=owner, limit=1000).items]


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))], 2)

    return {"n": len(ordered), "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def concurrent_submissions(url: str, n: int = 50) -> dict[str, Any]:
    """POST ``n`` job specs at once (one thread each, released by a barrier); count what was stored."""
    from dropsearch.api.app import create_app
    from dropsearch.api.threaded_server import serve_in_thread

    data_dir = Path(tempfile.mkdtemp(prefix="dsbench-"))
    owner = f"bench-{uuid.uuid4().hex[:6]}"
    key = _key(url, owner)
    answers: list[tuple[int, str, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)
    with serve_in_thread(create_app(_settings(url, data_dir), migrate=False)) as base:

        def submit(i: int) -> None:
            body = {**SPEC, "name": f"bench-{i}"}
            with httpx.Client(base_url=base, timeout=60) as client:
                barrier.wait()
                started = time.perf_counter()
                try:
                    response = client.post("/v1/searches", json=body, headers={"Authorization": f"Bearer {key}"})
                    answer = (response.status_code, response.text)
                except httpx.HTTPError as exc:
                    answer = (0, f"{type(exc).__name__}: {exc}")
            with lock:
                answers.append((*answer, (time.perf_counter() - started) * 1000))

        wall = _run_threads(submit, range(n))
    shutil.rmtree(data_dir, ignore_errors=True)
    accepted = {json.loads(text)["id"] for code, text, _ in answers if code == 201}
    stored = set(_stored(url, owner))
    return {
        "submitted": n,
        "statuses": dict(Counter(code for code, _, _ in answers)),
        "stored": len(stored),
        "lost": n - len(accepted & stored),
        "database_is_locked": sum("database is locked" in text for _, text, _ in answers),
        "wall_s": round(wall, 3),
        "latency": _percentiles([ms for _, _, ms in answers]),
    }


def _read_routes(search_id: str, trial_id: str | None) -> list[str]:
    routes = [
        "/healthz",
        "/v1/searches",
        f"/v1/searches/{search_id}",
        f"/v1/searches/{search_id}/trials",
        f"/v1/searches/{search_id}/best",
        f"/v1/searches/{search_id}/plot.png",
        "/v1/catalog",
        "/metrics",
    ]
    if trial_id:
        routes.append(f"/v1/trials/{trial_id}/mask.png")
    return routes


def get_latency(requests: int = 600, clients: int = 4, run_search: bool = True) -> dict[str, Any]:
    """GET latency on loopback while a runner in the same process trains a tiny search (SQLite)."""
    from dropsearch.api.app import create_app
    from dropsearch.api.threaded_server import serve_in_thread
    from dropsearch.runner.runner import Runner
    from dropsearch.store.migrate import upgrade

    data_dir = Path(tempfile.mkdtemp(prefix="dsbench-"))
    url = f"sqlite:///{data_dir / 'dropsearch.db'}"
    upgrade(url)
    settings = _settings(url, data_dir)
    key = _key(url, "bench")
    auth = {"Authorization": f"Bearer {key}"}
    runner = Runner(settings, poll_s=0.2) if run_search else None
    samples: dict[str, list[float]] = {}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    try:
        with serve_in_thread(create_app(settings, migrate=False)) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                search_id = client.post("/v1/searches", json=LONG_SPEC, headers=auth).json()["id"]
                if runner is not None:
                    runner.start()
                    deadline = time.monotonic() + 180
                    while client.get(f"/v1/searches/{search_id}/trials", headers=auth).json()["count"] == 0:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the search never started a trial")
                        time.sleep(0.2)
                trials = client.get(f"/v1/searches/{search_id}/trials", headers=auth).json()["data"]
            routes = _read_routes(search_id, trials[0]["id"] if trials else None)
            per_client = max(1, requests // clients)
            with httpx.Client(base_url=base, timeout=60) as client:
                done_before = client.get(f"/v1/searches/{search_id}", headers=auth).json()["progress"]["trials_done"]

            def hammer(offset: int) -> None:
                with httpx.Client(base_url=base, timeout=60) as client:
                    for i in range(per_client):
                        route = routes[(i + offset) % len(routes)]
                        started = time.perf_counter()
                        response = client.get(route, headers=auth)
                        elapsed = (time.perf_counter() - started) * 1000
                        with lock:
                            samples.setdefault(route.replace(search_id, "{id}"), []).append(elapsed)
                            statuses[response.status_code] += 1

            wall = _run_threads(hammer, range(clients))
            with httpx.Client(base_url=base, timeout=60) as client:
                progress = client.get(f"/v1/searches/{search_id}", headers=auth).json()
    finally:
        if runner is not None:
            runner.stop()
            from dropsearch.cli._process import shutdown_ray

            shutdown_ray()
        shutil.rmtree(data_dir, ignore_errors=True)
    if trials:
        samples = {k.replace(trials[0]["id"], "{trial}"): v for k, v in samples.items()}
    every = [ms for values in samples.values() for ms in values]
    return {
        "requests": len(every),
        "clients": clients,
        "search_running": bool(run_search and progress["status"] == "running"),
        "trials_done_during": progress["progress"]["trials_done"] - done_before,
        "statuses": dict(statuses),
        "wall_s": round(wall, 3),
        "overall": _percentiles(every),
        "routes": {route: _percentiles(values) for route, values in sorted(samples.items())},
    }


def _postgres_reachable(admin_url: str) -> bool:
    from sqlalchemy import create_engine

    engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres-url", default=os.environ.get("DROPSEARCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--no-search", action="store_true", help="measure GET latency with no search running")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from dropsearch.store.migrate import upgrade

    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "submissions": {},
    }
    sqlite_dir = Path(tempfile.mkdtemp(prefix="dsbench-"))
    sqlite_url = f"sqlite:///{sqlite_dir / 'dropsearch.db'}"
    upgrade(sqlite_url)
    result["submissions"]["sqlite"] = concurrent_submissions(sqlite_url, args.submissions)
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    if _postgres_reachable(args.postgres_url):
        with postgres_database(args.postgres_url) as url:
            result["submissions"]["postgres"] = concurrent_submissions(url, args.submissions)
    else:
        result["submissions"]["postgres"] = {"skipped": f"no Postgres at {args.postgres_url}"}
    result["get_latency"] = get_latency(args.requests, args.clients, run_search=not args.no_search)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
