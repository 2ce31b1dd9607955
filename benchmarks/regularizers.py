"""Step-time and peak-memory benchmark of every dropout variant against plain ``nn.Dropout``, with its spread.

Each variant is installed with :func:`dropsearch.apply` on its own copy of the same model (same initial weights,
same batch) and timed over full training steps (``zero_grad``, forward, backward, ``SGD.step``), in ONE process.
A *cell* is one model at one batch size; the default cells are the ConvNet at batch 32 and 64 and ResNet-18
(the registry's ``resnet`` depth 18 width 64 at 3x32x32) at batch 32 and 128.

Interleaved rounds: in a round every variant takes one step between two steps of its reference
(``R v1 R v2 R ...``, the order of the variants rotated every round), so each variant step has a reference step
right before and right after it and load from other processes hits both alike. A pair's ratio is the variant's
step time over the mean of those two reference steps; a variant's ``ratio`` is the median over the rounds, with
``iqr`` (quartiles) and ``range`` (min-max). References:

- ``plain``: ``nn.Dropout(0.1)`` at every conv site of the model (the reference of every variant but largedrop;
  GSNR and GradAug install no dropout module, they change the step, and are compared to this usual model);
- ``plain_head``: ``nn.Dropout(0.9)`` at the ``head.drop`` site only (the reference of ``largedrop``);
- ``none`` (no dropout at all) is reported too, as a ratio to ``plain``, for context.

Adaptive rounds: each cell gets a share of ``--budget`` seconds (default 240 over the four cells: 8%, 12%, 25%,
55%) and runs rounds until it is spent, at least ``--min-rounds`` (3) and at most ``--max-rounds`` (40): many
rounds on the small ConvNet, a few on ResNet-18 at batch 128, where only the variants with a target are timed
(``gsnr_subbatch`` is left out there).
Before the rounds every model copy takes one untimed warm-up step, on which peak memory is measured.

``gsnr`` estimates the GSNR on the whole batch (the paper), ``gsnr_subbatch`` on its first half
(``params.gsnr_batch``); both use the micro-batch estimator with 4 micro-batches. Y-Drop is amortized at a
refresh every ``refresh_every = 10`` steps: the refresh is timed right after the ordinary step and the pair's
variant time is ``step + refresh / 10`` (``step_ms`` and ``refresh_ms`` are reported); a refresh that takes more
than a second (ResNet-18 at batch 128: ~15 s) is timed every third round only, the pairs between using the median
refresh so far. Peak memory (the warm-up
step; a refresh step for Y-Drop): on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
on the CPU (where torch keeps no allocator statistics) the peak of live tensor storage bytes (parameters,
gradients, optimizer state, the batch, activations, temporaries and caches built during the step) counted by
:class:`LiveStorageTracker`, a ``TorchDispatchMode`` that sees every storage an aten op returns and when it is
freed (kernel-internal workspaces are not seen).

The JSON holds per cell the rounds, wall time and load average, and per variant ``median_ms``, ``ratio``,
``iqr``, ``range``, ``pairs``, ``peak_mem_mb`` and, where the issue sets one, ``target`` and ``pass``.

Usage::

    python benchmarks/regularizers.py --json bench.json --markdown      # the documented table (8-10 min on 2 CPU cores)
    python benchmarks/regularizers.py --device cuda --markdown          # the same table on a GPU
    python benchmarks/regularizers.py --markdown --from-json bench.json # re-render a saved result
    python benchmarks/regularizers.py --quick                           # seconds; used by CI
    python benchmarks/regularizers.py --cells convnet:64 --variants gsnr,ydrop --budget 60
"""

from __future__ import annotations

import argparse
import copy
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
    tracker = LiveStorageTracker(device)  # storages alive before are counted only if tracked: no gc.collect needed
    tracker.track(_state_tensors(runner) + list(inputs))
    with tracker:
        fn()
    return tracker.peak / 2**20


def _build_base(spec: dict[str, Any], quick: bool, device: torch.device) -> nn.Module:
    params = spec["quick"] if quick else spec["params"]
    torch.manual_seed(0)
    return build_model(spec["name"], params=params, in_shape=spec["in_shape"], num_classes=10).to(device)


