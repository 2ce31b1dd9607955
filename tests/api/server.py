"""Real HTTP for the end-to-end tests: the package's threaded uvicorn server under the names the tests use, and a
wait for a ``dropsearch serve`` subprocess to answer ``/healthz``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from dropsearch.api.threaded_server import free_port, serve_in_thread

serve = serve_in_thread

__all__ = ["free_port", "serve", "wait_healthy"]


def wait_healthy(
    url: str, proc: subprocess.Popen[Any], timeout: float, *, poll_s: float = 0.3, log: Path | None = None
) -> None:
    """Poll ``{url}/healthz`` until it answers 200.

    Raises:
        AssertionError: when ``proc`` exits first or after ``timeout`` seconds (with the tail of ``log``, if given).
    """

    def tail() -> str:
        return "" if log is None else ":\n" + log.read_text()[-4000:]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited early" + tail()
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    raise AssertionError(f"{url}/healthz did not answer in {timeout} s" + tail())
