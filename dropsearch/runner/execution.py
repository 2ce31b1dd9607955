"""One search, run by one runner: store every event as it happens, hold the lease, resume after a crash.

:class:`SearchExecution` wires :func:`dropsearch.runner.engine.run_search` to the store:

- trial started / epoch reported / trial finished -> ``trials`` rows and ``events`` rows, each in its own short
  transaction (SQLite holds one writer at a time: never nest them);
- controller updated -> a new ``controller_states`` version (the ``state_dict`` serialized with ``torch.save``);
- a heartbeat thread renews the lease every ``heartbeat_s``; a lost lease stops the execution without touching
  the search (the runner that took it over owns it now);
- every write is fenced by the lease (:class:`~dropsearch.store.Lease`, checked in the write's own transaction):
  once another runner took the search over, the write is refused, ``lease_lost`` is set and the trials stop;
- a transient database error (a dropped Postgres connection, an outage, a busy SQLite file) is retried with a
  backoff (0.2 s doubling, at most 2 s) for as long as the lease lasts; when the lease would expire first, the
  execution stops its trials and gives the search back, still ``running`` and resumable (this runner or another
  one takes it back once the database answers). A store error never marks a search ``failed``. The writes are
  idempotent (a finished trial keeps its first result, a re-reported epoch replaces itself), so a retry never
  counts a trial twice;
- on start it resumes: trials left ``running`` by a dead runner go back to ``queued``, the controller is loaded
  from its last stored state, and the completed trials after that state are fed to the controller without
  being trained again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner.resume import decode_state, encode_state, resume_state
from dropsearch.store import Engine, LeaseLostError, session_scope
from dropsearch.store.db import is_transient_error

log = logging.getLogger(__name__)

__all__ = ["SearchExecution", "StoreUnavailableError", "encode_state", "decode_state"]

_T = TypeVar("_T")
_FIRST_DELAY_S, _MAX_DELAY_S = 0.2, 2.0


class StoreUnavailableError(Exception):
    """The database stayed unreachable until this runner's lease would expire: the search is given back."""


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
        self.lease = store.Lease.of(search, runner_id)
        self.lease_lost = threading.Event()
        self.done = threading.Event()
        # until when (monotonic) the lease surely lasts: set at the claim, moved on by each successful renewal
        self._lease_valid_until = time.monotonic() + settings.lease_timeout_s
        self._cancel_checked = 0.0
        self._cancel_requested = False

    # -- store writes, one short transaction each -------------------------------------------------------------
    def _retrying(self, action: Callable[[], _T], what: str) -> _T:
        """Run ``action`` (one fenced transaction), again after a transient database error, while the lease lasts.

        Raises:
            LeaseLostError: the lease was taken over (``lease_lost`` is set; nothing was written).
            StoreUnavailableError: the database did not answer before the lease would expire (``lease_lost`` set).
        """
        delay, attempt = _FIRST_DELAY_S, 0
        while True:
            if self.lease_lost.is_set():
                raise LeaseLostError(f"{what}: runner {self.runner_id} no longer holds search {self.search.id}")
            try:
                return action()
            except LeaseLostError:
                log.warning("%s refused: the lease of search %s was taken over; stopping", what, self.search.id)
                self.lease_lost.set()
                raise
            except Exception as exc:
                if not is_transient_error(exc):
                    raise
                attempt += 1
                if time.monotonic() + delay >= self._lease_valid_until:
                    log.error(
                        "%s: the database stayed unreachable until the lease would expire; giving search %s back "
                        "(it stays running and resumable)",
                        what,
                        self.search.id,
                    )
                    self.lease_lost.set()
                    raise StoreUnavailableError(f"{what}: database unreachable ({type(exc).__name__})") from exc
                log.warning("%s failed (%s: %s); retry %d", what, type(exc).__name__, exc, attempt)
                time.sleep(delay)
                delay = min(_MAX_DELAY_S, delay * 2)

    def _write(self, action: Callable[[], None], what: str) -> None:
        """A callback's write: nothing is written once the lease is lost or the database was gone for all of it.

        ``lease_lost`` is then set, so ``should_cancel`` answers True and the engine stops the trials.
        """
        try:
            self._retrying(action, what)
        except (LeaseLostError, StoreUnavailableError):
            pass

    def _event(self, session: Any, kind: str, data: dict[str, Any]) -> None:
        store.append_event(session=session, search_id=self.search.id, kind=kind, data=data, lease=self.lease)

    def _on_trial_started(self, event: Any) -> None:
        self._write(lambda: self._store_trial_started(event), f"storing trial {event.index} started")

    def _store_trial_started(self, event: Any) -> None:
        with session_scope(self.engine) as session:
            store.trial_started(
                session=session,
                search_id=self.search.id,
                index=event.index,
                tokens=list(event.tokens),
                pattern=event.pattern,
                node=event.node,
                lease=self.lease,
                kind=event.kind,
                arm=event.arm,
                seed=event.seed,
            )
            data = {"index": event.index, "attempt": event.attempt, "node": event.node}
            data.update(variant=event.pattern["variant"], kind=event.kind)
            if event.kind == "validation":
                data.update(arm=event.arm, seed=event.seed)
            self._event(session, "trial_started", data)

    def _on_epoch(self, event: Any) -> None:
        metrics = {k: v for k, v in event.metrics.items() if k != "epoch"}
        epoch = int(event.metrics.get("epoch", 0))

        def write() -> None:
            with session_scope(self.engine) as session:
                store.trial_reported(
                    session=session,
                    search_id=self.search.id,
                    index=event.index,
                    epoch=epoch,
                    metrics=metrics,
                    lease=self.lease,
                )
                self._event(session, "trial_reported", {"index": event.index, "epoch": epoch, "metrics": metrics})

        self._write(write, f"storing epoch {epoch} of trial {event.index}")

    def _on_trial_finished(self, event: Any) -> None:
        if event.status == "cancelled" and self._interrupted():
            return  # runner shutdown, not a user cancel: leave it running; the next runner re-queues it
        self._write(lambda: self._store_trial_finished(event), f"storing trial {event.index} finished")

    def _store_trial_finished(self, event: Any) -> None:
        with session_scope(self.engine) as session:
            store.trial_finished(
                session=session,
                search_id=self.search.id,
                index=event.index,
                status=event.status,
                reward=event.reward,
                error=event.error,
                lease=self.lease,
            )
            data = {"index": event.index, "status": event.status, "reward": event.reward, "wall_s": event.wall_s}
            self._event(session, "trial_finished", data)

    def _on_controller_updated(self, event: Any) -> None:
        blob = encode_state(event.state)
        self._write(lambda: self._store_controller_state(event, blob), f"storing controller update {event.updates}")

    def _store_controller_state(self, event: Any, blob: bytes) -> None:
        with session_scope(self.engine) as session:
            version = store.save_controller_state(
                session=session,
                search_id=self.search.id,
                blob=blob,
                updates=event.updates,
                trials_seen=event.trials_seen,
                keep=5,
                lease=self.lease,
            )
            stats = {k: float(v) for k, v in event.stats.items()}
            data = {"version": version, "updates": event.updates, "trials_seen": event.trials_seen, "stats": stats}
            self._event(session, "controller_updated", data)

    def _on_validation_updated(self, event: Any) -> None:
        def write() -> None:
            with session_scope(self.engine) as session:
                store.set_validation_report(
                    session=session, search_id=self.search.id, report=event.report, final=event.final, lease=self.lease
                )
                self._event(session, "validation_updated", {"final": event.final, "validation": event.report})

        self._write(write, "storing the validation report")

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
            began = time.monotonic()
            try:
                with session_scope(self.engine) as session:
                    held = store.renew_lease(
                        session=session,
                        search_id=self.search.id,
                        runner_id=self.runner_id,
                        lease_s=self.settings.lease_timeout_s,
                        generation=self.lease.generation,
                    )
            except Exception as exc:  # the database is away: try again next beat while the lease lasts
                if time.monotonic() >= self._lease_valid_until:
                    log.error(
                        "search %s: the lease expired while the database was unreachable; giving the search back",
                        self.search.id,
                    )
                    self.lease_lost.set()
                    return
                log.warning(
                    "lease renewal of search %s failed (%s: %s); retrying", self.search.id, type(exc).__name__, exc
                )
                continue
            if not held:
                log.warning("search %s: lease lost, stopping", self.search.id)
                self.lease_lost.set()
                return
            self._lease_valid_until = began + self.settings.lease_timeout_s

    # -- resume and run -----------------------------------------------------------------------------------------
    def _load_resume(self) -> tuple[Any, list[Any]]:
        with session_scope(self.engine) as session:
            store.check_lease(session=session, lease=self.lease)
            store.requeue_stale_trials(session=session, older_than_s=0, search_id=self.search.id)
            saved = store.latest_controller_state(session=session, search_id=self.search.id)
            completed = store.completed_trials(session=session, search_id=self.search.id)
        return saved, completed

    def _resume_state(self) -> Any:
        saved, completed = self._retrying(self._load_resume, f"loading the resume state of search {self.search.id}")
        return resume_state(saved, completed)

    def run(self) -> None:
        """Run the search; marks it finished unless the runner stopped or lost the lease."""
        from dropsearch.runner.engine import run_search
        from dropsearch.runner.events import SearchCallbacks
        from dropsearch.search.spec import SearchSpec

        beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.search.id}", daemon=True)
        beat.start()
        status, error = "failed", None
        try:
            spec = SearchSpec.model_validate(self.search.spec)
            resume = self._resume_state()
            started = {"runner": self.runner_id, "resumed": bool(resume.trials_seen)}
            self._retrying(lambda: self._append("search_started", started), "storing search_started")
            callbacks = SearchCallbacks(
                on_trial_started=self._on_trial_started,
                on_epoch=self._on_epoch,
                on_trial_finished=self._on_trial_finished,
                on_controller_updated=self._on_controller_updated,
                on_validation_updated=self._on_validation_updated,
                should_cancel=self._should_cancel,
            )
            result = run_search(
                spec,
                callbacks=callbacks,
                resume=resume,
                allowed_roots=tuple(str(p) for p in self.settings.dataset_roots),
                storage_path=str(self.settings.tune_storage.resolve()),
                name=self.search.id,
                loggers=tuple(self.settings.tune_loggers),
            )
            status = result.status
        except (LeaseLostError, StoreUnavailableError) as exc:  # given back (or taken over): not a failure
            log.warning("search %s interrupted: %s", self.search.id, exc)
            self.lease_lost.set()
        except Exception as exc:  # the search fails; the runner goes on with the next one
            if is_transient_error(exc):  # a store error is never the search's fault: give it back, resumable
                log.warning("search %s: database error (%s); giving it back", self.search.id, type(exc).__name__)
                self.lease_lost.set()
            else:
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
        def mark() -> None:
            with session_scope(self.engine) as session:
                self._event(session, "search_finished", {"status": status, "error": error})
                marked = store.mark_search_finished(
                    session=session,
                    search_id=self.search.id,
                    status=status,
                    error=error,
                    runner_id=self.runner_id,
                    lease_generation=self.lease.generation,
                )
                if not marked:  # (the fence above held the row: only a concurrent API change can get here)
                    raise LeaseLostError(f"search {self.search.id} changed under runner {self.runner_id}")

        try:
            self._retrying(mark, f"marking search {self.search.id} {status}")
        except (LeaseLostError, StoreUnavailableError) as exc:  # left running: whoever holds it next finishes it
            log.warning("search %s not marked %s: %s", self.search.id, status, exc)

    def release_lease(self) -> None:
        """Give the search back now (the runner stops and this execution did not end in time)."""
        self._release()

    def _release(self) -> None:
        def release() -> None:
            with session_scope(self.engine) as session:
                store.release_lease(
                    session=session,
                    search_id=self.search.id,
                    runner_id=self.runner_id,
                    generation=self.lease.generation,
                )

        try:  # a lost lease is released already; an unreachable database lets the lease expire by itself
            delay = _FIRST_DELAY_S
            while True:
                try:
                    release()
                    return
                except Exception as exc:
                    if not is_transient_error(exc) or time.monotonic() + delay >= self._lease_valid_until:
                        raise
                    time.sleep(delay)
                    delay = min(_MAX_DELAY_S, delay * 2)
        except Exception as exc:
            log.warning("could not release the lease of search %s (%s); it expires by itself", self.search.id, exc)
