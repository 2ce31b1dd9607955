"""End to end over real HTTP: uvicorn + the runner + local Ray + SQLite or Postgres (service issue acceptance).

Submit a digits search (8 trials, 2 concurrent, REINFORCE), follow the SSE stream until it ends, check every trial
is stored with its metrics, download ``/best`` and install it with ``dropsearch.apply`` into a fresh model that
then trains.
"""

from __future__ import annotations

import pytest
import torch

import dropsearch
from tests._live import DIGITS, live_service, with_overrides
from tests.store.conftest import db_url, postgres_url, sqlite_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

SPEC = with_overrides(
    DIGITS,
    name="e2e-digits",
    space={"variants": ["bernoulli", "dropblock", "autodropout", "ydrop"], "rates": [0.0, 0.1, 0.3]},
    training={"lr": 0.003},
)


def test_submit_follow_sse_download_best_and_apply(db_url, tmp_path, fresh_ray):  # noqa: F811
    with live_service(db_url, tmp_path) as (client, _engine):
        created = client.submit(SPEC)
        assert created["status"] == "queued" and created["ray_dashboard_url"]
        search_id = created["id"]
        kinds = []
        for event in client.events(search_id):
            kinds.append(event["event"])
            if event["event"] == "end":
                assert event["data"]["status"] == "succeeded"
                break
        assert kinds.count("trial_finished") == 8 and kinds.count("controller_updated") == 2
        assert kinds.count("trial_reported") == 16
        search = client.get(search_id)
        assert search["status"] == "succeeded"
        assert search["progress"]["trials_done"] == search["progress"]["trials_total"] == 8
        trials = client.trials(search_id, limit=100)["data"]
        assert sorted(t["index"] for t in trials) == list(range(8))
        for trial in trials:
            assert trial["status"] == "succeeded"
            assert [m["epoch"] for m in trial["metrics"]] == [1, 2]
            assert 0 <= trial["metrics"][-1]["val_accuracy"] <= 1
        best = client.best(search_id)
        assert best["provenance"]["search_id"] == search_id
        assert best["provenance"]["reward"] == pytest.approx(max(t["reward"] for t in trials))

    from dropsearch.workers.datasets import load_dataset
    from dropsearch.workers.models import build_model

    data = load_dataset("digits", params={}, seed=1)
    model = build_model("convnet", params={"widths": [8, 16]}, in_shape=data.in_shape, num_classes=data.num_classes)
    applied = dropsearch.apply(model, best)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = [p.detach().clone() for p in model.parameters()]
    losses = [
        float(
            applied.training_step(data.x_train[:128], data.y_train[:128], torch.nn.functional.cross_entropy, optimizer)
        )
        for _ in range(20)
    ]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