def _spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, quartiles (IQR) and range of ``values``."""
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {
        "ratio": round(statistics.median(ordered), 3),
        "iqr": [round(q1, 3), round(q3, 3)],
        "range": [round(ordered[0], 3), round(ordered[-1], 3)],
        "pairs": len(ordered),
    }


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not on every platform
        return None


#: A Y-Drop refresh is timed in every round while it takes less than this; after a longer one it is timed again
#: only every :data:`REFRESH_TIMING_EVERY` rounds and the pairs in between use the median so far (on ResNet-18 at
#: batch 128 a refresh takes ~15 s and weighs a tenth in the ratio).
REFRESH_TIMING_MAX_S = 1.0
REFRESH_TIMING_EVERY = 3


def _round(
    runners: dict[str, Runner], order: Sequence[str], device: torch.device, round_index: int = 0
) -> dict[str, float]:
    """One interleaved round: each variant's step between two steps of its reference (``R v1 R v2 R ...``).

    Returns variant -> its step time over the mean of the two reference steps around it (Y-Drop: step plus a
    tenth of a refresh, timed right after the step, or the median refresh so far when this round does not time
    one: :data:`REFRESH_TIMING_MAX_S`).
    """
    ratios: dict[str, float] = {}
    last: dict[str, float] = {}
    for name in order:
        runner = runners[name]
        ref = runners[runner.reference]
        before = last.get(ref.name)
        if before is None:
            before = _timed(ref.step, device)
            ref.times.append(before)
        t = _timed(runner.step, device)
        runner.times.append(t)
        if runner.refresh is not None:
            cheap = not runner.refresh_times or runner.refresh_times[-1] < REFRESH_TIMING_MAX_S
            if cheap or round_index % REFRESH_TIMING_EVERY == 0:
                refresh = _timed(runner.refresh, device)
                runner.refresh_times.append(refresh)
            else:
                refresh = statistics.median(runner.refresh_times)
            t += refresh / REFRESH_EVERY
        after = _timed(ref.step, device)
        ref.times.append(after)
        last = {ref.name: after}
        ratios[name] = t / (0.5 * (before + after))
    return ratios


def bench_cell(
    model_name: str,
    batch: int,
    variants: Sequence[str],
    *,
    time_box_s: float,
    min_rounds: int,
    max_rounds: int,
    quick: bool,
    device: torch.device,
    memory: bool = True,
) -> dict[str, Any]:
    """Time every variant (and its reference) on one model and batch size; see the module docstring.

    Rounds run until ``time_box_s`` is spent (at least ``min_rounds``, at most ``max_rounds``) after one untimed
    warm-up step per model copy (the peak-memory step).
    """
    started = time.perf_counter()
    load_start = _load()
    spec = MODELS[model_name]
    base = _build_base(spec, quick, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, *spec["in_shape"], generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    runners = {"plain": _plain_runner("plain", base, _conv_sites(base), CONV_RATE, x, y)}
    if "none" in variants:
        runners["none"] = _plain_runner("none", base, [], 0.0, x, y)  # no dropout at all, for context
        runners["none"].reference = "plain"
    if "largedrop" in variants:
        runners["plain_head"] = _plain_runner("plain_head", base, ["head.drop"], LARGE_RATE, x, y)
    runners.update((v, _variant_runner(v, base, x, y)) for v in variants if v != "none")
    peak: dict[str, float] = {}
    for name, runner in runners.items():  # warm-up: one step each, measured for peak memory
        mem = peak_memory_mb(runner.memory_step or runner.step, runner, device, (x, y)) if memory else None
        peak[name] = round(mem, 2) if mem is not None else None
        if runner.refresh is not None:
            runner.refresh()
    timed = [n for n, r in runners.items() if r.reference is not None]
    ratios: dict[str, list[float]] = {n: [] for n in timed}
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - started < time_box_s):
        shift = rounds % len(timed)
        for name, ratio in _round(runners, timed[shift:] + timed[:shift], device, rounds).items():
            ratios[name].append(ratio)
        rounds += 1
    results: dict[str, dict[str, Any]] = {}
    for name, runner in runners.items():
        entry: dict[str, Any] = {"median_ms": round(1e3 * statistics.median(runner.times), 3)}
        if runner.refresh_times:
            entry["step_ms"] = entry["median_ms"]
            entry["refresh_ms"] = round(1e3 * statistics.median(runner.refresh_times), 3)
            entry["median_ms"] = round(entry["step_ms"] + entry["refresh_ms"] / REFRESH_EVERY, 3)
        entry["reference"] = runner.reference or name
        if runner.reference is None:
            entry.update(ratio=1.0, iqr=[1.0, 1.0], range=[1.0, 1.0], pairs=0)
        else:
            entry.update(_spread(ratios[name]))
        entry["peak_mem_mb"] = peak[name]
        target = target_of(name)
        if target is not None and runner.reference is not None:
            entry["target"], entry["pass"] = target, entry["ratio"] <= target
        results[name] = entry
    return {
        "model": model_name,
        "batch": batch,
        "rounds": rounds,
        "time_box_s": round(time_box_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "load_avg": {"start": load_start, "end": _load()},
        "results": results,
    }


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


#: The default cells (model, batch) and each one's share of ``--budget``; ResNet-18 at batch 128 times only the
#: variants with a target (its rounds are long).
CELLS: tuple[tuple[str, int, float], ...] = (
    ("convnet", 32, 0.08),
    ("convnet", 64, 0.12),
    ("resnet18", 32, 0.25),
    ("resnet18", 128, 0.55),
)
CONTEXT_VARIANTS = ("none", "bernoulli", "spatial", "dropblock")
#: The variants timed at ResNet-18 batch 128: one per target (``gsnr_subbatch``, cheaper than ``gsnr``, is left out).
BIG_CELL_VARIANTS = tuple(v for v in VARIANTS if target_of(v) is not None and v != "gsnr_subbatch")
BUDGET_S = 240.0
MIN_ROUNDS, MAX_ROUNDS = 3, 40


def cell_key(model: str, batch: int) -> str:
    """The JSON key of a cell, ``model@batch``."""
    return f"{model}@{batch}"


def parse_cell(text: str) -> tuple[str, int]:
    """``"resnet18:128"`` or ``"resnet18@128"`` -> ``("resnet18", 128)``."""
    model, sep, batch = text.replace("@", ":").partition(":")
    if not sep or model not in MODELS or not batch.isdigit() or int(batch) < 2:
        raise ValueError(f"cell must be MODEL:BATCH with MODEL in {list(MODELS)} and BATCH >= 2, got {text!r}")
    return model, int(batch)


def run(
    *,
    device: str = "cpu",
    models: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    cells: Sequence[tuple[str, int]] | None = None,
    budget_s: float | None = None,
    min_rounds: int | None = None,
    max_rounds: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    quick: bool = False,
    memory: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready result (see the module docstring).

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        models: keep only the default cells of these models (or, with ``batch_size``, one cell per model).
        variants: the variants timed (default: all; at ResNet-18 batch 128 the ones with a target).
        cells: explicit ``(model, batch)`` cells, each given an equal share of the budget.
        budget_s: seconds of timed rounds over all cells (default 240; 2 with ``quick``).
        min_rounds, max_rounds: bounds on the rounds of a cell (default 3 and 40; 2 and 3 with ``quick``).
        steps: a fixed number of rounds per cell (sets both bounds).
        batch_size: one batch size for every model.
        quick: tiny models at batch 8 (the CI smoke run).
        memory: measure peak memory on the warm-up step.
    """
    started = time.perf_counter()
    dev = torch.device(device)
    chosen = list(variants) if variants is not None else None
    unknown = [m for m in (models or []) if m not in MODELS] + [v for v in (chosen or []) if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model or variant {unknown}; models: {list(MODELS)}, variants: {list(VARIANTS)}")
    if cells is not None:
        plan = [(m, b, 1.0 / len(cells)) for m, b in cells]
    elif batch_size is not None or quick:
        names = list(models or MODELS)
        plan = [(m, batch_size or 8, 1.0 / len(names)) for m in names]
    else:
        plan = [c for c in CELLS if models is None or c[0] in models]
        total = sum(w for _, _, w in plan)
        plan = [(m, b, w / total) for m, b, w in plan]
    budget_s = budget_s if budget_s is not None else (2.0 if quick else BUDGET_S)
    min_rounds = min_rounds if min_rounds is not None else (2 if quick else MIN_ROUNDS)
    max_rounds = max_rounds if max_rounds is not None else (3 if quick else MAX_ROUNDS)
    if steps is not None:
        min_rounds = max_rounds = steps
    result: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "machine": machine_info(dev),
        "config": {"budget_s": budget_s, "min_rounds": min_rounds, "max_rounds": max_rounds, "quick": quick},
        "load_avg_start": _load(),
        "cells": {},
        "targets": dict(TARGETS),
        "pass": {},
    }
    for model, batch, share in plan:
        if chosen is not None:
            names = chosen
        elif model == "resnet18" and batch >= 128 and not quick:
            names = list(BIG_CELL_VARIANTS)
        else:
            names = ["none", *VARIANTS]
        key = cell_key(model, batch)
        cell = bench_cell(
            model,
            batch,
            names,
            time_box_s=budget_s * share,
            min_rounds=min_rounds,
            max_rounds=max_rounds,
            quick=quick,
            device=dev,
            memory=memory,
        )
        result["cells"][key] = cell
        result["pass"][key] = {v: e["pass"] for v, e in cell["results"].items() if "pass" in e}
    result["load_avg_end"] = _load()
    result["all_pass"] = all(all(p.values()) for p in result["pass"].values())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def _fmt_ratio(entry: dict[str, Any]) -> str:
    if entry["pairs"] == 0:
        return "1 (ref)"
    (q1, q3), (lo, hi) = entry["iqr"], entry["range"]
    verdict = "" if "pass" not in entry else (" pass" if entry["pass"] else " **FAIL**")
    return f"{entry['ratio']:.2f} ({q1:.2f}-{q3:.2f}; {lo:.2f}-{hi:.2f}){verdict}"


