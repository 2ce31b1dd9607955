"""Faults of the search engine (one Ray Tune experiment per search) with the real runner on SQLite and a real local
Ray: each test is named after the defect it guards against.

The hanging and slow children come from a model plugin (:mod:`tests.reliability.engine_plugin`) installed as an
entry point on ``sys.path`` and ``PYTHONPATH`` before Ray starts, so Ray's worker processes import it the way they
import any installed package.
"""

from __future__ import annotations

import shutil
import time
from datetime import timezone
from pathlib import Path

import pytest

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner import Runner
from dropsearch.store import session_scope
from tests._plugins import on_path_for_ray
from tests.reliability._common import Snapshot, snapshot, submit, wait_for
from tests.reliability.engine_plugin import NAME, write_plugin

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copyfile(sqlite_template, tmp_path / "ds.db")
    return f"sqlite:///{tmp_path / 'ds.db'}"


@pytest.fixture
def faulty_model(tmp_path: Path):
    """The plugin on sys.path and PYTHONPATH (Ray started afterwards sees it); removed again afterwards."""
    from dropsearch.workers.models import registry

    try:
        with on_path_for_ray(write_plugin(tmp_path / "site-packages")):
            registry._REGISTRY.refresh()
            yield tmp_path / "marker"
    finally:
        registry._REGISTRY._entries.pop(NAME, None)
        registry._REGISTRY.refresh()


def _settings(url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=url, heartbeat_s=1.0, lease_timeout_s=20.0, ray_num_cpus=2)


def _faulty_spec(marker: Path, *, trials: int, epochs: int, concurrent: int, budget=None, **model) -> dict:
    return {
        "name": "engine-faults",
        "model": {"name": NAME, "params": {"hidden": [16], "marker": str(marker), **model}},
        "dataset": {"name": "synthetic", "params": {"n": 200}},
        "space": {"variants": ["bernoulli"], "rates": [0.0, 0.2]},
        "controller": {"name": "random", "batch_size": concurrent},
        "budget": {
            "trials": trials,
            "epochs_per_trial": epochs,
            "max_concurrent": concurrent,
            "early_stopping": "none",
            **(budget or {}),
        },
        "validation": {"enabled": False},
        "seed": 3,
    }


def _run_to_end(url: str, search_id: str, tmp_path: Path, timeout: float) -> Snapshot:
    runner = Runner(_settings(url, tmp_path), poll_s=0.2)
    runner.start()
    try:
        wait_for(lambda: snapshot(url, search_id).search.status not in ("queued", "running"), timeout, "search ended")
    finally:
        runner.stop()
    return snapshot(url, search_id)


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _assert_none_left_running(snap: Snapshot, trials: int) -> None:
    assert sorted(t.index for t in snap.trials) == list(range(trials)), [(t.index, t.status) for t in snap.trials]
    assert not [t.index for t in snap.trials if t.status in ("queued", "running")]
    assert snap.search.trials_done == trials
    assert snap.search.lease_owner is None


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_a_hung_trial_stays_running_forever_and_stalls_its_batch_trial_timeout_s(
    faulty_model: Path, sqlite_url: str, tmp_path: Path
):
    """One trial blocks forever in its 2nd epoch on every attempt: budget.trial_timeout_s ends each attempt, the
    trial fails with the watchdog's note after its retry, and the others of its batch finish."""
    trials = 3
    document = _faulty_spec(
        faulty_model,
        trials=trials,
        epochs=3,
        concurrent=2,
        hang_epoch=2,
        budget={"max_failures": 1, "trial_timeout_s": 20},
    )
    search_id = submit(sqlite_url, document)
    snap = _run_to_end(sqlite_url, search_id, tmp_path, timeout=400)

    assert snap.search.status == "succeeded", snap.search.error
    assert snap.search.error is None
    _assert_none_left_running(snap, trials)
    hangs = _lines(faulty_model.with_name("marker.hangs"))
    assert len(hangs) == 2 and hangs[0][0] == hangs[1][0]  # the same trial hung on both of its attempts
    (hung,) = [t for t in snap.trials if t.status == "failed"]
    assert "trial hung" in hung.error and "budget.trial_timeout_s (20 s) exceeded" in hung.error, hung.error
    assert hung.reward is None
    for trial in snap.trials:
        if trial is not hung:
            assert trial.status == "succeeded" and [m["epoch"] for m in trial.metrics] == [1, 2, 3]
    finished = [e.data for e in snap.events if e.kind == "trial_finished"]
    assert sorted(d["index"] for d in finished) == list(range(trials))


