"""Process plumbing of ``serve`` and ``runner``: logging, signals, the uvicorn thread, the runner, the admin key.

Signals: SIGINT (Ctrl+C) and SIGTERM both raise :class:`KeyboardInterrupt` in the main thread while the service
runs (:func:`interrupt_on_signals`); during the shutdown that follows, further signals only print a note
(:func:`patient_signals`), so the runner always gets to release its leases.
"""

from __future__ import annotations

import inspect
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropsearch.cli._common import (
    EXIT_USAGE,
    KEY_FILE_NAME,
    console,
    fail,
    key_file,
    read_key_file,
    write_key_file,
)

if TYPE_CHECKING:
    from dropsearch.config import Settings
    from dropsearch.runner.runner import Runner
    from dropsearch.store.db import Engine

__all__ = [
    "GENERATED_KEY_NAME",
    "OPERATOR_KEY_NAME",
    "ApiServer",
    "adopt_operator_key",
    "configure_logging",
    "ensure_admin_key",
    "interrupt_on_signals",
    "make_runner",
    "patient_signals",
    "shutdown_ray",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure_logging(level: str) -> None:
    """Log to the CLI's Rich console (so log lines print above a live view) at ``level``; quiet HTTP clients."""
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level.upper(), format="%(name)s: %(message)s", handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore"):  # the live view polls the API: one INFO line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _handlers(handler: Any) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _disarm_abort_alarm() -> None:
    # Once a Ray driver is connected, Ray's C++ failure-signal handler (absl) sees SIGTERM first: it prints a stack,
    # calls our handler, and arms a 3 s SIGALRM that aborts the process (no lease release, no Ray cleanup, exit
    # -6). A graceful stop takes longer than that, so cancel the alarm.
    if hasattr(signal, "alarm"):
        signal.alarm(0)


def _interrupt(signum: int, frame: Any) -> None:
    _disarm_abort_alarm()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _note(signum: int, frame: Any) -> None:
    _disarm_abort_alarm()
    console.print(f"[yellow]{signal.Signals(signum).name}: still stopping (waiting for the runner)...[/]")


def interrupt_on_signals() -> Any:
    """Context manager: SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread."""
    return _handlers(_interrupt)


def patient_signals() -> Any:
    """Context manager: SIGINT and SIGTERM are noted and otherwise ignored (for the shutdown)."""
    return _handlers(_note)


class ApiServer:
    """uvicorn serving an app from a background thread (so the main thread keeps the signals and the demo view).

    Args:
        app: the ASGI app.
        host: bind address.
        port: bind port.
        log_level: uvicorn's log level (its loggers propagate to the CLI's handler).
    """

    def __init__(self, app: Any, host: str, port: int, log_level: str) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start serving and wait until the socket listens.

        Raises:
            RuntimeError: when uvicorn exits during startup (e.g. the port is taken) or is not up in ``timeout``.
        """
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            config = self.server.config
            if not self.thread.is_alive():
                raise RuntimeError(f"the API could not start on {config.host}:{config.port} (is the port in use?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start on {config.host}:{config.port} within {timeout:g} s")
            time.sleep(0.05)

    @property
    def alive(self) -> bool:
        """Whether the server thread still runs."""
        return self.thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask uvicorn to exit (open streams get a short grace period) and wait for its thread."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


def shutdown_ray() -> None:
    """Shut down this process's Ray connection (and the local Ray it started), if Ray was ever imported."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        started = time.monotonic()
        ray.shutdown()
        logging.getLogger(__name__).info("Ray shut down in %.1f s", time.monotonic() - started)


def make_runner(
    settings: Settings, *, runner_id: str | None = None, ray_address: str | None = None, dashboard: bool = False
) -> Runner:
    """A :class:`~dropsearch.runner.runner.Runner` (imported here: it pulls in the store, and Ray on first use)."""
    from dropsearch.runner.runner import Runner

    kwargs: dict[str, Any] = {"runner_id": runner_id, "ray_address": ray_address}
    if "include_dashboard" in inspect.signature(Runner).parameters:  # the embedded Ray's dashboard, when offered
        kwargs["include_dashboard"] = dashboard
    return Runner(settings, **kwargs)


GENERATED_KEY_NAME = "dropsearch serve"  # the label of the admin keys ``serve`` makes
OPERATOR_KEY_NAME = "admin_key_file"  # the label of the admin key read from the operator's file


def ensure_admin_key(settings: Settings, engine: Engine) -> tuple[str, str | None]:
    """The admin key: the operator's (``admin_key_file``), or ``<data_dir>/admin.key``, made when missing or stale.

    Without ``admin_key_file`` a new key is made (and the file written, mode 0600) when the file is missing or its
    key is not valid for this database. With it, see :func:`adopt_operator_key`.

    Returns:
        ``(plain_key, why)``: ``why`` is ``None`` when an existing key is used (the stored one, or the operator's),
        else why a new one was made (the caller reveals a new key only on a terminal).
    """
    from dropsearch.store.api_keys import authenticate, create_api_key
    from dropsearch.store.db import session_scope

    if settings.admin_key_file is not None:
        return adopt_operator_key(settings, engine), None
    path = key_file(settings)
    stored = read_key_file(path)
    if stored is not None:
        with session_scope(engine, read_only=True) as session:
            if authenticate(session=session, plain_key=stored) is not None:
                return stored, None
        why = f"the key in {path} is not valid for this database (revoked, or another database): replaced"
    else:
        why = "first start"
    with session_scope(engine) as session:
        plain, _ = create_api_key(session=session, owner="admin", name=GENERATED_KEY_NAME, is_admin=True)
    write_key_file(path, plain)
    return plain, why


def adopt_operator_key(settings: Settings, engine: Engine) -> str:
    """Make the key in ``settings.admin_key_file`` the admin key; exit with a message naming the setting if it is bad.

    The key is stored hashed under the label ``admin_key_file``; the same file again adds no row, a changed file
    revokes the previous operator key. The admin keys ``serve`` made before (their plain keys may be in old logs)
    are revoked, and a ``<data_dir>/admin.key`` holding one of them is removed.
    """
    from dropsearch.store.api_keys import adopt_api_key, authenticate, list_api_keys, revoke_api_key
    from dropsearch.store.db import session_scope

    path = Path(settings.admin_key_file)
    where = f"admin_key_file (DROPSEARCH_ADMIN_KEY_FILE={path})"
    try:
        plain = read_key_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{where}: cannot read the key: {type(exc).__name__}: {exc.strerror or exc}", EXIT_USAGE)
    if plain is None:
        fail(f"{where}: the file is missing or empty", EXIT_USAGE)
    log = logging.getLogger(__name__)
    try:
        with session_scope(engine) as session:
            record, revoked = adopt_api_key(
                session=session, plain_key=plain, owner="admin", name=OPERATOR_KEY_NAME, is_admin=True
            )
            for generated in list_api_keys(session=session, owner="admin"):
                if generated.name == GENERATED_KEY_NAME and revoke_api_key(session=session, key_id=generated.id):
                    revoked.append(generated.id)
    except ValueError as exc:
        fail(f"{where}: {exc}", EXIT_USAGE)
    log.info("admin key from admin_key_file: key id %d (prefix %s)", record.id, record.prefix)
    if revoked:
        log.info("revoked the admin keys made before the operator's key: ids %s", revoked)
    old_file = Path(settings.data_dir) / KEY_FILE_NAME
    stale = read_key_file(old_file) if old_file.is_file() else None
    if stale is not None and stale != plain:
        with session_scope(engine, read_only=True) as session:
            if authenticate(session=session, plain_key=stale) is None:
                old_file.unlink(missing_ok=True)
                log.info("removed %s: its key is revoked", old_file)
    return plain
