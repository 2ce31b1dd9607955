"""Fixtures of the runner tests: the store's migrated SQLite template and the session's Postgres database."""

from tests.store.conftest import postgres_url, sqlite_template  # noqa: F401  (fixtures)
