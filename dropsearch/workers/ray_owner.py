"""Start an embedded Ray from a thread that lives as long as the process.

``ray.init`` without an address starts Ray's head processes (GCS, raylet, ...) as children that share the fate of
their parent: on Linux they get ``PR_SET_PDEATHSIG``, and the kernel's "parent" is the *thread* that forked them.
Started from a thread that ends (a runner's poll thread at ``stop()``, a request thread, a test's helper thread),
the GCS is killed with that thread and every later Ray call in the process fails ("Failed to connect to GCS
within 60 seconds ... The program will terminate"). :func:`init_ray` runs every ``ray.init`` on one daemon thread
that never ends, so the head processes live exactly as long as the process (they still die with it).

``ray.init`` outside the main thread installs no signal handlers, so the process keeps its own SIGTERM handling
(``dropsearch serve`` shuts down gracefully on it).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

__all__ = ["init_ray", "owner_thread"]

_requests: queue.Queue[tuple[dict[str, Any], Future[None]]] = queue.Queue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _serve() -> None:
    import ray

    while True:
        kwargs, done = _requests.get()
        try:
            if not ray.is_initialized():
                ray.init(**kwargs)
        except BaseException as exc:  # handed to the caller, which re-raises it
            done.set_exception(exc)
        else:
            done.set_result(None)


def owner_thread() -> threading.Thread:
    """The process's Ray owner thread (started on first use)."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="dropsearch-ray-owner", daemon=True)
            _thread.start()
        return _thread


def init_ray(**kwargs: Any) -> None:
    """``ray.init(**kwargs)`` on the owner thread (a no-op when Ray is initialized); its errors are raised here."""
    owner_thread()
    done: Future[None] = Future()
    _requests.put((kwargs, done))
    done.result()
