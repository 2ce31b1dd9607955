"""Fixtures of the dashboard tests: an app on a migrated SQLite copy, served over real HTTP, and headless Chromium.

The browser is Debian's chromium (``/usr/bin/chromium``, or ``$DROPSEARCH_CHROMIUM``) driven by Python Playwright
(the driver package only: ``playwright install`` is never run). ``./scripts/install-browser`` installs both; the
browser tests skip, naming what is missing, only when they are not installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dropsearch.api.app import create_app
from dropsearch.store.db import Engine, make_engine
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve
from tests.store.conftest import sqlite_template  # noqa: F401  (fixture)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("DROPSEARCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Server:
    """A served app: its base URL, engine and two owners' keys."""

    base: str
    engine: Engine
    alice: str
    bob: str


@pytest.fixture
def server(tmp_path: Path, sqlite_template: Path) -> Iterator[Server]:  # noqa: F811
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    app = create_app(make_settings(url, tmp_path), migrate=False, sse_poll_s=0.1, sse_keepalive_s=1.0)
    try:
        with serve(app) as base:
            yield Server(base, engine, alice, bob)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian chromium through Playwright (a fresh, empty profile per context)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package 'playwright' is not installed: run ./scripts/install-browser")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM}: run ./scripts/install-browser (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (``test-artifacts/ui`` at the repository root; gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
