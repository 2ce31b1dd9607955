"""The real service in this process: SQLite store, runner, uvicorn over HTTP, and a client with an API key.

The study submits its searches exactly as a user would (``POST /v1/searches`` with a JSON spec, SSE events,
``GET /v1/searches/{id}/best``): the runner claims the search from the store and runs it through the engine on the
local Ray, with the spec's defaults (controller, early stopping, validation stage) unless the spec says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["local_service", "run_service_search"]


@contextmanager
def local_service(
    workdir: Path, *, max_trials: int = 1000, max_epochs_per_trial: int = 1000, ray_num_cpus: int | None = None
) -> Iterator[Any]:
    """A migrated SQLite store in ``workdir``, a runner and the HTTP API; yields a :class:`dropsearch.client.Client`.

    Ray must already be initialised or is started by the runner with ``ray_num_cpus``.
    """
    from dropsearch.api.app import create_app
    from dropsearch.api.threaded_server import serve_in_thread
    from dropsearch.client import Client
    from dropsearch.config import Settings
    from dropsearch.runner import Runner
    from dropsearch.store import make_engine
    from dropsearch.store.api_keys import create_api_key
    from dropsearch.store.db import session_scope
    from dropsearch.store.migrate import upgrade

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "datasets").mkdir(exist_ok=True)
    db = workdir / "store.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        data_dir=workdir,
        dataset_roots=[workdir / "datasets"],
        max_trials=max_trials,
        max_epochs_per_trial=max_epochs_per_trial,
        ray_num_cpus=ray_num_cpus,
    )
    engine = make_engine(url)
    with session_scope(engine) as session:
        key, _ = create_api_key(session=session, owner="study", name="quality-study")
    app = create_app(settings, migrate=False, sse_poll_s=0.5, sse_keepalive_s=5.0)
    runner = Runner(settings, poll_s=0.5)
    runner.start()
    try:
        with serve_in_thread(app) as base_url, Client(base_url, key) as client:
            yield client
    finally:
        runner.stop()
        engine.dispose()


def run_service_search(client: Any, spec: dict[str, Any], *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Submit ``spec`` over HTTP, follow its events to the end; the search, every trial and ``/best``.

    Returns:
        ``{"id", "status", "wall_s", "search", "trials", "best"}``; ``trials`` holds search trials (index below
        1 000 000) and validation runs (index from 1 000 000 on) as the API returns them.
    """
    start = time.perf_counter()
    created = client.submit(spec)
    search_id = created["id"]
    log(f"submitted search {search_id} ({spec.get('name')})")
    status = None
    for event in client.events(search_id):
        kind, data = event["event"], event.get("data") or {}
        if kind == "trial_finished":
            reward = data.get("reward")
            shown = "failed" if reward is None else f"{reward:.4f}"
            log(f"  trial {data.get('index')}: {data.get('status')} reward {shown} ({data.get('wall_s') or 0:.1f} s)")
        elif kind == "end":
            status = data.get("status")
            break
    wall = time.perf_counter() - start
    search = client.wait(search_id, timeout=4 * 3600.0)  # the stream may close without an end event
    trials = client.all_trials(search_id)
    best = client.best(search_id) if search["status"] == "succeeded" else None
    log(f"search {search_id}: {status or search['status']} in {wall:.0f} s, {len(trials)} trials stored")
    return {
        "id": search_id,
        "status": search["status"],
        "wall_s": wall,
        "search": search,
        "trials": trials,
        "best": best,
    }
