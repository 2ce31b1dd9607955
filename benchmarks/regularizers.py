"""Step-time and peak-memory benchmark of every dropout variant against plain ``nn.Dropout``.

Each variant is installed with :func:`dropsearch.apply` on its own copy of the same model (same initial weights,
same batch) and timed over full training steps (``zero_grad``, forward, backward, ``SGD.step``). Everything is
measured in ONE process: after ``--warmup`` rounds, ``--steps`` rounds run in which every variant takes one
step, in an order rotated each round, so machine noise (other processes, frequency changes) hits all variants
alike. A variant's ``ratio`` is its median step time over the median step time of its reference, measured in
the same rounds:

- ``plain``: ``nn.Dropout(0.1)`` at every conv site of the model (the reference of every variant but largedrop;
  GSNR and GradAug install no dropout module, they change the step, and are compared to this usual model);
- ``plain_head``: ``nn.Dropout(0.9)`` at the ``head.drop`` site only (the reference of ``largedrop``);
- ``none`` (no dropout at all) is reported too, as a ratio to ``plain``, for context.

``gsnr`` estimates the GSNR on the whole batch (the paper), ``gsnr_subbatch`` on its first half
(``params.gsnr_batch``); both use the micro-batch estimator with 4 micro-batches.

Y-Drop is amortized at a refresh every ``refresh_every = 10`` steps: each round times one ordinary step and one
conductance refresh separately, and ``median_ms = median(step) + median(refresh) / 10`` (``refresh_ms`` is also
reported). Peak memory is measured afterwards, on one extra untimed step per variant (a refresh step for Y-Drop):
on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on the CPU (where torch keeps no
allocator statistics) the peak of live tensor storage bytes (parameters, gradients, optimizer state, the batch,
activations and temporaries) counted by :class:`LiveStorageTracker`, a ``TorchDispatchMode`` that sees every
storage an aten op returns and when it is freed (kernel-internal workspaces are not seen).

Batch sizes: 64 for the ConvNet and 128 for ResNet-18 (the usual CIFAR training batch); ``--batch-size`` sets
one for every model (docs/REGULARIZERS.md also lists ResNet-18 at batch 32).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/regularizers.py                    # the documented table (CPU)
    python benchmarks/regularizers.py --device cuda                         # on a GPU
    python benchmarks/regularizers.py --quick                               # seconds; used by CI
    python benchmarks/regularizers.py --models convnet --variants gsnr,ydrop --steps 30
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from dropsearch.regularizers._apply import apply, install_module
from dropsearch.workers.models import build_model, dropout_sites

__all__ = ["MODELS", "VARIANTS", "TARGETS", "run", "main"]

#: name -> (registry name, params, in_shape, default batch size); ``quick`` shrinks the widths.
MODELS: dict[str, dict[str, Any]] = {
    "convnet": {"name": "convnet", "params": {}, "quick": {"widths": [8, 16]}, "in_shape": (1, 28, 28), "batch": 64},
    "resnet18": {
        "name": "resnet",
        "params": {"depth": 18, "width": 64},
        "quick": {"depth": 18, "width": 4},
        "in_shape": (3, 32, 32),
        "batch": 128,  # the usual CIFAR ResNet training batch
    },
}

CONV_RATE = 0.1
LARGE_RATE = 0.9
REFRESH_EVERY = 10
#: The AutoDropout tokens measured (a mid-range pattern: 2x2 squares, gap 2, 2x2 per cell, rotated and sheared).
AUTODROPOUT_TOKENS = {"size": 2, "stride": 2, "repeat": 2, "rotate": 30, "shear_x": 0.15, "shear_y": 0.0}
VARIANTS = (
    "bernoulli",
    "spatial",
    "dropblock",
    "autodropout_share_c",
    "autodropout_per_channel",
    "gsnr",
    "gsnr_subbatch",
    "ydrop",
    "gradaug",
    "largedrop",
)
#: Issue targets: the largest allowed ratio to plain dropout, per variant family.
TARGETS = {"autodropout": 1.10, "largedrop": 1.02, "ydrop": 1.3, "gsnr": 2.0, "gradaug": 3.0}


def _conv_sites(model: nn.Module) -> list[str]:
    return [s.name for s in dropout_sites(model) if s.kind == "conv"]


def variant_pattern(variant: str, model: nn.Module, batch: int) -> dict[str, Any]:
    """The pattern JSON benchmarked for ``variant`` on ``model``."""
    conv = _conv_sites(model)
    if variant in ("bernoulli", "spatial", "ydrop"):
        params = {"refresh_every": REFRESH_EVERY, "steps": 5} if variant == "ydrop" else {}
        return {"variant": variant, "sites": [{"site": s, "rate": CONV_RATE} for s in conv], "params": params}
    if variant == "dropblock":
        return {"variant": variant, "sites": [{"site": s, "rate": CONV_RATE, "shape": {"block_size": 3}} for s in conv]}
    if variant.startswith("autodropout"):
        shape = {**AUTODROPOUT_TOKENS, "share_c": variant.endswith("share_c"), "residual": False}
        return {"variant": "autodropout", "sites": [{"site": s, "rate": CONV_RATE, "shape": shape} for s in conv]}
    if variant == "gsnr":
        return {"variant": "gsnr", "params": {"p": 0.1, "estimator": "microbatch", "chunks": 4}}
    if variant == "gsnr_subbatch":  # the GSNR measured on the first half of the batch
        params = {"p": 0.1, "estimator": "microbatch", "chunks": 4, "gsnr_batch": min(batch, max(8, batch // 2))}
        return {"variant": "gsnr", "params": params}
    if variant == "gradaug":
        return {"variant": "gradaug", "params": {"min_width": 0.8, "n_subnets": 3, "resolutions": [1.0, 0.875, 0.75]}}
    if variant == "largedrop":
        return {"variant": "largedrop", "sites": [{"site": "head.drop", "rate": LARGE_RATE}]}
    raise ValueError(f"unknown benchmark variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def target_of(variant: str) -> float | None:
    """The issue's ratio target for a benchmark variant (``None``: no target)."""
    family = variant.split("_")[0]
    return TARGETS.get(family)


