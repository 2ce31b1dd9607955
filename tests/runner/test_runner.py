"""The runner against a real SQLite store and a real local Ray: runs, cancels, and resumes after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner import Runner, decode_state
from dropsearch.search.spec import SearchSpec, validation_trials
from dropsearch.store import session_scope

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_ray")]

SPEC = {
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock", "autodropout"], "rates": [0.0, 0.2, 0.5]},
    "controller": {"name": "reinforce", "batch_size": 2},
    "budget": {"trials": 6, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
    "validation": {"enabled": False},  # this test counts the search trials only
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    url = f"sqlite:///{tmp_path / 'ds.db'}"
    store.upgrade(url)
    return Settings(data_dir=tmp_path, database_url=url, heartbeat_s=0.5, lease_timeout_s=4.0, ray_num_cpus=2)


def _submit(settings: Settings, spec: dict) -> str:
    validated = SearchSpec.model_validate(spec)
    engine = store.get_engine(settings.resolved_database_url)
    with session_scope(engine) as session:
        record = store.create_search(
            session=session,
            owner="alice",
            name=validated.name,
            spec=validated.model_dump(mode="json"),
            trials_total=validated.budget.trials,
        )
    return record.id


def _state(settings: Settings, search_id: str):
    engine = store.get_engine(settings.resolved_database_url)
    with session_scope(engine, read_only=True) as session:
        search = store.load_search(session=session, search_id=search_id)
        trials = store.list_trials(session=session, search_id=search_id, limit=1000).items
        controller = store.latest_controller_state(session=session, search_id=search_id)
        events = store.events_after(session=session, search_id=search_id, after_id=0, limit=10_000)
    return search, trials, controller, events


def test_runner_runs_a_queued_search_and_stores_everything(settings):
    search_id = _submit(settings, SPEC)
    Runner(settings, poll_s=0.2).run_until_idle(timeout=300)
    search, trials, controller, events = _state(settings, search_id)
    assert search.status == "succeeded" and search.trials_done == 6 and search.lease_owner is None
    assert sorted(t.index for t in trials) == list(range(6))
    for trial in trials:
        assert trial.status == "succeeded" and trial.attempt == 1
        assert [m["epoch"] for m in trial.metrics] == [1, 2]
        assert trial.reward == pytest.approx(trial.metrics[-1]["val_accuracy"])
        assert trial.pattern["variant"] in ("bernoulli", "dropblock", "autodropout") and trial.node
    assert search.best_reward == pytest.approx(max(t.reward for t in trials))
    assert controller.updates == 3 and controller.trials_seen == 6
    assert decode_state(controller.blob)["n_updates"] == 3
    kinds = [e.kind for e in events]
    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"
    assert kinds.count("trial_finished") == 6 and kinds.count("controller_updated") == 3
    assert kinds.count("trial_reported") == 12


def test_unfittable_resources_fail_the_search_with_a_clear_error(settings):
    search_id = _submit(settings, {**SPEC, "resources": {"gpus_per_trial": 2}})
    Runner(settings, poll_s=0.2).run_until_idle(timeout=120)
    search, trials, _, _ = _state(settings, search_id)
    assert search.status == "failed" and trials == []
    assert "resources.gpus_per_trial" in search.error and "cluster has 0" in search.error


def test_cancel_stops_the_search_and_keeps_finished_trials(settings):
    spec = {**SPEC, "budget": {**SPEC["budget"], "trials": 8, "epochs_per_trial": 3}}
    search_id = _submit(settings, spec)
    runner = Runner(settings, poll_s=0.2)
    runner.start()
    engine = store.get_engine(settings.resolved_database_url)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        search, *_ = _state(settings, search_id)
        if search.trials_done >= 2:
            break
        time.sleep(0.2)
    with session_scope(engine) as session:
        store.request_cancel(session=session, owner="alice", search_id=search_id)
    while time.monotonic() < deadline and _state(settings, search_id)[0].status == "running":
        time.sleep(0.2)
    runner.stop()
    search, trials, _, _ = _state(settings, search_id)
    assert search.status == "cancelled"
    done = [t for t in trials if t.status == "succeeded"]
    assert len(done) >= 2 and all(len(t.metrics) == 3 for t in done)
    assert not [t for t in trials if t.status == "running"]


def _start_runner(settings: Settings, runner_id: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DROPSEARCH_DATABASE_URL": settings.resolved_database_url,
        "DROPSEARCH_DATA_DIR": str(settings.data_dir),
        "DROPSEARCH_HEARTBEAT_S": "0.5",
        "DROPSEARCH_LEASE_TIMEOUT_S": "4",
        "DROPSEARCH_RAY_NUM_CPUS": "2",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dropsearch.runner", "--runner-id", runner_id],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run_runner(
    settings: Settings,
    runner_id: str,
    log: Path,
    done: Callable[[], bool],
    timeout: float,
    poll_s: float = 0.1,
    sig: int = signal.SIGKILL,
) -> None:
    """Start a runner process, wait until ``done()`` (at most ``timeout`` seconds), then send ``sig`` to its process
    group and reap it."""
    proc = _start_runner(settings, runner_id, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        time.sleep(poll_s)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=None if sig == signal.SIGKILL else 60)


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_kill_9_during_a_search_then_restart_finishes_it_with_every_completed_trial_kept_once(settings, tmp_path):
    spec = {**SPEC, "budget": {**SPEC["budget"], "trials": 8}}
    search_id = _submit(settings, spec)
    log = tmp_path / "runner.log"
    kept: dict[int, tuple] = {}

    def trials_done() -> int:
        return _state(settings, search_id)[0].trials_done

    def ended() -> bool:
        return _state(settings, search_id)[0].status != "running"

    for kill_after, runner_id in ((2, "runner-a"), (5, "runner-b")):
        # the runner and its embedded Ray die at once
        _run_runner(settings, runner_id, log, lambda n=kill_after: trials_done() >= n, timeout=240)
        _, trials, _, _ = _state(settings, search_id)
        for t in trials:
            if t.completed:
                kept.setdefault(t.index, (t.reward, t.attempt, t.finished_at))
        assert len(kept) >= kill_after
    # a new runner id: it waits for the dead lease to expire
    _run_runner(settings, "runner-c", log, ended, timeout=300, poll_s=0.2, sig=signal.SIGTERM)
    search, trials, controller, _ = _state(settings, search_id)
    assert search.status == "succeeded", log.read_text()[-3000:]
    assert sorted(t.index for t in trials) == list(range(8))
    assert search.trials_done == 8
    for t in trials:
        assert t.status == "succeeded"
        if t.index in kept:  # completed before a crash: never re-run
            assert (t.reward, t.attempt, t.finished_at) == kept[t.index]
    assert controller.updates == 4 and controller.trials_seen == 8


@pytest.mark.drill  # long: runs with DROPSEARCH_TEST_DRILLS=1 (CI time)
def test_kill_9_during_the_validation_stage_then_restart_reruns_no_finished_validation_run(settings, tmp_path):
    spec = {
        **SPEC,
        "budget": {**SPEC["budget"], "trials": 4},
        "validation": {"top_k": 2, "seeds": 2, "baselines": [{"variant": "none"}]},
    }
    validated = SearchSpec.model_validate(spec)
    search_id = _submit(settings, spec)
    engine = store.get_engine(settings.resolved_database_url)
    with session_scope(engine) as session:  # the API counts the validation runs in the progress total
        session.execute(
            text("UPDATE searches SET trials_total = :n WHERE id = :id"),
            {"n": 4 + validation_trials(validated), "id": search_id},
        )
    log = tmp_path / "runner.log"

    def validation_runs(status=("succeeded", "stopped", "failed")):
        return [t for t in _state(settings, search_id)[1] if t.kind == "validation" and t.status in status]

    def ended() -> bool:
        return _state(settings, search_id)[0].status != "running"

    _run_runner(settings, "runner-a", log, lambda: bool(validation_runs()), timeout=300)  # killed inside validation
    kept = {t.index: (t.arm, t.seed, t.reward, t.attempt, t.finished_at) for t in validation_runs()}
    assert kept, log.read_text()[-3000:]
    _run_runner(settings, "runner-b", log, ended, timeout=300, poll_s=0.2, sig=signal.SIGTERM)
    search, trials, _, _ = _state(settings, search_id)
    assert search.status == "succeeded", log.read_text()[-3000:]
    runs = [t for t in trials if t.kind == "validation"]
    for t in runs:
        if t.index in kept:  # finished before the kill: never run again
            assert (t.arm, t.seed, t.reward, t.attempt, t.finished_at) == kept[t.index]
    pairs = [(t.arm, t.seed) for t in runs]
    assert len(pairs) == len(set(pairs))  # no (arm, seed) trained twice
    report = search.validation
    assert report is not None and report["chosen"] is not None
    for arm in report["arms"]:
        for result in arm["results"]:
            stored = next(t for t in runs if t.arm == arm["name"] and t.seed == result["seed"])
            assert stored.reward == pytest.approx(result["value"])
    assert search.trials_done == 4 + len(runs) == search.trials_total
