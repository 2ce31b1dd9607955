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
refresh so far. Peak memory (the warm-up step; a refresh step for Y-Drop): on CUDA
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on the CPU (where torch keeps no allocator
statistics) the peak of live tensor storage bytes (parameters, gradients, optimizer state, the batch,
activations, temporaries and caches built during the step) counted by ``regbench.memory.LiveStorageTracker``, a
``TorchDispatchMode`` that sees every storage an aten op returns and when it is
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
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # its parts, however this script is loaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from regbench.cell import Runner, bench_cell, load_average, timed_round  # noqa: E402
from regbench.config import (  # noqa: E402
    BIG_CELL_VARIANTS,
    BUDGET_S,
    CELLS,
    MAX_ROUNDS,
    MIN_ROUNDS,
    MODELS,
    REFRESH_EVERY,
    TARGETS,
    VARIANTS,
    variant_pattern,
)
from regbench.report import markdown  # noqa: E402

__all__ = [
    "MODELS",
    "REFRESH_EVERY",
    "Runner",
    "TARGETS",
    "VARIANTS",
    "machine_info",
    "main",
    "markdown",
    "run",
    "timed_round",
    "variant_pattern",
]


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
        "load_avg_start": load_average(),
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
    result["load_avg_end"] = load_average()
    result["all_pass"] = all(all(p.values()) for p in result["pass"].values())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


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
