"""A search, findable in the Ray dashboard: one named actor per running search, whose log is the search's log.

While a search runs, the engine keeps an actor named :func:`actor_name` (``dropsearch-search-<search id>``, in the
Ray namespace :data:`NAMESPACE`) that takes no CPU. In the dashboard's Actors page, filter by that name (or
by the class ``SearchLog``); the actor's log shows one line per trial event (started on which node, each reported
epoch's objective, finished with which status and reward; epoch lines arrive in batches about once a second) and
the path of the search's Ray Tune experiment. The trials' own worker processes appear on the same page as Tune's
``ImplicitFunc`` actors. From Python::

    ray.get_actor(actor_name(search_id), namespace=NAMESPACE)

The actor ends with the search (it is not detached: it also ends when the runner's Ray driver exits).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dropsearch.runner.events import ControllerUpdated, EpochReported, TrialFinished, TrialStarted

log = logging.getLogger(__name__)

__all__ = ["NAMESPACE", "SearchLog", "actor_name", "start_search_log"]

#: The Ray namespace of the search actors.
NAMESPACE = "dropsearch"


def actor_name(search_name: str) -> str:
    """The Ray actor name of a search: ``dropsearch-search-<search id or experiment name>``."""
    return f"dropsearch-search-{search_name}"


class SearchLog:
    """The actor: prints what it is told (its stdout is the search's log in the Ray dashboard)."""

    def __init__(self, search_name: str, experiment_path: str, objective: str) -> None:
        self.search_name, self.experiment_path, self.objective = search_name, experiment_path, objective
        print(f"search {search_name}: Ray Tune experiment in {experiment_path}", flush=True)

    def __repr__(self) -> str:
        return f"SearchLog({self.search_name})"

    def lines(self, texts: list[str]) -> None:
        """Print log lines (one call per batch of them)."""
        print("\n".join(texts), flush=True)

    def info(self) -> dict[str, str]:
        """What this actor stands for."""
        return {"search": self.search_name, "experiment_path": self.experiment_path, "objective": self.objective}


def describe(event: Any, objective: str) -> str | None:
    """One log line for an engine event (``None`` for events not logged)."""
    if isinstance(event, TrialStarted):
        return f"trial {event.index} attempt {event.attempt} started on {event.node or '?'}: {event.pattern['variant']}"
    if isinstance(event, EpochReported):
        return f"trial {event.index} epoch {event.metrics.get('epoch')}: {objective}={event.metrics.get(objective)}"
    if isinstance(event, TrialFinished):
        tail = f" ({event.error})" if event.error else ""
        return f"trial {event.index} {event.status}: {objective}={event.reward}{tail}"
    if isinstance(event, ControllerUpdated):
        return f"controller update {event.updates} after {event.trials_seen} trials"
    return None


#: Epoch lines wait in the driver at most this long and go to the actor together (one call instead of one per
#: epoch: with epochs of 40 ms a call per line cost the actor ~5 ms of CPU each, 6 s in a 80 s search on 2 cores).
FLUSH_EVERY_S = 1.0


class _Handle:
    """The driver's side: sends lines without waiting; never lets the dashboard actor fail a search.

    Epoch lines are held for at most :data:`FLUSH_EVERY_S` (a timer sends what is held) and go in one call; any
    other line (a trial started or finished, a controller update) is sent at once, after the lines held before it.
    """

    def __init__(self, actor: Any, objective: str) -> None:
        self.actor, self.objective = actor, objective
        self.pending: list[str] = []
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def send(self, event: Any) -> None:
        text = describe(event, self.objective)
        if text is None or self.actor is None:
            return
        with self.lock:
            self.pending.append(text)
            if not isinstance(event, EpochReported):
                self._flush()
            elif self.timer is None:
                self.timer = threading.Timer(FLUSH_EVERY_S, self._flush_held)
                self.timer.daemon = True
                self.timer.start()

    def _flush_held(self) -> None:
        with self.lock:
            self.timer = None
            self._flush()

    def _flush(self) -> Any:
        texts, self.pending = self.pending, []
        if not texts:
            return None
        try:
            return self.actor.lines.remote(texts)
        except Exception:  # the log is a convenience; the store has the search
            log.debug("search log lines not sent", exc_info=True)
            return None

    def close(self) -> None:
        import ray

        if self.actor is None:
            return
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            last = self._flush()
        try:
            if last is not None:  # the last lines are printed before the actor ends
                ray.get(last, timeout=5)
        except Exception:
            log.debug("last search log lines not printed", exc_info=True)
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:
            log.debug("search log actor already gone", exc_info=True)


def start_search_log(search_name: str, experiment_path: str, objective: str) -> _Handle:
    """Start the search's named actor (replacing a leftover one of the same name, e.g. after a restart)."""
    import ray

    name = actor_name(search_name)
    try:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    except ValueError:
        pass  # none left over
    try:
        actor = (
            ray.remote(SearchLog)
            .options(name=name, namespace=NAMESPACE, num_cpus=0, max_restarts=0)
            .remote(search_name, experiment_path, objective)
        )
    except Exception:  # e.g. the name is still being released: go on without the log
        log.warning("could not start the Ray dashboard log actor %s", name, exc_info=True)
        actor = None
    return _Handle(actor, objective)
