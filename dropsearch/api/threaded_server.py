"""Serve an app with uvicorn in a background thread of this process (notebooks, benchmarks, end-to-end tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["free_port", "serve_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None, start_timeout_s: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` (an ASGI app, e.g. :func:`dropsearch.api.create_app`'s) until the block ends.

    Runs the app's lifespan (startup and shutdown), waits until uvicorn accepts connections, and asks it to exit on
    leaving the block.

    Args:
        app: the ASGI application.
        host: the address to bind. Default: ``"127.0.0.1"``.
        port: the port; ``None`` picks a free one.
        start_timeout_s: how long to wait for uvicorn to start before raising ``RuntimeError``. Default: 30.

    Yields:
        The base URL, e.g. ``"http://127.0.0.1:54321"``.
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port or free_port(host), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{config.port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
