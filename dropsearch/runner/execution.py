"""One search, run by one runner: store every event as it happens, hold the lease, resume after a crash.

:class:`SearchExecution` wires :func:`dropsearch.workers.run_search` to the store:

- trial started / epoch reported / trial finished -> ``trials`` rows and ``events`` rows, each in its own short
  transaction (SQLite holds one writer at a time: never nest them);
- controller updated -> a new ``controller_states`` version (the ``state_dict`` serialized with ``torch.save``);
- a heartbeat thread renews the lease every ``heartbeat_s``; a lost lease stops the execution without touching
  the search (the runner that took it over owns it now);
- every store access is retried a bounded number of times on a transient database error (a dropped Postgres
  connection, a busy SQLite file): the writes are idempotent (a finished trial keeps its first result, a
  re-reported epoch replaces itself), so a retry never counts a trial twice;
- on start it resumes: trials left ``running`` by a dead runner go back to ``queued``, the controller is loaded
  from its last stored state, and the completed trials after that state are fed to the controller without
  being trained again.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.store import Engine, session_scope
from dropsearch.store.db import is_transient_error

log = logging.getLogger(__name__)

__all__ = ["STORE_ATTEMPTS", "SearchExecution", "encode_state", "decode_state"]

#: Tries of one store transaction on transient errors (backoff 0.2 s doubling, at most 2 s: about 10 s in all).
STORE_ATTEMPTS = 8
_T = TypeVar("_T")


def _retrying(action: Callable[[], _T], what: str) -> _T:
    """Run ``action`` (one whole transaction), again after a transient database error, up to STORE_ATTEMPTS."""
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == STORE_ATTEMPTS or not is_transient_error(exc):
                raise
            log.warning("%s failed (%s: %s); retry %d of %d", what, type(exc).__name__, exc, attempt, STORE_ATTEMPTS)
            time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialize a controller ``state_dict`` (tensors, optimizer state, RNG state) to bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def decode_state(blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_state`, for tensors and plain containers only.

    The blob comes from the database, so it is loaded with ``weights_only=True``: torch's restricted unpickler
    refuses any other class or callable (a crafted blob cannot run code).

    Raises:
        pickle.UnpicklingError: for a blob holding anything but tensors, numbers, strings and containers.
    """
    import torch

    return torch.load(io.BytesIO(blob), weights_only=True)


