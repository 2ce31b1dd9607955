from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from dropsearch.store.migrate import alembic_config, current_revision, head_revision, upgrade
from dropsearch.store.models import Base
from dropsearch.store.scratch import scratch_database

TABLES = {"api_keys", "searches", "trials", "controller_states", "events"}


def _diff(engine: Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), metadata)


def test_migrated_schema_equals_models(engine: Engine, db_url: str) -> None:
    assert current_revision(db_url) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    assert _diff(engine, Base.metadata) == []


def test_comparison_detects_a_schema_drift(engine: Engine) -> None:
    # Negative control: the comparison above must be able to fail.
    drifted = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["searches"].append_column(sa.Column("extra", sa.Integer(), nullable=True))
    diff = _diff(engine, drifted)
    assert [entry[0] for entry in diff] == ["add_column"]
    assert diff[0][3].name == "extra"


def test_upgrade_is_idempotent_and_downgrade_removes_tables(db_url: str, engine: Engine) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    command.downgrade(alembic_config(db_url), "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert _diff(engine, Base.metadata) == []


def test_upgrade_creates_a_fresh_sqlite_database_in_a_new_directory(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'dropsearch.db'}"
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()


def _upgrade_concurrently(url: str, count: int = 3) -> list[int]:
    # Processes, not threads: Alembic's context/op proxies are process-global, and the real case is an API and a
    # runner process starting together.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=upgrade, args=(url,)) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return [worker.exitcode for worker in workers]


def test_concurrent_upgrades_of_a_fresh_sqlite_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert _upgrade_concurrently(url) == [0, 0, 0]
    assert current_revision(url) == head_revision()


@pytest.mark.postgres
def test_concurrent_upgrades_of_a_fresh_postgres_database(postgres_url: str) -> None:
    with scratch_database(postgres_url, prefix="dropsearch_fresh", migrate=False) as url:
        assert _upgrade_concurrently(url) == [0, 0, 0]
        assert current_revision(url) == head_revision()
