"""A running search is findable in the Ray dashboard: a named actor whose log is the search's log."""

from __future__ import annotations

import time

import pytest

from dropsearch.runner.dashboard import NAMESPACE, actor_name
from dropsearch.runner.engine import run_search
from dropsearch.runner.events import SearchCallbacks
from dropsearch.search.spec import SearchSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_with_dashboard():
    import ray

    ray.shutdown()
    context = ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    yield context.address_info["gcs_address"]  # other Ray instances may run on this machine: name ours
    ray.shutdown()


def test_a_running_search_is_a_named_actor_in_the_state_api_and_its_log_names_every_trial(tmp_path, ray_with_dashboard):
    dashboard = ray_with_dashboard
    import ray
    from ray.util.state import get_log, list_actors

    spec = SearchSpec.model_validate(
        {
            "name": "findable",
            "model": {"name": "mlp", "params": {"hidden": [16]}},
            "dataset": {"name": "synthetic", "params": {"n": 200}},
            "space": {"variants": ["bernoulli"], "rates": [0.0, 0.2]},
            "controller": {"name": "random", "batch_size": 2},
            "budget": {"trials": 2, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
            "validation": {"enabled": False},  # this test counts the search trials only
        }
    )
    seen: dict = {}

    def on_finished(event):
        if "actor" in seen:
            return
        actors = list_actors(address=dashboard, filters=[("name", "=", actor_name("search-abc"))], detail=True)
        seen["actor"] = actors
        seen["info"] = ray.get(ray.get_actor(actor_name("search-abc"), namespace=NAMESPACE).info.remote())

    result = run_search(
        spec,
        callbacks=SearchCallbacks(on_trial_finished=on_finished),
        storage_path=str(tmp_path),
        name="search-abc",
    )
    assert result.status == "succeeded"
    (actor,) = seen["actor"]
    assert actor.state == "ALIVE" and actor.ray_namespace == NAMESPACE
    assert seen["info"]["search"] == "search-abc"
    assert seen["info"]["experiment_path"] == str(tmp_path / "search-abc")
    deadline, text = time.monotonic() + 30, ""
    while time.monotonic() < deadline:  # the log reaches the dashboard's agent with a small delay
        text = "".join(get_log(address=dashboard, actor_id=actor.actor_id, suffix="out", tail=200))
        if "trial 0 succeeded" in text and "trial 1 succeeded" in text:
            break
        time.sleep(1)
    assert "trial 0 succeeded" in text and "trial 1 succeeded" in text, text
    assert "epoch 2" in text
    # the search ended: its actor is gone
    alive = [("name", "=", actor_name("search-abc")), ("state", "=", "ALIVE")]
    assert list_actors(address=dashboard, filters=alive) == []
