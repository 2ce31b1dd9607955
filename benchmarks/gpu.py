"""GPU benchmark in one run: a child's step time inside a Ray worker against bare PyTorch, regularizer ratios, memory.

Three measurements, printed as one JSON document:

1. ``child_step``: the same child (:class:`~dropsearch.workers.train.ChildTraining`, same config and seed, so the
   same model, pattern, batches and GPU path: data on the device, bf16 autocast, channels-last, optional
   ``torch.compile``) trained once in this process (``bare``) and once inside a Ray actor (``ray``): a
   :class:`TimedChildActor` holding a :class:`~dropsearch.workers.train.ChildTraining`, started with a trial's
   resources (``num_gpus=1``, or one CPU with ``--device cpu``) and given the dataset through the object store, as
   a search's trial is (a Ray Tune trial is such a Ray actor process too). The step is the body of
   ``ChildTraining.run_epoch``: fetch the next batch on the device, then ``applied.training_step`` under autocast
   with the optimizer step, each step timed alone (device synchronized). After ``--warmup`` steps per side,
   ``--rounds`` alternating blocks (bare, then Ray: never both at once, and drift hits both alike);
   ``ratio = median(ray) / median(bare)``, target <= 1.05 on the same GPU (Ray's ``CUDA_VISIBLE_DEVICES`` names
   the GPU it grants: on one-GPU machines the bare one).
2. ``child_epoch``: whole ``run_epoch`` calls (step loop plus evaluation) each side: ``train_s`` and their ratio.
3. ``regularizers``: ``benchmarks/regularizers.py``'s ``run`` on the same device (variant step-time ratios, memory).

``gpu_memory``: peak ``torch.cuda.max_memory_allocated`` of the timed steps per side and the device's total
(``null`` on the CPU, where the regularizer part counts live tensor bytes instead).

Usage::

    python benchmarks/gpu.py                                  # CUDA, convnet child; about 1-2 minutes
    python benchmarks/gpu.py --model resnet18 --compile       # a bigger child, compiled
    python benchmarks/gpu.py --device cpu --quick             # seconds; the CI smoke run
    python benchmarks/gpu.py --ray-address auto               # on a GPU node of a running cluster
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.train import ChildTraining

__all__ = ["CHILDREN", "TARGET_RATIO", "time_steps", "TimedChildActor", "run", "main"]

TARGET_RATIO = 1.05
#: child name -> model, dataset (synthetic, no files), batch size; ``quick`` shrinks all three.
CHILDREN: dict[str, dict[str, Any]] = {
    "convnet": {
        "model": "convnet",
        "model_params": {},
        "dataset_params": {"n": 4096, "shape": [1, 28, 28], "classes": 10},
        "batch_size": 128,
        "quick": {"model_params": {"widths": [8, 16]}, "dataset_params": {"n": 256, "shape": [1, 16, 16]}},
    },
    "resnet18": {
        "model": "resnet",
        "model_params": {"depth": 18, "width": 64},
        "dataset_params": {"n": 4096, "shape": [3, 32, 32], "classes": 10},
        "batch_size": 128,
        "quick": {"model_params": {"depth": 18, "width": 4}, "dataset_params": {"n": 256, "shape": [3, 16, 16]}},
    },
}
PATTERN = {"variant": "none"}
QUICK_VARIANTS = ("bernoulli", "autodropout_share_c", "ydrop", "largedrop")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(child: ChildTraining, steps: int, warmup: int = 0) -> dict[str, Any]:
    """Run ``warmup`` untimed then ``steps`` timed training steps of ``child`` (the loop body of ``run_epoch``).

    Returns:
        ``times`` (seconds per step), ``peak_mem_mb`` (CUDA peak allocated during the timed steps, else ``None``),
        and where it ran (``pid``, ``device``, ``cuda_visible_devices``).
    """
    device, cfg = child.device, child.config
    batches = iter(())

    def step() -> None:
        nonlocal batches
        batch = next(batches, None)
        if batch is None:  # a new epoch: a new permutation, as run_epoch does
            batches = child.data.train_batches(cfg.batch_size, child.generator)
            batch = next(batches)
        x, y = batch
        with child._autocast():
            child.applied.training_step(x, y, child.loss_fn, optimizer=child.optimizer)

    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    where = {"pid": os.getpid(), "device": str(device), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    return {"times": times, "peak_mem_mb": peak, **where}


class TimedChildActor:
    """The Ray side of :func:`bench_child`: one :class:`~dropsearch.workers.train.ChildTraining` in a Ray actor.

    Args:
        threads: torch threads of the actor process (the actor's CPUs).
    """

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self._child: ChildTraining | None = None

    def start(self, config: dict[str, Any], bundle: Any) -> dict[str, Any]:
        """Build the child of ``config`` (a ``ChildConfig.to_dict()``) on ``bundle``; returns where it runs."""
        import socket

        import ray

        self._child = None  # free a previous child first
        self._child = ChildTraining(ChildConfig.from_dict(config), bundle=bundle)
        return {"node": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def _started(self) -> ChildTraining:
        if self._child is None:
            raise RuntimeError("called before start")
        return self._child

    def time_steps(self, steps: int, warmup: int = 0) -> dict[str, Any]:
        """:func:`time_steps` on the child built by :meth:`start`."""
        return time_steps(self._started(), steps, warmup)

    def run_epoch(self) -> dict[str, Any]:
        """One whole ``run_epoch`` of the child (its metrics, with ``train_s``)."""
        return self._started().run_epoch()


def _load_regularizers_bench() -> Any:
    path = Path(__file__).resolve().with_name("regularizers.py")
    spec = importlib.util.spec_from_file_location("dropsearch_bench_regularizers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def child_config(name: str, *, device: str, quick: bool, batch_size: int | None, compile: bool) -> ChildConfig:
    """The child both sides train (``PATTERN`` installed, seed 0, bf16 and channels-last on CUDA)."""
    spec = CHILDREN[name]
    small = spec["quick"] if quick else {}
    return ChildConfig(
        model=spec["model"],
        model_params={**spec["model_params"], **small.get("model_params", {})},
        dataset="synthetic",
        dataset_params={**spec["dataset_params"], **small.get("dataset_params", {})},
        pattern=dict(PATTERN),
        batch_size=batch_size or (16 if quick else spec["batch_size"]),
        device=device,
        compile=compile,
    )


def _ms(values: Sequence[float]) -> float:
    return round(1e3 * statistics.median(values), 4)


def bench_child(config: ChildConfig, *, steps: int, warmup: int, rounds: int, epochs: int, threads: int) -> dict:
    """Time the child in this process and in a Ray actor (see the module docstring); needs Ray initialized."""
    import ray

    bundle = load_dataset(config.dataset, params=config.dataset_params, seed=config.seed)
    torch.set_num_threads(threads)
    bare = ChildTraining(config, bundle=bundle)
    cuda = bare.device.type == "cuda"
    actor = (
        ray.remote(TimedChildActor)
        .options(num_cpus=threads, num_gpus=1 if cuda else 0, max_restarts=0)  # a trial's resources
        .remote(threads)
    )
    where = ray.get(actor.start.remote(config.to_dict(), ray.put(bundle)))
    bare_runs = [time_steps(bare, 0, warmup)]
    ray_runs = [ray.get(actor.time_steps.remote(0, warmup))]
    for block in (steps // rounds + (i < steps % rounds) for i in range(rounds)):
        bare_runs.append(time_steps(bare, block))
        ray_runs.append(ray.get(actor.time_steps.remote(block)))
    bare_times = [t for run in bare_runs for t in run["times"]]
    ray_times = [t for run in ray_runs for t in run["times"]]
    bare_epochs, ray_epochs = [], []
    for _ in range(epochs):
        bare_epochs.append(bare.run_epoch()["train_s"])
        ray_epochs.append(ray.get(actor.run_epoch.remote())["train_s"])
    ray.kill(actor)

    def peak(runs: list[dict]) -> float | None:
        values = [r["peak_mem_mb"] for r in runs[1:] if r["peak_mem_mb"] is not None]
        return round(max(values), 2) if values else None

    ratio = statistics.median(ray_times) / statistics.median(bare_times)
    total_mb = round(torch.cuda.get_device_properties(bare.device).total_memory / 2**20, 1) if cuda else None
    step = {"bare_ms": _ms(bare_times), "ray_ms": _ms(ray_times), "ratio": round(ratio, 4), "target": TARGET_RATIO}
    step["pass"], step["steps"] = ratio <= TARGET_RATIO, len(bare_times)
    step["bare_min_ms"], step["ray_min_ms"] = round(1e3 * min(bare_times), 4), round(1e3 * min(ray_times), 4)
    return {
        "child_step": step,
        "child_epoch": {
            "bare_train_s": round(statistics.median(bare_epochs), 4),
            "ray_train_s": round(statistics.median(ray_epochs), 4),
            "ratio": round(statistics.median(ray_epochs) / statistics.median(bare_epochs), 4),
            "epochs": epochs,
        },
        "gpu_memory": {"device_total_mb": total_mb, "bare_peak_mb": peak(bare_runs), "ray_peak_mb": peak(ray_runs)},
        "bare": {"pid": os.getpid(), "device": bare_runs[-1]["device"]},
        "ray_worker": {
            **where,
            "device": ray_runs[-1]["device"],
            "cuda_visible_devices": ray_runs[-1]["cuda_visible_devices"],
        },
    }


def run(
    *,
    device: str = "cuda",
    model: str = "convnet",
    steps: int | None = None,
    warmup: int | None = None,
    rounds: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    compile: bool = False,
    quick: bool = False,
    threads: int = 1,
    regularizers: bool = True,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run the three measurements and return the JSON-ready result."""
    import ray

    from dropsearch.workers.setup import ensure_ray

    if model not in CHILDREN:
        raise ValueError(f"model must be one of {list(CHILDREN)}, got {model!r}")
    started = time.perf_counter()
    steps = steps if steps is not None else (4 if quick else 200)
    warmup = warmup if warmup is not None else (2 if quick else 20)
    rounds = rounds if rounds is not None else (2 if quick else 5)
    epochs = epochs if epochs is not None else (1 if quick else 2)
    config = child_config(model, device=device, quick=quick, batch_size=batch_size, compile=compile)
    bench = _load_regularizers_bench()
    result: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "machine": bench.machine_info(torch.device(device)),
        "config": {"model": model, "dataset": {"synthetic": config.dataset_params}, "batch_size": config.batch_size},
    }
    result["config"].update(steps=steps, warmup=warmup, rounds=rounds, threads=threads, quick=quick)
    result["config"].update(bf16=config.bf16, channels_last=config.channels_last, compile=compile)
    own_ray = not ray.is_initialized() and ray_address is None
    ensure_ray(ray_address, num_cpus=max(2, threads) if own_ray else None)
    try:
        result.update(bench_child(config, steps=steps, warmup=warmup, rounds=rounds, epochs=epochs, threads=threads))
    finally:
        if own_ray:
            ray.shutdown()
    if regularizers:
        kwargs: dict[str, Any] = {"device": device, "quick": quick}
        if quick:
            kwargs.update(models=["convnet"], variants=list(QUICK_VARIANTS), steps=2)
        result["regularizers"] = bench.run(**kwargs)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (the CI smoke run)")
    parser.add_argument("--model", default="convnet", choices=list(CHILDREN), help="the child network")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per side (default 200; 4 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 20; 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating blocks (default 5; 2 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="whole epochs per side (default 2; 1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=None, help="child batch size (default 128; 16 quick)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the child")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on each side (and the actor's CPUs)")
    parser.add_argument("--no-regularizers", action="store_true", help="skip benchmarks/regularizers.py")
    parser.add_argument("--ray-address", default=None, help="join this cluster (default: a local Ray)")
    parser.add_argument("--quick", action="store_true", help="tiny child, few steps (CI smoke run)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda needs a GPU (use --device cpu for the smoke run)")
    result = run(
        device=args.device,
        model=args.model,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        compile=args.compile,
        quick=args.quick,
        threads=args.threads,
        regularizers=not args.no_regularizers,
        ray_address=args.ray_address,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
