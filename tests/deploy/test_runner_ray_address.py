"""A runner joined to a separately started Ray head (``Runner(settings, ray_address=...)``) runs searches to the end.

The head is a real ``ray start --head`` process with 2 CPUs, no GPU and token auth on (see :mod:`ray_head`); the
store is a real migrated SQLite database; the search is a real (tiny) one.
"""

from __future__ import annotations

import pytest

from dropsearch import store
from dropsearch.config import Settings
from dropsearch.runner.runner import Runner
from dropsearch.search.spec import SearchSpec
from dropsearch.store import session_scope
from tests.deploy.ray_head import enable_driver_token_auth, ray_head

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def head_address():
    import ray

    ray.shutdown()  # other test modules run an in-process ray.init cluster
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        with ray_head(num_cpus=2) as address:
            enable_driver_token_auth()
            yield address
            ray.shutdown()
    ray.shutdown()


@pytest.fixture
def joined(head_address):
    import ray

    ray.shutdown()
    yield head_address
    ray.shutdown()


def _spec(**overrides) -> dict:
    body = {
        "model": {"name": "convnet", "params": {"widths": [8, 16]}},
        "dataset": {"name": "digits"},
        "space": {"variants": ["bernoulli", "dropblock"], "rates": [0.0, 0.2]},
        "controller": {"name": "reinforce", "batch_size": 2},
        "budget": {"trials": 4, "epochs_per_trial": 1, "max_concurrent": 2, "early_stopping": "none"},
        "validation": {"enabled": False},  # this test counts the search trials only
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    }
    body.update(overrides)
    return SearchSpec.model_validate(body).model_dump(mode="json")


def _queue(url: str, spec: dict) -> str:
    engine = store.get_engine(url)
    with session_scope(engine) as session:
        record = store.create_search(
            session=session, owner="alice", name=spec["name"], spec=spec, trials_total=spec["budget"]["trials"]
        )
    return record.id


def _load(url: str, search_id: str):
    engine = store.get_engine(url)
    with session_scope(engine, read_only=True) as session:
        search = store.load_search(session=session, search_id=search_id)
        trials = store.list_trials(session=session, search_id=search_id, limit=None).items
        events = store.events_after(session=session, search_id=search_id, limit=1000)
    return search, trials, events


def _runner(tmp_path, address: str) -> tuple[Runner, str]:
    url = f"sqlite:///{tmp_path / 'dropsearch.db'}"
    store.upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path, heartbeat_s=1.0)
    return Runner(settings, ray_address=address, poll_s=0.2), url


def test_a_runner_joined_to_a_running_head_runs_a_search_to_the_end_on_that_cluster(tmp_path, joined):
    import ray

    runner, url = _runner(tmp_path, joined)
    search_id = _queue(url, _spec())
    runner.run_until_idle(timeout=300)

    # the driver joined the head we started (not an embedded local Ray): its GCS, its 2 CPUs, no GPU
    assert ray.get_runtime_context().gcs_address.endswith(":" + joined.rsplit(":", 1)[1])
    assert ray.cluster_resources().get("CPU") == 2 and "GPU" not in ray.cluster_resources()

    search, trials, events = _load(url, search_id)
    assert search.status == "succeeded", search.error
    assert search.error is None and search.lease_owner is None
    assert search.trials_done == 4 and search.trials_total == 4
    assert [t.index for t in trials] == [0, 1, 2, 3]
    for trial in trials:
        assert trial.status == "succeeded" and trial.attempt == 1
        assert [m["epoch"] for m in trial.metrics] == [1]
        assert trial.reward == trial.metrics[-1]["val_accuracy"]
        assert 0.0 <= trial.reward <= 1.0
        assert trial.pattern["variant"] in ("bernoulli", "dropblock") and trial.node
    assert search.best_reward == max(t.reward for t in trials)
    kinds = [e.kind for e in events]
    assert kinds.count("trial_finished") == 4 and kinds.count("controller_updated") == 2
    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"


def test_more_gpus_per_trial_than_the_cluster_has_fails_the_search_at_start_with_a_clear_message(tmp_path, joined):
    runner, url = _runner(tmp_path, joined)
    search_id = _queue(url, _spec(resources={"cpus_per_trial": 1, "gpus_per_trial": 1}))
    runner.run_until_idle(timeout=120)

    search, trials, events = _load(url, search_id)
    assert search.status == "failed"  # ended, not left queued or running waiting for a GPU that never comes
    assert search.error.startswith("InsufficientResourcesError: resources.gpus_per_trial:")
    assert "needs 1 GPU" in search.error and "the Ray cluster has 0" in search.error
    assert trials == [] and search.trials_done == 0
    finished = [e for e in events if e.kind == "search_finished"]
    assert len(finished) == 1 and finished[0].data["status"] == "failed"
    assert "gpus_per_trial" in finished[0].data["error"]
    assert not any(e.kind == "trial_started" for e in events)


def test_more_concurrent_trials_than_the_cluster_can_place_queue_instead_of_waiting_forever(tmp_path, joined):
    runner, url = _runner(tmp_path, joined)
    budget = {"trials": 3, "epochs_per_trial": 1, "max_concurrent": 3, "early_stopping": "none", "time_limit_s": 90}
    search_id = _queue(url, _spec(budget=budget, controller={"name": "random", "batch_size": 3}))  # 3 x 1 CPU > 2
    runner.run_until_idle(timeout=120)

    search, trials, _ = _load(url, search_id)
    assert search.status == "succeeded"
    assert [t.status for t in trials] == ["succeeded"] * 3