class SearchExecution:
    """Runs one claimed search to its end (or until the runner stops or loses the lease).

    Args:
        engine: the store's engine.
        settings: runner settings (lease timings, dataset roots, Ray address).
        search: the claimed search (this runner holds its lease).
        runner_id: this runner's id.
        stopping: set when the runner shuts down; the search is left ``running`` for a later resume.
    """

    def __init__(
        self, engine: Engine, settings: Settings, search: store.SearchRecord, runner_id: str, stopping: threading.Event
    ) -> None:
        self.engine, self.settings, self.search, self.runner_id = engine, settings, search, runner_id
        self.stopping = stopping
        self.lease_lost = threading.Event()
        self.done = threading.Event()
        self._cancel_checked = 0.0
        self._cancel_requested = False

    # -- store writes, one short transaction each -------------------------------------------------------------
    def _event(self, session: Any, kind: str, data: dict[str, Any]) -> None:
        store.append_event(session=session, search_id=self.search.id, kind=kind, data=data)

    def _on_trial_started(self, event: Any) -> None:
        _retrying(lambda: self._store_trial_started(event), f"storing trial {event.index} started")

    def _store_trial_started(self, event: Any) -> None:
        with session_scope(self.engine) as session:
            store.trial_started(
                session=session,
                search_id=self.search.id,
                index=event.index,
                tokens=list(event.tokens),
                pattern=event.pattern,
                node=event.node,
            )
            self._event(
                session,
                "trial_started",
                {
                    "index": event.index,
                    "attempt": event.attempt,
                    "node": event.node,
                    "variant": event.pattern["variant"],
                },
            )

    def _on_epoch(self, event: Any) -> None:
        metrics = {k: v for k, v in event.metrics.items() if k != "epoch"}
        epoch = int(event.metrics.get("epoch", 0))

        def write() -> None:
            with session_scope(self.engine) as session:
                store.trial_reported(
                    session=session, search_id=self.search.id, index=event.index, epoch=epoch, metrics=metrics
                )
                self._event(session, "trial_reported", {"index": event.index, "epoch": epoch, "metrics": metrics})

        _retrying(write, f"storing epoch {epoch} of trial {event.index}")

    def _on_trial_finished(self, event: Any) -> None:
        if event.status == "cancelled" and self._interrupted():
            return  # runner shutdown, not a user cancel: leave it running; the next runner re-queues it
        _retrying(lambda: self._store_trial_finished(event), f"storing trial {event.index} finished")

    def _store_trial_finished(self, event: Any) -> None:
        with session_scope(self.engine) as session:
            store.trial_finished(
                session=session,
                search_id=self.search.id,
                index=event.index,
                status=event.status,
                reward=event.reward,
                error=event.error,
            )
            data = {"index": event.index, "status": event.status, "reward": event.reward, "wall_s": event.wall_s}
            self._event(session, "trial_finished", data)

    def _on_controller_updated(self, event: Any) -> None:
        blob = encode_state(event.state)
        _retrying(lambda: self._store_controller_state(event, blob), f"storing controller update {event.updates}")

    def _store_controller_state(self, event: Any, blob: bytes) -> None:
        with session_scope(self.engine) as session:
            version = store.save_controller_state(
                session=session,
                search_id=self.search.id,
                blob=blob,
                updates=event.updates,
                trials_seen=event.trials_seen,
                keep=5,
            )
            stats = {k: float(v) for k, v in event.stats.items()}
            data = {"version": version, "updates": event.updates, "trials_seen": event.trials_seen, "stats": stats}
            self._event(session, "controller_updated", data)

    # -- cancel, stop, lease ----------------------------------------------------------------------------------
    def _interrupted(self) -> bool:
        return self.stopping.is_set() or self.lease_lost.is_set()

    def _should_cancel(self) -> bool:
        if self._interrupted():
            return True
        now = time.monotonic()
        if now - self._cancel_checked > 1.0:
            self._cancel_checked = now
            try:
                with session_scope(self.engine, read_only=True) as session:
                    record = store.load_search(session=session, search_id=self.search.id)
            except Exception as exc:  # the database is away for a moment: keep the last answer, ask next time
                if not is_transient_error(exc):
                    raise
                log.warning("cancel check of search %s failed; retrying later", self.search.id)
                return self._cancel_requested
            self._cancel_requested = bool(record and record.cancel_requested)
        return self._cancel_requested

    def _heartbeat(self) -> None:
        while not self.done.wait(self.settings.heartbeat_s):
            try:
                with session_scope(self.engine) as session:
                    held = store.renew_lease(
                        session=session,
                        search_id=self.search.id,
                        runner_id=self.runner_id,
                        lease_s=self.settings.lease_timeout_s,
                    )
            except Exception:  # a dropped database connection: try again next beat, the lease lasts longer
                log.warning("lease renewal of search %s failed; retrying", self.search.id, exc_info=True)
                continue
            if not held:
                log.warning("search %s: lease lost, stopping", self.search.id)
                self.lease_lost.set()
                return

    # -- resume and run -----------------------------------------------------------------------------------------
    def _load_resume(self) -> tuple[Any, list[Any]]:
        with session_scope(self.engine) as session:
            store.requeue_stale_trials(session=session, older_than_s=0, search_id=self.search.id)
            saved = store.latest_controller_state(session=session, search_id=self.search.id)
            completed = store.completed_trials(session=session, search_id=self.search.id)
        return saved, completed

    def _resume_state(self) -> Any:
        from dropsearch.workers.events import CompletedTrial, ResumeState

        saved, completed = _retrying(self._load_resume, f"loading the resume state of search {self.search.id}")
        resume = ResumeState()
        if saved is not None:
            resume.controller_state = decode_state(saved.blob)
            resume.trials_seen = saved.trials_seen
        for trial in completed:
            if trial.index >= resume.trials_seen:
                resume.completed[trial.index] = CompletedTrial(
                    trial.index, tuple(trial.tokens), trial.reward, trial.status
                )
        return resume

    def run(self) -> None:
        """Run the search; marks it finished unless the runner stopped or lost the lease."""
        from dropsearch.search.spec import SearchSpec
        from dropsearch.workers.events import SearchCallbacks
        from dropsearch.runner.engine import run_search

        beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.search.id}", daemon=True)
        beat.start()
        status, error = "failed", None
        try:
            spec = SearchSpec.model_validate(self.search.spec)
            resume = self._resume_state()
            started = {"runner": self.runner_id, "resumed": bool(resume.trials_seen)}
            _retrying(lambda: self._append("search_started", started), "storing search_started")
            callbacks = SearchCallbacks(
                on_trial_started=self._on_trial_started,
                on_epoch=self._on_epoch,
                on_trial_finished=self._on_trial_finished,
                on_controller_updated=self._on_controller_updated,
                should_cancel=self._should_cancel,
            )
            result = run_search(
                spec,
                callbacks=callbacks,
                resume=resume,
                allowed_roots=tuple(str(p) for p in self.settings.dataset_roots),
            )
            status = result.status
        except Exception as exc:  # the search fails; the runner goes on with the next one
            log.exception("search %s failed", self.search.id)
            error = f"{type(exc).__name__}: {exc}"[:4000]
        finally:
            self.done.set()
        if self._interrupted():
            self._release()
            return
        self._finish(status, error)

    def _append(self, kind: str, data: dict[str, Any]) -> None:
        with session_scope(self.engine) as session:
            self._event(session, kind, data)

    def _finish(self, status: str, error: str | None) -> None:
        _retrying(lambda: self._append("search_finished", {"status": status, "error": error}), "search_finished")

        def mark() -> None:
            with session_scope(self.engine) as session:
                store.mark_search_finished(
                    session=session, search_id=self.search.id, status=status, error=error, runner_id=self.runner_id
                )
                store.release_lease(session=session, search_id=self.search.id, runner_id=self.runner_id)

        _retrying(mark, f"marking search {self.search.id} {status}")

    def _release(self) -> None:
        def release() -> None:
            with session_scope(self.engine) as session:
                store.release_lease(session=session, search_id=self.search.id, runner_id=self.runner_id)

        _retrying(release, f"releasing the lease of search {self.search.id}")
