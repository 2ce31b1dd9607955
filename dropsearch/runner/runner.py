"""The runner: takes queued searches from the store and runs them on Ray, a few at a time.

On every poll it first takes back searches that are ``running`` but whose runner is gone (an expired or released
lease, or one this runner gave back during a database outage), then claims queued ones, up to
``max_concurrent_searches``. Each search runs in a thread
(:class:`~dropsearch.runner.execution.SearchExecution`); the children themselves run in Ray worker processes.

Example::

    runner = Runner(get_settings())
    runner.start()      # background thread
    ...
    runner.stop()       # leases released; another runner (or this one restarted) resumes the searches
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner.execution import SearchExecution
from dropsearch.store import session_scope

log = logging.getLogger(__name__)

__all__ = ["MAX_RUNNER_ID_PREFIX", "Runner", "default_runner_id", "unique_runner_id"]

#: Longest ``--runner-id`` prefix (the stored lease owner holds at most 255 characters).
MAX_RUNNER_ID_PREFIX = 200


def default_runner_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in the store."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def unique_runner_id(prefix: str | None = None) -> str:
    """A runner id unique to this process: ``<prefix>-<pid>-<random>``, or :func:`default_runner_id` without one.

    A lease belongs to one process: two processes started with the same ``--runner-id`` get different ids, so
    they can never both believe they hold the same lease.

    Raises:
        ValueError: for a prefix longer than :data:`MAX_RUNNER_ID_PREFIX` or with control characters.
    """
    if not prefix:
        return default_runner_id()
    if len(prefix) > MAX_RUNNER_ID_PREFIX or any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        raise ValueError(f"runner id prefix must be printable and at most {MAX_RUNNER_ID_PREFIX} characters")
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Runner:
    """Claims and runs searches until stopped.

    Args:
        settings: database URL, Ray address, concurrency and lease timings.
        runner_id: a readable prefix of this runner's id; a per-process suffix is always added
            (:func:`unique_runner_id`), so a restarted runner takes its searches back once their leases expire.
            Default: ``<host>-<pid>-<random>``.
        ray_address: join this Ray cluster (overrides ``settings.ray_address``); ``None`` starts a local Ray.
        poll_s: seconds between polls of the queue.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runner_id: str | None = None,
        ray_address: str | None = None,
        poll_s: float = 1.0,
        include_dashboard: bool = False,
    ) -> None:
        self.settings = settings
        self.runner_id = unique_runner_id(runner_id)
        self.ray_address = ray_address or settings.ray_address
        self.poll_s = poll_s
        self.include_dashboard = include_dashboard
        self.engine = store.get_engine(settings.resolved_database_url)
        self._stopping = threading.Event()
        self._executions: dict[str, tuple[SearchExecution, threading.Thread]] = {}
        self._thread: threading.Thread | None = None
        self._ray_ready = False

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the poll loop in a background thread and return."""
        self._thread = threading.Thread(target=self._loop, name=f"runner-{self.runner_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, interrupt running searches (their leases are released) and wait for the threads."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for _, thread in list(self._executions.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        for search_id, (execution, thread) in list(self._executions.items()):
            if thread.is_alive():  # its trials are still winding down: give the search back for a later resume
                log.warning("search %s did not stop within %.0f s; releasing its lease", search_id, timeout)
                execution.release_lease()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def run_until_idle(self, timeout: float | None = None) -> None:
        """Poll in the foreground until nothing is queued, running or resumable (for tests and one-shot jobs).

        Raises:
            TimeoutError: naming the timeout when searches are still running after it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            if not self._executions and not self._has_work():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"searches still running after {timeout} s")
            time.sleep(self.poll_s)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll()
            except Exception:  # a database hiccup must not kill the runner; try again next poll
                log.exception("runner poll failed")
            self._stopping.wait(self.poll_s)

    # -- one poll ------------------------------------------------------------------------------------------
    def _ensure_ray(self) -> None:
        if not self._ray_ready:
            from dropsearch.workers.setup import ensure_ray

            ensure_ray(self.ray_address, num_cpus=self.settings.ray_num_cpus, dashboard=self.include_dashboard)
            self._ray_ready = True

    def _has_work(self) -> bool:
        with session_scope(self.engine, read_only=True) as session:
            queued = store.count_searches_by_status(session=session).get("queued", 0)
            resumable = store.find_resumable(session=session, runner_id=self.runner_id)
        return bool(queued or resumable)

    def poll(self) -> int:
        """Reap finished executions, resume orphaned searches, claim queued ones; returns how many started."""
        for search_id, (_execution, thread) in list(self._executions.items()):
            if not thread.is_alive():
                del self._executions[search_id]
        if self._stopping.is_set():
            return 0
        started = 0
        lease_s = self.settings.lease_timeout_s
        while len(self._executions) < self.settings.max_concurrent_searches:
            search = self._take_over_orphan(lease_s)
            if search is None:
                with session_scope(self.engine) as session:
                    search = store.claim_next_queued_search(session=session, runner_id=self.runner_id, lease_s=lease_s)
            if search is None:
                break
            self._run(search)
            started += 1
        return started

    def _take_over_orphan(self, lease_s: float) -> store.SearchRecord | None:
        with session_scope(self.engine, read_only=True) as session:
            candidates = store.find_resumable(session=session, runner_id=self.runner_id)
        for candidate in candidates:
            if candidate.id in self._executions:
                continue
            with session_scope(self.engine) as session:
                taken = store.acquire_lease(
                    session=session, search_id=candidate.id, runner_id=self.runner_id, lease_s=lease_s
                )
            if taken is not None:
                log.info("resuming search %s", taken.id)
                return taken
        return None

    def _run(self, search: store.SearchRecord) -> None:
        self._ensure_ray()
        execution = SearchExecution(self.engine, self.settings, search, self.runner_id, self._stopping)
        thread = threading.Thread(target=execution.run, name=f"search-{search.id}", daemon=True)
        self._executions[search.id] = (execution, thread)
        thread.start()
