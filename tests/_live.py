"""Shared pieces of the end-to-end tests on a real local Ray: a small digits search spec, and the API over real HTTP
with the real runner behind it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dropsearch.api.app import create_app
from dropsearch.client import Client
from dropsearch.runner import Runner
from dropsearch.store import make_engine
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve

#: 8 trials of 2 epochs of an 8/16-wide convnet on digits, 2 at a time, REINFORCE in batches of 4; no ``space``.
DIGITS: dict[str, Any] = {
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "controller": {"name": "reinforce", "batch_size": 4},
    "budget": {"trials": 8, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
    "validation": {"enabled": False},  # these tests count the search trials only
}


def with_overrides(body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of ``body`` where a dict in ``overrides`` updates that section and any other value replaces it."""
    out = copy.deepcopy(body)
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


@contextmanager
def live_service(db_url: str, tmp_path: Path, owner: str = "alice") -> Iterator[tuple[Client, Engine]]:
    """The app over real HTTP and a started runner (local Ray, 2 CPUs, short leases) on ``db_url``: a client with
    ``owner``'s new key, and the store's engine (disposed, and the runner stopped, on exit)."""
    settings = make_settings(db_url, tmp_path, heartbeat_s=1.0, lease_timeout_s=10.0, ray_num_cpus=2)
    engine = make_engine(db_url)
    key = make_key(engine, owner)
    app = create_app(settings, migrate=False, sse_poll_s=0.1, sse_keepalive_s=1.0)
    runner = Runner(settings, poll_s=0.2)
    runner.start()
    try:
        with serve(app) as base_url, Client(base_url, key) as client:
            yield client, engine
    finally:
        runner.stop()
        engine.dispose()
