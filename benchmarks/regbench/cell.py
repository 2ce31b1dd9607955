"""One benchmark cell: a model at a batch size, every variant timed in interleaved rounds against its reference."""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._apply import apply, install_module
from dropsearch.workers.models import build_model

from .config import CONV_RATE, LARGE_RATE, MODELS, REFRESH_EVERY, conv_sites, target_of, variant_pattern
from .memory import peak_memory_mb, state_tensors

__all__ = [
    "REFRESH_TIMING_EVERY",
    "REFRESH_TIMING_MAX_S",
    "Runner",
    "bench_cell",
    "build_base",
    "load_average",
    "timed_round",
]


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


def plain_runner(name: str, base: nn.Module, sites: Sequence[str], p: float, x, y) -> Runner:
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


def variant_runner(variant: str, base: nn.Module, x, y) -> Runner:
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


def build_base(spec: dict[str, Any], quick: bool, device: torch.device) -> nn.Module:
    params = spec["quick"] if quick else spec["params"]
    torch.manual_seed(0)
    return build_model(spec["name"], params=params, in_shape=spec["in_shape"], num_classes=10).to(device)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, quartiles (IQR) and range of ``values``."""
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {
        "ratio": round(statistics.median(ordered), 3),
        "iqr": [round(q1, 3), round(q3, 3)],
        "range": [round(ordered[0], 3), round(ordered[-1], 3)],
        "pairs": len(ordered),
    }


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not on every platform
        return None


#: A Y-Drop refresh is timed in every round while it takes less than this; after a longer one it is timed again
#: only every :data:`REFRESH_TIMING_EVERY` rounds and the pairs in between use the median so far (on ResNet-18 at
#: batch 128 a refresh takes ~15 s and weighs a tenth in the ratio).
REFRESH_TIMING_MAX_S = 1.0
REFRESH_TIMING_EVERY = 3


def timed_round(
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
    """Time every variant (and its reference) on one model and batch size; see ``benchmarks/regularizers.py``.

    Rounds run until ``time_box_s`` is spent (at least ``min_rounds``, at most ``max_rounds``) after one untimed
    warm-up step per model copy (the peak-memory step).
    """
    started = time.perf_counter()
    load_start = load_average()
    spec = MODELS[model_name]
    base = build_base(spec, quick, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, *spec["in_shape"], generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    runners = {"plain": plain_runner("plain", base, conv_sites(base), CONV_RATE, x, y)}
    if "none" in variants:
        runners["none"] = plain_runner("none", base, [], 0.0, x, y)  # no dropout at all, for context
        runners["none"].reference = "plain"
    if "largedrop" in variants:
        runners["plain_head"] = plain_runner("plain_head", base, ["head.drop"], LARGE_RATE, x, y)
    runners.update((v, variant_runner(v, base, x, y)) for v in variants if v != "none")
    peak: dict[str, float] = {}
    for name, runner in runners.items():  # warm-up: one step each, measured for peak memory
        alive = state_tensors(runner.model, runner.optimizer) + [x, y]
        mem = peak_memory_mb(runner.memory_step or runner.step, alive, device) if memory else None
        peak[name] = round(mem, 2) if mem is not None else None
        if runner.refresh is not None:
            runner.refresh()
    timed = [n for n, r in runners.items() if r.reference is not None]
    ratios: dict[str, list[float]] = {n: [] for n in timed}
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - started < time_box_s):
        shift = rounds % len(timed)
        for name, ratio in timed_round(runners, timed[shift:] + timed[:shift], device, rounds).items():
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
            entry.update(spread(ratios[name]))
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
        "load_avg": {"start": load_start, "end": load_average()},
        "results": results,
    }