def test_a_hung_trial_stays_running_forever_and_stalls_its_batch_hang_watchdog(
    faulty_model: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No trial_timeout_s: the hang watchdog (its floor shortened to 5 s through DROPSEARCH_HANG_FLOOR_S) ends the
    attempt that blocks in its 2nd epoch, and the retry (which does not hang) succeeds."""
    monkeypatch.setenv("DROPSEARCH_HANG_FLOOR_S", "5")
    monkeypatch.setenv("DROPSEARCH_HANG_FACTOR", "2")
    trials = 3
    document = _faulty_spec(
        faulty_model, trials=trials, epochs=3, concurrent=2, hang_epoch=2, hang_attempts=1, budget={"max_failures": 1}
    )
    search_id = submit(sqlite_url, document)
    snap = _run_to_end(sqlite_url, search_id, tmp_path, timeout=400)

    assert snap.search.status == "succeeded", snap.search.error
    _assert_none_left_running(snap, trials)
    ((_, hung_at),) = _lines(faulty_model.with_name("marker.hangs"))
    assert all(t.status == "succeeded" and [m["epoch"] for m in t.metrics] == [1, 2, 3] for t in snap.trials)
    (retried,) = [t for t in snap.trials if t.attempt == 2]
    starts = [(e.data["index"], e.data["attempt"]) for e in snap.events if e.kind == "trial_started"]
    assert sorted(starts) == sorted([(i, 1) for i in range(trials)] + [(retried.index, 2)])
    # the default floor (60 s) would have kept the blocked attempt alive for at least a minute
    ended = retried.finished_at.replace(tzinfo=retried.finished_at.tzinfo or timezone.utc).timestamp()
    assert ended - float(hung_at) < 50, ended - float(hung_at)


def test_a_search_never_fails_from_an_ordering_cancel_before_a_trial_start_is_stored(
    faulty_model: Path, sqlite_url: str, tmp_path: Path
):
    """The driver cancelled trials whose start was not stored yet (store.trial_finished raised NotFoundError and
    the search failed): cancel while both running trials are inside their first (slow) epoch, before any report."""
    trials = 4
    document = _faulty_spec(faulty_model, trials=trials, epochs=2, concurrent=2, slow_first_s=30.0)
    search_id = submit(sqlite_url, document)
    started = faulty_model.with_name("marker.started")
    runner = Runner(_settings(sqlite_url, tmp_path), poll_s=0.2)
    runner.start()
    try:
        wait_for(lambda: len(_lines(started)) >= 2, 240, "both trials inside their first epoch", poll_s=0.05)
        before = snapshot(sqlite_url, search_id)
        assert before.search.status == "running" and before.trials == []  # handed to workers, nothing stored
        with session_scope(store.get_engine(sqlite_url)) as session:
            assert store.request_cancel(session=session, owner="alice", search_id=search_id) is not None
        asked = time.monotonic()
        wait_for(lambda: snapshot(sqlite_url, search_id).search.status != "running", 120, "search ended")
        print(f"search ended {time.monotonic() - asked:.1f} s after the cancel")
    finally:
        runner.stop()
    snap = snapshot(sqlite_url, search_id)
    assert snap.search.status == "cancelled" and snap.search.error is None, snap.search.error
    assert snap.search.lease_owner is None
    assert not [t.index for t in snap.trials if t.status in ("queued", "running")], snap.trials
    assert snap.search.trials_done == sum(t.completed for t in snap.trials)
    assert len(_lines(started)) == 2  # no trial was started after the cancel
    (end,) = [e.data for e in snap.events if e.kind == "search_finished"]
    assert end == {"status": "cancelled", "error": None}
    stored = {e.data["index"] for e in snap.events if e.kind == "trial_started"}
    finished = [e.data["index"] for e in snap.events if e.kind == "trial_finished"]
    assert sorted(finished) == sorted(stored) == sorted(t.index for t in snap.trials)  # each stored trial ended once


_TRAIN_ACTORS = ("TrainController", "RayTrainWorker")


def _alive_train_actors() -> dict[str, tuple[str, int]]:
    """actor id -> (class, pid) of the ALIVE Ray Train actors of this process's Ray (read from its GCS)."""
    from ray._private import state

    table = state.actors(actor_state_name="ALIVE")
    return {a: (i["ActorClassName"], i["Pid"]) for a, i in table.items() if i["ActorClassName"] in _TRAIN_ACTORS}


def _process_alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")


@pytest.mark.drill
def test_multi_worker_ddp_children_keep_training_after_asha_stops_them_and_the_next_ddp_trial_waits(
    sqlite_url: str, tmp_path: Path, fresh_ray
):
    """DDP children (2 Ray Train workers each, 0.5 CPU apiece, on 2 CPUs) under ASHA, one trial at a time: a
    trial that ends (ASHA stops it, or its last epoch) takes its Ray Train controller and workers down and gives
    their CPUs back, so the next trial trains (before the fix it waited forever for CPUs held by the placement
    group of a dead controller); never more than one trial's Train actors alive at once, all 4 trials end, and
    no Ray Train worker process is left once the search is over."""
    trials = 4
    document = {
        "name": "ddp-asha",
        "model": {"name": "mlp", "params": {"hidden": [16]}},
        "dataset": {"name": "synthetic", "params": {"n": 200}},
        "space": {"variants": ["bernoulli"], "rates": [0.0, 0.3, 0.6]},
        "controller": {"name": "random", "batch_size": trials},
        "objective": {"metric": "val_loss", "mode": "min"},
        "budget": {"trials": trials, "epochs_per_trial": 4, "max_concurrent": 1, "early_stopping": "asha"},
        "resources": {"cpus_per_trial": 0.5, "workers_per_trial": 2},
        "validation": {"enabled": False},
        "seed": 3,
    }
    search_id = submit(sqlite_url, document)
    runner = Runner(_settings(sqlite_url, tmp_path), poll_s=0.2)
    samples: list[dict[str, tuple[str, int]]] = []  # the ALIVE Ray Train actors, every 0.3 s
    runner.start()
    try:
        deadline = time.monotonic() + 600
        while snapshot(sqlite_url, search_id).search.status in ("queued", "running"):
            assert time.monotonic() < deadline, f"search did not end in 600 s; Train actors alive: {samples[-1:]}"
            if runner._ray_ready:
                samples.append(_alive_train_actors())
            time.sleep(0.3)
    finally:
        runner.stop()
    snap = snapshot(sqlite_url, search_id)
    assert snap.search.status == "succeeded", snap.search.error
    _assert_none_left_running(snap, trials)
    outcome = [(t.index, t.status, len(t.metrics)) for t in snap.trials]
    stopped = [t.index for t in snap.trials if t.status == "stopped"]
    assert stopped and min(stopped) < trials - 1, outcome  # a trial trained after a stopped one
    assert all(len(t.metrics) == 4 for t in snap.trials if t.status == "succeeded"), outcome
    controllers = {a for sample in samples for a, (cls, _) in sample.items() if cls == "TrainController"}
    assert len(controllers) == trials, (len(controllers), outcome)  # one Ray Train run per trial, all seen
    for sample in samples:  # one trial at a time: never the Train actors of two trials alive together
        classes = [cls for cls, _ in sample.values()]
        assert classes.count("TrainController") <= 1 and classes.count("RayTrainWorker") <= 2, sample
    # (Ray is not asked anything once the search is over: in this runner path the embedded Ray's GCS and raylet
    # have been seen to die right after a DDP search ends (not explained yet), which aborts this process a minute later)
    pids = {pid for sample in samples for cls, pid in sample.values() if cls == "RayTrainWorker"}
    deadline = time.monotonic() + 30
    while [pid for pid in pids if _process_alive(pid)]:
        assert time.monotonic() < deadline, [pid for pid in pids if _process_alive(pid)]
        time.sleep(0.5)
    assert len(pids) == 2 * trials
    print(f"trials: {outcome}; samples: {len(samples)}")