@dataclass
class Runner:
    """One variant's model, optimizer and step (``refresh`` for Y-Drop)."""

    name: str
    reference: str | None
    step: Callable[[], Any]
    refresh: Callable[[], Any] | None = None
    memory_step: Callable[[], Any] | None = None
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    times: list[float] = field(default_factory=list)
    refresh_times: list[float] = field(default_factory=list)


def _plain_runner(name: str, base: nn.Module, sites: Sequence[str], p: float, x, y) -> Runner:
    model = copy.deepcopy(base)
    for site in sites:
        install_module(model, site, nn.Dropout(p))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return Runner(name, None, step, model=model, optimizer=opt)


def _variant_runner(variant: str, base: nn.Module, x, y) -> Runner:
    model = copy.deepcopy(base)
    applied = apply(model, variant_pattern(variant, model, x.shape[0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    reference = "plain_head" if variant == "largedrop" else "plain"

    def step() -> torch.Tensor:
        if variant == "ydrop":
            applied.helper.step = 1  # never a refresh step: refreshes are timed on their own
        return applied.training_step(x, y, F.cross_entropy, optimizer=opt)

    runner = Runner(variant, reference, step, model=model, optimizer=opt)
    if variant == "ydrop":

        def memory_step() -> torch.Tensor:
            applied.helper.step = REFRESH_EVERY  # a refresh step: the peak of Y-Drop
            return applied.training_step(x, y, F.cross_entropy, optimizer=opt)

        runner.refresh = lambda: applied.helper.refresh(x, y)
        runner.memory_step = memory_step
    return runner


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


class LiveStorageTracker(TorchDispatchMode):
    """Peak bytes of live tensor storages on one device, seen through the dispatcher (CPU memory measure).

    Storages alive when tracking starts (``track``) and every storage an aten op returns are counted until
    their Python storage object is freed (``weakref.finalize``); views share their base's storage and count
    once. Kernel-internal workspaces that never become tensors are not seen.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def track(self, tensors: Any) -> None:
        """Count the storages of ``tensors`` (any nesting of lists, tuples and dicts) as live."""
        for t in pytree.tree_leaves(tensors):
            if isinstance(t, torch.Tensor) and t.device.type == self.device.type:
                storage = t.untyped_storage()
                key = storage._cdata
                if key in self._sizes:
                    continue
                self._sizes[key] = storage.nbytes()
                self.live += self._sizes[key]
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        self.track(out)
        return out


def _state_tensors(runner: Runner) -> list[torch.Tensor]:
    model, opt = runner.model, runner.optimizer
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


def peak_memory_mb(fn: Callable[[], Any], runner: Runner, device: torch.device, inputs: Any) -> float:
    """Peak allocated memory during ``fn()`` in MiB (see the module docstring for the method per device)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    gc.collect()
    tracker = LiveStorageTracker(device)
    tracker.track(_state_tensors(runner) + list(inputs))
    with tracker:
        fn()
    return tracker.peak / 2**20


def _build_base(spec: dict[str, Any], quick: bool, device: torch.device) -> nn.Module:
    params = spec["quick"] if quick else spec["params"]
    torch.manual_seed(0)
    return build_model(spec["name"], params=params, in_shape=spec["in_shape"], num_classes=10).to(device)


def bench_model(
    model_name: str, variants: Sequence[str], *, steps: int, warmup: int, batch: int, quick: bool, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Time every variant (and its reference) on one model; returns variant -> numbers."""
    spec = MODELS[model_name]
    base = _build_base(spec, quick, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, *spec["in_shape"], generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    runners = [_plain_runner("plain", base, _conv_sites(base), CONV_RATE, x, y)]
    runners.append(_plain_runner("none", base, [], 0.0, x, y))  # no dropout at all, for context
    runners[-1].reference = "plain"
    if "largedrop" in variants:
        runners.append(_plain_runner("plain_head", base, ["head.drop"], LARGE_RATE, x, y))
    runners += [_variant_runner(v, base, x, y) for v in variants]
    for r in range(warmup + steps):
        shift = r % len(runners)
        for runner in runners[shift:] + runners[:shift]:  # rotate the order every round
            t = _timed(runner.step, device)
            tr = _timed(runner.refresh, device) if runner.refresh is not None else None
            if r >= warmup:
                runner.times.append(t)
                if tr is not None:
                    runner.refresh_times.append(tr)
    medians = {}
    for runner in runners:
        med = statistics.median(runner.times)
        if runner.refresh_times:
            med += statistics.median(runner.refresh_times) / REFRESH_EVERY
        medians[runner.name] = med
    out: dict[str, dict[str, Any]] = {}
    for runner in runners:
        ref = runner.reference or runner.name
        entry: dict[str, Any] = {
            "median_ms": round(1e3 * medians[runner.name], 3),
            "ratio": round(medians[runner.name] / medians[ref], 3),
            "reference": ref,
            "peak_mem_mb": None,
        }
        if runner.refresh_times:
            entry["refresh_ms"] = round(1e3 * statistics.median(runner.refresh_times), 3)
            entry["step_ms"] = round(1e3 * statistics.median(runner.times), 3)
        mem = peak_memory_mb(runner.memory_step or runner.step, runner, device, (x, y))
        entry["peak_mem_mb"] = round(mem, 2)
        out[runner.name] = entry
    return out


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the numbers come from."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run(
    *,
    device: str = "cpu",
    models: Sequence[str] = tuple(MODELS),
    variants: Sequence[str] = VARIANTS,
    steps: int | None = None,
    warmup: int | None = None,
    batch_size: int | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready result (see the module docstring)."""
    dev = torch.device(device)
    unknown = [m for m in models if m not in MODELS] + [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model or variant {unknown}; models: {list(MODELS)}, variants: {list(VARIANTS)}")
    steps = steps if steps is not None else (3 if quick else 15)
    warmup = warmup if warmup is not None else (1 if quick else 3)
    result: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "machine": machine_info(dev),
        "config": {"steps": steps, "warmup": warmup, "quick": quick, "batch_size": {}},
        "models": {},
        "targets": dict(TARGETS),
        "pass": {},
    }
    for name in models:
        batch = batch_size or (8 if quick else MODELS[name]["batch"])
        result["config"]["batch_size"][name] = batch
        numbers = bench_model(name, variants, steps=steps, warmup=warmup, batch=batch, quick=quick, device=dev)
        result["models"][name] = numbers
        result["pass"][name] = {v: numbers[v]["ratio"] <= target_of(v) for v in variants if target_of(v) is not None}
    return result


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--models", type=_csv, default=list(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--variants", type=_csv, default=list(VARIANTS), help="comma-separated variant names")
    parser.add_argument("--steps", type=int, default=None, help="timed rounds (default 15; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 3; 1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size for every model")
    parser.add_argument("--quick", action="store_true", help="tiny models and batches (CI smoke run)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda needs a GPU")
    result = run(
        device=args.device,
        models=args.models,
        variants=args.variants,
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        quick=args.quick,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
