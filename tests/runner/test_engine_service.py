"""The one engine behind the service, over real HTTP with the real runner and a local Ray (SQLite).

Controllers (tpe, random), ``objective.mode: min`` end to end, and Tune's TensorBoard logger switched on by the
runner's settings.
"""

from __future__ import annotations

import glob
import os

import pytest

from dropsearch.api.app import create_app
from dropsearch.client import Client
from dropsearch.runner import Runner
from dropsearch.store import make_engine
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve

pytestmark = pytest.mark.slow


def _spec(**overrides):
    spec = {
        "name": "engine-service",
        "model": {"name": "mlp", "params": {"hidden": [32]}},
        "dataset": {"name": "digits"},
        "space": {"variants": ["bernoulli", "gsnr"], "rates": [0.0, 0.2, 0.5]},
        "controller": {"name": "reinforce", "batch_size": 2},
        "budget": {"trials": 4, "epochs_per_trial": 2, "max_concurrent": 2, "early_stopping": "none"},
        "validation": {"enabled": False},
    }
    for key, value in overrides.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


@pytest.fixture
def service(tmp_path):
    """Start (settings overrides) -> (client, settings); the runner and server stop at the end."""
    import ray

    ray.shutdown()
    started = []

    def start(**overrides):
        db = f"sqlite:///{tmp_path / 'service.db'}"
        settings = make_settings(db, tmp_path, heartbeat_s=1.0, lease_timeout_s=10.0, ray_num_cpus=2, **overrides)
        from dropsearch.store import migrate

        migrate.upgrade(db)
        engine = make_engine(db)
        key = make_key(engine, "alice")
        app = create_app(settings, migrate=False, sse_poll_s=0.1, sse_keepalive_s=1.0)
        runner = Runner(settings, poll_s=0.2)
        runner.start()
        server = serve(app)
        base_url = server.__enter__()
        client = Client(base_url, key)
        started.append((runner, server, client, engine))
        return client, settings

    yield start
    for runner, server, client, engine in started:
        client.close()
        runner.stop()
        server.__exit__(None, None, None)
        engine.dispose()
    ray.shutdown()


def _run_to_end(client: Client, spec: dict) -> str:
    search_id = client.submit(spec)["id"]
    for event in client.events(search_id):
        if event["event"] == "end":
            assert event["data"]["status"] == "succeeded", event
            break
    return search_id


@pytest.mark.parametrize("controller", ["tpe", "random"])
def test_a_search_with_each_tune_searcher_runs_end_to_end_over_http(service, controller):
    client, _ = service()
    search_id = _run_to_end(client, _spec(controller={"name": controller}))
    trials = client.trials(search_id, limit=100)["data"]
    assert sorted(t["index"] for t in trials) == [0, 1, 2, 3]
    assert all(t["status"] == "succeeded" and len(t["metrics"]) == 2 for t in trials)
    assert len({tuple(t["tokens"]) for t in trials}) >= 2  # the searcher proposes, not one fixed point
    best = client.best(search_id)
    assert best["provenance"]["reward"] == pytest.approx(max(t["reward"] for t in trials))


def test_objective_mode_min_picks_the_lowest_metric_as_best_not_the_worst(service):
    client, _ = service()
    spec = _spec(objective={"metric": "val_loss", "mode": "min"}, budget={"trials": 6}, controller={"batch_size": 3})
    search_id = _run_to_end(client, spec)
    trials = client.trials(search_id, limit=100)["data"]
    losses = [t["reward"] for t in trials]
    assert all(loss > 0 for loss in losses)  # the raw val_loss is stored, never negated
    for trial in trials:
        assert trial["reward"] == pytest.approx(trial["metrics"][-1]["val_loss"])
    assert len(set(losses)) > 1
    search = client.get(search_id)
    assert search["best_reward"] == pytest.approx(min(losses))
    best = client.best(search_id)
    lowest = min(trials, key=lambda t: t["reward"])
    assert best["provenance"]["reward"] == pytest.approx(lowest["reward"])
    assert best["provenance"]["trial_id"] == lowest["id"]


def test_the_tensorboard_logger_writes_event_files_a_tensorboard_reader_parses(service, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    client, settings = service(tune_loggers=["tensorboard"])
    search_id = _run_to_end(client, _spec(budget={"trials": 2, "epochs_per_trial": 2}))
    files = glob.glob(os.path.join(settings.tune_storage, search_id, "**", "events.out.tfevents.*"), recursive=True)
    assert len(files) >= 2, files  # one per trial
    accumulator = EventAccumulator(os.path.dirname(files[0]))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert any(tag.endswith("val_accuracy") for tag in tags), tags
    values = [e.value for e in accumulator.Scalars(next(t for t in tags if t.endswith("val_accuracy")))]
    assert values and all(0 <= v <= 1 for v in values)
