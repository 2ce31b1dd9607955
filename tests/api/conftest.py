"""Fixtures of the API tests: an app on a migrated database (SQLite file, or the real Postgres), and API keys.

The database fixtures come from ``tests/store/conftest.py`` (a throwaway Postgres database per session, skipped
only when the server is unreachable).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dropsearch.api.app import create_app
from dropsearch.config import Settings
from dropsearch.store.api_keys import create_api_key
from dropsearch.store.db import Engine, make_engine, session_scope
from tests.api import runner_sim
from tests.store.conftest import db_url, postgres_url, sqlite_template  # noqa: F401  (fixtures)

MAX_REQUEST_BYTES = 20_000


@dataclass
class Api:
    """A running test app: its HTTP client, engine, settings, and two owners' keys."""

    client: TestClient
    engine: Engine
    settings: Settings
    alice: str
    bob: str
    data_root: Path

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.alice}"}


#: A small valid job spec (3 trials of the convnet on digits).
SPEC = {
    "model": {"name": "convnet"},
    "dataset": {"name": "digits"},
    "budget": {"trials": 3, "max_concurrent": 1},
    "validation": {"enabled": False},
}


def finished_search(api: Api, spec: dict = SPEC) -> tuple[str, str]:
    """Submit ``spec`` as alice over HTTP, then let the simulated runner finish it with one trial (reward 0.8).

    Returns:
        (search id, trial id)
    """
    sid = api.client.post("/v1/searches", json=spec, headers=api.auth()).json()["id"]
    runner_sim.claim(api.engine, sid)
    tid = runner_sim.run_trial(api.engine, sid, 0, 0.8)
    runner_sim.finish(api.engine, sid)
    return sid, tid


def make_settings(db: str, tmp_path: Path, **overrides: object) -> Settings:
    root = tmp_path / "datasets"
    root.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "database_url": db,
        "data_dir": tmp_path,
        "dataset_roots": [root],
        "max_trials": 100,
        "max_epochs_per_trial": 20,
        "max_request_bytes": MAX_REQUEST_BYTES,
        "ray_dashboard_url": "http://ray.example:8265",
    }
    values.update(overrides)
    return Settings(**values)


def make_key(engine: Engine, owner: str) -> str:
    with session_scope(engine) as session:
        plain, _ = create_api_key(session=session, owner=owner, name=f"{owner}-test")
    return plain


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    settings = make_settings(db_url, tmp_path)
    engine = make_engine(db_url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    app = create_app(settings, migrate=False, sse_poll_s=0.05, sse_keepalive_s=0.2)
    with TestClient(app) as client:
        yield Api(client, engine, settings, alice, bob, tmp_path / "datasets")
    engine.dispose()


@pytest.fixture
def sqlite_api(tmp_path: Path, sqlite_template: Path) -> Iterator[Api]:  # noqa: F811
    """Like ``api`` but only on SQLite (for tests whose subject is not the database)."""
    import shutil

    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    settings = make_settings(url, tmp_path)
    engine = make_engine(url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    app = create_app(settings, migrate=False, sse_poll_s=0.05, sse_keepalive_s=0.2)
    with TestClient(app) as client:
        yield Api(client, engine, settings, alice, bob, tmp_path / "datasets")
    engine.dispose()
