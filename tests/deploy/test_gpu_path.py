"""The child trainer's GPU path where it can be checked without a GPU: device choice inside Ray workers, equal
DDP shards, the per-epoch loss summed on the device, and ``compile`` reaching the training step."""

from __future__ import annotations

import os

import pytest
import torch

from dropsearch.regularizers.pattern import Pattern
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.device_data import DeviceData, resolve_device
from dropsearch.workers.train import ChildTraining

DEVICE = os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu")


def _config(**overrides) -> ChildConfig:
    base = {
        "model": "convnet",
        "model_params": {"widths": [4, 8]},
        "dataset": "synthetic",
        "dataset_params": {"n": 96, "shape": [1, 8, 8]},
        "pattern": {"variant": "none"},
        "batch_size": 16,
        "device": DEVICE,
    }
    return ChildConfig(**{**base, **overrides})


@pytest.mark.slow
def test_auto_device_in_a_ray_worker_follows_the_gpus_ray_granted_not_the_visible_ones():
    import ray

    def probe() -> tuple[str, str | None]:
        import torch

        from dropsearch.workers.device_data import resolve_device

        torch.cuda.is_available = lambda: True  # as on a GPU node: every GPU visible to every process
        return resolve_device("auto"), os.environ.get("CUDA_VISIBLE_DEVICES")

    ray.shutdown()
    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False)  # one declared GPU
    try:
        cpu_task = ray.remote(num_cpus=0.5, num_gpus=0)(probe)
        gpu_task = ray.remote(num_cpus=0.5, num_gpus=1)(probe)
        # Ray >= 2.49 leaves CUDA_VISIBLE_DEVICES alone for a worker granted no GPU: it must still train on CPU
        assert ray.get(cpu_task.remote())[0] == "cpu"
        assert ray.get(gpu_task.remote()) == ("cuda", "0")
    finally:
        ray.shutdown()


def test_auto_device_outside_ray_uses_a_visible_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto") == "cpu"


@pytest.mark.parametrize(("n", "world"), [(10, 3), (66, 2), (7, 4), (12, 4)])
def test_ddp_shards_are_disjoint_and_equal_so_every_rank_runs_the_same_number_of_steps(n, world):
    x = torch.arange(n, dtype=torch.float32).view(n, 1)
    shards = []
    for rank in range(world):
        data = DeviceData(x.clone(), torch.arange(n), {})
        data.shard(rank, world)
        shards.append(data)
    sizes = {len(d.x_train) for d in shards}
    assert sizes == {n // world}
    seen = torch.cat([d.x_train.view(-1) for d in shards]).tolist()
    assert sorted(seen) == list(range(n // world * world))  # disjoint, only the remainder dropped
    for d in shards:
        assert torch.equal(d.x_train.view(-1).long(), d.y_train)
        g = torch.Generator().manual_seed(0)
        assert len(list(d.train_batches(2, g))) == n // world // 2 + (1 if n // world % 2 >= 2 else 0)


def test_epoch_train_loss_is_the_example_weighted_mean_of_the_step_losses():
    config = _config()
    bundle = load_dataset(config.dataset, params=config.dataset_params, seed=0)
    child, twin = ChildTraining(config, bundle=bundle), ChildTraining(config, bundle=bundle)
    total, seen = 0.0, 0
    for x, y in twin.data.train_batches(config.batch_size, twin.generator):  # naive loop, a host sync per step
        loss = twin.applied.training_step(x, y, twin.loss_fn, optimizer=twin.optimizer)
        total, seen = total + float(loss) * len(x), seen + len(x)
    metrics = child.run_epoch()
    assert seen == 72 and metrics["train_loss"] == pytest.approx(total / seen, rel=1e-5)


def test_compile_wraps_the_model_of_the_plain_training_step_and_leaves_helpers_alone():
    child = ChildTraining(_config(compile=True))
    assert child.applied.model is child.forward_model and child.forward_model is not child.model
    assert getattr(child.forward_model, "_orig_mod", None) is child.model
    plain = ChildTraining(_config())
    assert plain.applied.model is plain.model is plain.forward_model
    gsnr = ChildTraining(_config(compile=True, pattern=Pattern.from_dict({"variant": "gsnr"}).to_dict()))
    assert gsnr.applied.helper is not None and gsnr.applied.model is gsnr.model
