"""ChildWorker.run_epochs: several short epochs per call, and what a failure in the middle of a call returns."""

from __future__ import annotations

import pytest

from dropsearch.workers.child import ChildConfig
from dropsearch.workers.pool import ChildWorker
from dropsearch.workers.train import ChildTraining


def _worker(epochs: int, fail_at: int | None = None) -> ChildWorker:
    config = ChildConfig(
        model="mlp",
        model_params={"hidden": [16]},
        dataset="synthetic",
        dataset_params={"n": 200},
        pattern={"variant": "none"},
        epochs=epochs,
        batch_size=32,
        inject_failure_at_epoch=fail_at,
    )
    worker = ChildWorker(torch_threads=1)
    worker._child = ChildTraining(config)  # what ``start`` builds, without a Ray runtime
    return worker


def test_run_epochs_trains_n_epochs_in_order_in_one_call():
    worker = _worker(epochs=5)
    first = worker.run_epochs(3)
    rest = worker.run_epochs(2)
    assert first["error"] is None and rest["error"] is None
    assert [m["epoch"] for m in first["metrics"] + rest["metrics"]] == [1, 2, 3, 4, 5]
    assert all(0.0 <= m["val_accuracy"] <= 1.0 for m in first["metrics"] + rest["metrics"])


def test_a_failure_after_some_epochs_of_a_call_returns_them_with_the_error():
    worker = _worker(epochs=6, fail_at=3)
    out = worker.run_epochs(5)
    assert [m["epoch"] for m in out["metrics"]] == [1, 2]
    assert isinstance(out["error"], Exception) and "injected failure" in str(out["error"])


def test_a_failure_in_the_first_epoch_of_a_call_raises():
    worker = _worker(epochs=6, fail_at=2)
    assert [m["epoch"] for m in worker.run_epochs(1)["metrics"]] == [1]
    with pytest.raises(Exception, match="injected failure"):
        worker.run_epochs(4)