def markdown(result: dict[str, Any]) -> str:
    """The docs tables of a result: ratios with their spread, then step times and peak memory per cell."""
    cells = result["cells"]
    keys = list(cells)
    names: list[str] = []
    for cell in cells.values():
        names += [n for n in cell["results"] if n not in names]
    order = [n for n in ("plain", "none", *VARIANTS, "plain_head") if n in names]
    order = [n for n in order if n != "largedrop"] + (["largedrop"] if "largedrop" in order else [])
    head = " | ".join(f"{cells[k]['model']} b{cells[k]['batch']}" for k in keys)
    lines = [
        "Ratio to the reference: median of the interleaved pairs (IQR; min-max).",
        "",
        f"| variant | reference | target | {head} |",
        "|---|---|---|" + "---:|" * len(keys),
    ]
    for name in order:
        ref = next(c["results"][name]["reference"] for c in cells.values() if name in c["results"])
        target = target_of(name)
        row = [_fmt_ratio(cells[k]["results"][name]) if name in cells[k]["results"] else "-" for k in keys]
        label = f"{name} (amortized)" if name == "ydrop" else name
        bound = f"<= {target:.2f}" if target else "-"
        lines.append(f"| {label} | {ref} | {bound} | " + " | ".join(row) + " |")
    lines += ["", "Median step time (ms) / peak MiB.", "", f"| variant | {head} |", "|---|" + "---:|" * len(keys)]
    for name in order:
        row = []
        for k in keys:
            e = cells[k]["results"].get(name)
            row.append(
                "-"
                if e is None
                else f"{e['median_ms']:.1f} / {e['peak_mem_mb'] if e['peak_mem_mb'] is not None else '-'}"
            )
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    rounds = ", ".join(
        f"{cells[k]['model']} b{cells[k]['batch']}: {cells[k]['rounds']} rounds in {cells[k]['wall_s']:.0f} s "
        f"(load {cells[k]['load_avg']['start'][0] if cells[k]['load_avg']['start'] else '?'}"
        f"-{cells[k]['load_avg']['end'][0] if cells[k]['load_avg']['end'] else '?'})"
        for k in keys
    )
    lines += ["", f"Wall time {result['wall_s']:.0f} s; {rounds}; all targets met: {result['all_pass']}."]
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--models", type=_csv, default=None, help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--variants", type=_csv, default=None, help="comma-separated variant names")
    parser.add_argument("--cells", type=_csv, default=None, help="comma-separated MODEL:BATCH cells")
    parser.add_argument("--budget", type=float, default=None, help=f"seconds of timed rounds (default {BUDGET_S:g})")
    parser.add_argument("--min-rounds", type=int, default=None, help=f"per cell (default {MIN_ROUNDS})")
    parser.add_argument("--max-rounds", type=int, default=None, help=f"per cell (default {MAX_ROUNDS})")
    parser.add_argument("--steps", type=int, default=None, help="a fixed number of rounds per cell")
    parser.add_argument("--batch-size", type=int, default=None, help="one cell per model at this batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measure")
    parser.add_argument("--quick", action="store_true", help="tiny models at batch 8, 2-3 rounds (CI smoke run)")
    parser.add_argument("--json", default=None, help="also write the JSON result to this file")
    parser.add_argument("--markdown", action="store_true", help="print the docs tables instead of the JSON")
    parser.add_argument("--from-json", default=None, help="render this saved result (with --markdown); no run")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as fh:
            result = json.load(fh)
    else:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error("--device cuda needs a GPU")
        try:
            cells = [parse_cell(c) for c in args.cells] if args.cells else None
        except ValueError as exc:
            parser.error(f"--cells: {exc}")
        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            result = run(
                device=args.device,
                models=args.models,
                variants=args.variants,
                cells=cells,
                budget_s=args.budget,
                min_rounds=args.min_rounds,
                max_rounds=args.max_rounds,
                steps=args.steps,
                batch_size=args.batch_size,
                quick=args.quick,
                memory=not args.no_memory,
            )
        except ValueError as exc:
            parser.error(str(exc))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=2)
                fh.write("\n")
    if args.markdown:
        sys.stdout.write(markdown(result) + "\n")
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
