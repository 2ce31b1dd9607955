"""Fixtures of the reliability tests: the API and store fixtures (SQLite template, the session's Postgres)."""

from tests.api.conftest import sqlite_api  # noqa: F401  (fixture)
from tests.store.conftest import postgres_url, sqlite_template  # noqa: F401  (fixtures)
