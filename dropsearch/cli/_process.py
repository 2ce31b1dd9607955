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
from typing import TYPE_CHECKING, Any

from dropsearch.cli._common import console, key_file, read_key_file, write_key_file

if TYPE_CHECKING:
    from dropsearch.config import Settings
    from dropsearch.runner.runner import Runner
    from dropsearch.store.db import Engine

__all__ = [
    "ApiServer",
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


def ensure_admin_key(settings: Settings, engine: Engine) -> tuple[str, str | None]:
    """The admin key of ``<data_dir>/admin.key``; made (and the file written, mode 0600) when missing or stale.

    Returns:
        ``(plain_key, why)``: ``why`` is ``None`` when the stored key was reused, else why a new one was made
        (the caller shows a new key once).
    """
    from dropsearch.store.api_keys import authenticate, create_api_key
    from dropsearch.store.db import session_scope

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
        plain, _ = create_api_key(session=session, owner="admin", name="dropsearch serve", is_admin=True)
    write_key_file(path, plain)
    return plain, why
