"""``dropsearch serve`` keeps secrets out of its output: the real process, its stdout and stderr piped (not a TTY).

A container platform keeps whatever ``serve`` prints as logs, so a new admin key is revealed only on an interactive
terminal; elsewhere only the key file's place is shown. An operator's key (``DROPSEARCH_ADMIN_KEY_FILE``, e.g. a
Kubernetes Secret) is adopted, hashed, without printing anything and without a second row on restart.
"""

from __future__ import annotations

import os
import pty
import secrets
import select
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from dropsearch.cli._process import OPERATOR_KEY_NAME, ensure_admin_key
from dropsearch.config import Settings, postgres_url
from dropsearch.store.api_keys import authenticate, list_api_keys
from dropsearch.store.db import make_engine, session_scope
from dropsearch.store.migrate import upgrade
from tests.api.server import free_port, wait_healthy
from tests.cli._helpers import CLI, cli_env
from tests.store.conftest import POSTGRES_URL


@pytest.fixture
def postgres_with_password() -> Iterator[tuple[str, str]]:
    """A scratch database owned by a new role with a password; yields ``(url with the password, password)``."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"ds_secret_{uuid.uuid4().hex[:12]}"
    password = f"pw@{secrets.token_hex(12)}/x"  # '@' and '/' are percent-encoded in the URL
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" OWNER {name}')
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"Postgres at {POSTGRES_URL} is unreachable: {exc}")
    try:
        yield postgres_url(host="127.0.0.1", port=5432, database=name, user=name, password=password), password
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
        admin.dispose()


def _serve_piped(env: dict[str, str], *args: str) -> tuple[str, str, str]:
    """Run ``dropsearch serve`` with stdout and stderr on pipes until healthy, use the API, stop it with SIGINT.

    Returns:
        ``(stdout, stderr, base_url)``.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_healthy(url, proc, timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out, err, url


def _assert_key_works(env: dict[str, str], key: str) -> None:
    """The key is an active admin key of the database serve used (checked after serve stopped)."""
    settings = Settings(data_dir=env["DROPSEARCH_DATA_DIR"], database_url=env.get("DROPSEARCH_DATABASE_URL"))
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as session:
            record = authenticate(session=session, plain_key=key)
    finally:
        engine.dispose()
    assert record is not None and record.is_admin


@pytest.mark.parametrize(
    ("database", "runner"),
    [
        ("sqlite", False),
        pytest.param("postgres", False, marks=pytest.mark.postgres),
        pytest.param("postgres", True, marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
)
def test_serve_prints_no_admin_key_or_database_password_when_stdout_is_not_a_terminal(
    tmp_path: Path, request: pytest.FixtureRequest, database: str, runner: bool
) -> None:
    data = tmp_path / "data"
    env = cli_env(1, DROPSEARCH_DATA_DIR=str(data))
    password = None
    if database == "postgres":
        url, password = request.getfixturevalue("postgres_with_password")
        env["DROPSEARCH_DATABASE_URL"] = url
    args = ["--no-dashboard"] if runner else ["--no-runner"]
    out, err, _ = _serve_piped(env, *args)

    key_path = data / "admin.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = key_path.read_text().strip()
    _assert_key_works(env, key)
    output = out + err
    assert key not in output and key[12:] not in output  # neither the key nor its secret part
    if password is not None:
        assert password not in output and quote(password, safe="") not in output
    assert str(key_path.resolve()) in output.replace("\n", "")  # where it is, not what it is
    assert "SIGINT: stopping" in output


def test_serve_shows_a_new_admin_key_only_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--no-runner"],
        env=cli_env(1, DROPSEARCH_DATA_DIR=str(data)),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: serve exited
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
        os.close(primary)
    key = (data / "admin.key").read_text().strip()
    assert key in b"".join(chunks).decode("utf-8", "replace")  # shown once, on the terminal


def _key_rows(engine) -> list:
    with session_scope(engine, read_only=True) as session:
        return list_api_keys(session=session, owner="admin", include_revoked=True)


def test_admin_key_file_is_adopted_hashed_once_and_a_changed_file_revokes_the_previous_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret_file = tmp_path / "secret" / "admin-key"
    secret_file.parent.mkdir()
    first = "op_" + secrets.token_urlsafe(32)
    secret_file.write_text(first + "\n")
    url = f"sqlite:///{(tmp_path / 'keys.db').resolve()}"
    upgrade(url)
    engine = make_engine(url)
    try:
        # A key serve made before (e.g. one printed by an older version) is revoked once the operator's key is used.
        generated, why = ensure_admin_key(Settings(data_dir=data, database_url=url), engine)
        assert why == "first start" and (data / "admin.key").exists()
        settings = Settings(data_dir=data, database_url=url, admin_key_file=secret_file)
        assert ensure_admin_key(settings, engine) == (first, None)
        assert ensure_admin_key(settings, engine) == (first, None)  # a restart with the same file: no second row
        rows = _key_rows(engine)
        operator = [r for r in rows if r.name == OPERATOR_KEY_NAME]
        assert len(operator) == 1 and operator[0].revoked_at is None and operator[0].is_admin
        assert [r.revoked_at is not None for r in rows if r.name != OPERATOR_KEY_NAME] == [True]
        assert not (data / "admin.key").exists()  # the file of the revoked generated key is gone
        with engine.connect() as connection:
            stored = [tuple(map(str, row)) for row in connection.execute(text("SELECT * FROM api_keys"))]
        assert not any(first in value or first[12:] in value for row in stored for value in row)  # hashed only
        with session_scope(engine, read_only=True) as session:
            assert authenticate(session=session, plain_key=generated) is None
            assert authenticate(session=session, plain_key=first).id == operator[0].id

        second = "op_" + secrets.token_urlsafe(32)
        secret_file.write_text(second)  # the Secret was rotated
        assert ensure_admin_key(settings, engine) == (second, None)
        operator = [r for r in _key_rows(engine) if r.name == OPERATOR_KEY_NAME]
        assert len(operator) == 2 and [r.revoked_at is None for r in operator] == [False, True]
        with session_scope(engine, read_only=True) as session:
            assert authenticate(session=session, plain_key=first) is None
            assert authenticate(session=session, plain_key=second) is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "missing or empty"),
        ("", "missing or empty"),
        ("short", "32 to 1024 characters"),
        ("has spaces " * 4, "may hold only"),
    ],
)
def test_a_bad_admin_key_file_is_refused_naming_the_setting(tmp_path: Path, content: str | None, message: str) -> None:
    secret_file = tmp_path / "admin-key"
    if content is not None:
        secret_file.write_text(content)
    env = cli_env(1, DROPSEARCH_DATA_DIR=str(tmp_path / "data"), DROPSEARCH_ADMIN_KEY_FILE=str(secret_file))
    proc = subprocess.run(
        [*CLI, "serve", "--port", str(free_port()), "--no-runner"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "DROPSEARCH_ADMIN_KEY_FILE" in proc.stderr and message in proc.stderr.replace("\n", " ")


def test_serve_with_an_admin_key_file_prints_nothing_about_the_key_and_writes_no_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret_file = tmp_path / "admin-key"
    key = "op_" + secrets.token_urlsafe(32)
    secret_file.write_text(key + "\n")
    env = cli_env(1, DROPSEARCH_DATA_DIR=str(data), DROPSEARCH_ADMIN_KEY_FILE=str(secret_file))
    for _ in range(2):  # a restart with the same Secret
        out, err, _url = _serve_piped(env, "--no-runner")
        assert key not in out + err and key[12:] not in out + err
        assert "admin API key" not in out + err  # no key panel at all
    assert not (data / "admin.key").exists()
    _assert_key_works(env, key)
    engine = make_engine(f"sqlite:///{(data / 'dropsearch.db').resolve()}")
    try:
        assert [r.name for r in _key_rows(engine)] == [OPERATOR_KEY_NAME]
    finally:
        engine.dispose()
