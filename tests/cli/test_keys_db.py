"""``dropsearch keys`` and ``dropsearch db`` on a real SQLite file, checked against the store's own functions."""

from __future__ import annotations

from pathlib import Path

from dropsearch.store.api_keys import authenticate, list_api_keys
from dropsearch.store.db import make_engine, session_scope
from dropsearch.store.migrate import current_revision, head_revision


def _url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'dropsearch.db').resolve()}"


def test_db_current_is_behind_until_upgrade(cli, tmp_path: Path) -> None:
    data = tmp_path / "d"
    before = cli("db", "current", "--data-dir", data)
    assert before.exit_code == 1
    assert "never migrated" in before.stdout and "dropsearch db upgrade" in before.stdout
    assert current_revision(_url(data)) is None

    upgraded = cli("db", "upgrade", "--data-dir", data)
    assert upgraded.exit_code == 0, upgraded.output
    assert current_revision(_url(data)) == head_revision()
    assert head_revision() in upgraded.stdout

    after = cli("db", "current", "--data-dir", data)
    assert after.exit_code == 0 and "up to date" in after.stdout
    assert cli("db", "upgrade", "--data-dir", data).exit_code == 0  # idempotent


def test_db_honours_the_database_url_env(cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = cli("db", "upgrade", env={"DROPSEARCH_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert current_revision(url) == head_revision()
    assert not (tmp_path / ".dropsearch").exists()  # the default data dir was not used


def test_keys_create_list_revoke_round_trip(cli, tmp_path: Path) -> None:
    data = tmp_path / "d"
    created = cli("keys", "create", "--owner", "alice", "--name", "laptop", "--data-dir", data)
    assert created.exit_code == 0, created.output
    plain = created.stdout.strip()  # not a terminal: the bare key alone on stdout
    assert plain.startswith("ds_") and len(plain) > 40 and "\n" not in plain
    assert "alice" in created.stderr and "only this once" in created.stderr

    engine = make_engine(_url(data))
    try:
        with session_scope(engine, read_only=True) as session:
            record = authenticate(session=session, plain_key=plain)
        assert record is not None and (record.owner, record.name, record.is_admin) == ("alice", "laptop", False)

        admin = cli("keys", "create", "--owner", "root", "--admin", "--data-dir", data)
        assert admin.exit_code == 0
        with session_scope(engine, read_only=True) as session:
            assert authenticate(session=session, plain_key=admin.stdout.strip()).is_admin

        listed = cli("keys", "list", "--data-dir", data)
        assert listed.exit_code == 0
        assert "alice" in listed.stdout and "root" in listed.stdout and plain[:8] in listed.stdout
        assert plain not in listed.stdout  # never the key itself
        only_root = cli("keys", "list", "--owner", "root", "--data-dir", data)
        assert "root" in only_root.stdout and "alice" not in only_root.stdout

        revoked = cli("keys", "revoke", str(record.id), "--data-dir", data)
        assert revoked.exit_code == 0 and f"#{record.id} revoked" in revoked.stdout
        with session_scope(engine, read_only=True) as session:
            assert authenticate(session=session, plain_key=plain) is None
            assert [k.owner for k in list_api_keys(session=session)] == ["root"]
        assert "alice" not in cli("keys", "list", "--data-dir", data).stdout
        assert "alice" in cli("keys", "list", "--all", "--data-dir", data).stdout

        again = cli("keys", "revoke", str(record.id), "--data-dir", data)
        assert again.exit_code == 1 and f"no active key with id {record.id}" in again.stderr
    finally:
        engine.dispose()


def test_keys_create_refuses_a_bad_owner_and_requires_one(cli, tmp_path: Path) -> None:
    bad = cli("keys", "create", "--owner", "", "--data-dir", tmp_path / "d")
    assert bad.exit_code == 2 and "owner must be a non-empty string" in bad.stderr
    missing = cli("keys", "create", "--data-dir", tmp_path / "d")
    assert missing.exit_code == 2 and "--owner" in missing.output


def test_keys_need_a_schema_when_migrations_are_off(cli, tmp_path: Path) -> None:
    result = cli("keys", "list", "--data-dir", tmp_path / "d", env={"DROPSEARCH_MIGRATE_ON_START": "false"})
    assert result.exit_code == 1 and "has no schema yet" in result.stderr and "db upgrade" in result.stderr
