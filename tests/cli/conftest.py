"""Fixtures of the CLI tests: a clean DROPSEARCH_* environment, a CliRunner, and a real API on a free port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dropsearch.api.app import create_app
from dropsearch.cli import app
from dropsearch.cli._common import write_key_file
from dropsearch.config import Settings
from dropsearch.store.db import Engine, make_engine
from tests.api.conftest import make_key
from tests.api.server import serve
from tests.store.conftest import sqlite_template  # noqa: F401  (fixture)

CLIENT_ENV = ("DROPSEARCH_API_KEY", "DROPSEARCH_URL", "DROPSEARCH_DATA_DIR", "DROPSEARCH_DATABASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DROPSEARCH_* setting leaks in from the developer's shell; cwd is a fresh directory (no .env)."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@dataclass
class Cli:
    """Invoke ``dropsearch`` in-process; ``result.stdout`` and ``result.stderr`` are separate."""

    runner: CliRunner

    def __call__(self, *args: str, env: dict[str, str] | None = None):
        return self.runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return Cli(CliRunner())


@dataclass
class Served:
    """A real API (uvicorn, SQLite file in ``data_dir``) whose admin key is in ``data_dir/admin.key``."""

    url: str
    engine: Engine
    data_dir: Path
    key: str
    other_key: str


@pytest.fixture
def served(tmp_path: Path, sqlite_template: Path) -> Iterator[Served]:  # noqa: F811
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(sqlite_template, data_dir / "dropsearch.db")
    settings = Settings(data_dir=data_dir, ray_dashboard_url="http://ray.example:8265")
    engine = make_engine(settings.resolved_database_url)
    key, other = make_key(engine, "admin"), make_key(engine, "mallory")
    write_key_file(data_dir / "admin.key", key)
    app_ = create_app(settings, migrate=False, sse_poll_s=0.05, sse_keepalive_s=0.2)
    with serve(app_) as url:
        yield Served(url, engine, data_dir, key, other)
    engine.dispose()
