"""Shared pieces of the reliability tests: a tiny search spec, store snapshots, process helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropsearch import store
from dropsearch.search.spec import SearchSpec
from dropsearch.store import session_scope
from dropsearch.store.db import is_transient_error

#: 2 epochs of an 8/16-wide convnet on digits: about a second per trial on one core.
TINY = {
    "name": "reliability-tiny",
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock"], "rates": [0.0, 0.2, 0.5]},
    "controller": {"name": "reinforce", "batch_size": 2},
    "budget": {"trials": 8, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
    "validation": {"enabled": False},  # this test counts the search trials only
}


def spec(trials: int = 8, epochs: int = 2, **budget: Any) -> dict[str, Any]:
    """TINY with another trial count, epoch count or budget fields."""
    return {**TINY, "budget": {**TINY["budget"], "trials": trials, "epochs_per_trial": epochs, **budget}}


def submit(url: str, document: dict[str, Any], owner: str = "alice") -> str:
    """Store a queued search straight through the store (as the API would); returns its id."""
    validated = SearchSpec.model_validate(document)
    engine = store.get_engine(url)
    with session_scope(engine) as session:
        record = store.create_search(
            session=session,
            owner=owner,
            name=validated.name,
            spec=validated.model_dump(mode="json"),
            trials_total=validated.budget.trials,
        )
    return record.id


@dataclass
class Snapshot:
    """What the store holds about one search."""

    search: Any
    trials: list[Any]
    controller: Any
    events: list[Any]

    @property
    def completed(self) -> dict[int, tuple[Any, ...]]:
        """index -> (reward, attempt, finished_at) of every completed trial."""
        return {t.index: (t.reward, t.attempt, t.finished_at) for t in self.trials if t.completed}


def snapshot(url: str, search_id: str, attempts: int = 20) -> Snapshot:
    """Read the search, its trials, its newest controller state and its events in one read transaction (again
    after a transient error: the Postgres test drops every connection, the test's own included)."""
    engine = store.get_engine(url)
    for attempt in range(attempts):
        try:
            with session_scope(engine, read_only=True) as session:
                search = store.load_search(session=session, search_id=search_id)
                trials = store.list_trials(session=session, search_id=search_id, limit=1000).items
                controller = store.latest_controller_state(session=session, search_id=search_id)
                events = store.events_after(session=session, search_id=search_id, after_id=0, limit=100_000)
            return Snapshot(search, trials, controller, events)
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient_error(exc):
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.1) -> None:
    """Poll ``predicate`` until it holds.

    Raises:
        AssertionError: naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s")
        time.sleep(poll_s)


def runner_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a runner or server subprocess: short leases, 2 Ray CPUs, one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPSEARCH_")}
    env.update(
        DROPSEARCH_DATABASE_URL=url,
        DROPSEARCH_DATA_DIR=str(data_dir),
        DROPSEARCH_HEARTBEAT_S="0.5",
        DROPSEARCH_LEASE_TIMEOUT_S="3",
        DROPSEARCH_RAY_NUM_CPUS="2",
        OMP_NUM_THREADS="1",
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="120",
    )
    env.update(extra)
    return env


def start_group(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` in a new session (so it and the Ray it starts can be killed as one group)."""
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, timeout: float = 60) -> None:
    """Send ``sig`` to the process group of ``proc`` and reap it."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


def assert_finished_cleanly(
    snap: Snapshot, trials: int, batch: int, kept: dict[int, tuple[Any, ...]], *, one_event_each: bool = True
) -> None:
    """The promises of every fault test: finished, each trial completed exactly once, none left running, the
    controller learned from every batch once, and trials completed before a fault were never re-run."""
    assert snap.search.status == "succeeded", snap.search.error
    assert sorted(t.index for t in snap.trials) == list(range(trials))
    assert snap.search.trials_done == trials
    assert all(t.status == "succeeded" for t in snap.trials), [(t.index, t.status) for t in snap.trials]
    assert snap.search.lease_owner is None
    for index, before in kept.items():
        assert snap.completed[index] == before, f"trial {index} was re-run after a fault"
    assert snap.controller.trials_seen == trials and snap.controller.updates == -(-trials // batch)
    finished = [e.data["index"] for e in snap.events if e.kind == "trial_finished"]
    assert sorted(set(finished)) == list(range(trials))
    if one_event_each:  # (a write retried after a connection died during its COMMIT may store its event twice)
        assert sorted(finished) == list(range(trials)), finished
