"""Search overhead: the engine (one Ray Tune experiment per search) against bare children on the same machine.

16 identical children of real training each (an MLP on the synthetic dataset, one thread), 2 at a time, through
:func:`dropsearch.runner.engine.run_search` (random controller, no early stopping, no validation stage). The
ideal wall time is the total child work divided by the workers, with the child work measured before Ray starts
and again after it stopped (their mean; the machine's speed drifts by a few percent over minutes), in plain
processes: ``concurrent`` children trained at once in as many processes (they share the cores, caches and memory
bandwidth as the search's trials do), so everything Ray, Tune and the engine add, including their background
processes' CPU use, counts as overhead. The time of one child trained alone is reported too, with the overhead
against that stricter ideal.

Targets (warm overhead): short row at most 10 %, long row at most 2 %. Each row is one child length: ``short``
(children of about ``--child-seconds``, default 5 s: epochs of ~40 ms,
grouped into about one Tune report a second) and, with ``--long``, ``long`` (about ``--long-child-seconds``,
default 60 s). Per row the search runs once *cold* (Ray is not running: ``ray.init`` is inside the timed run,
as for the first search of a freshly started runner; ``ray_start_s`` says how much of it Ray's start took) and
``--repeats`` times *warm* (Ray already started, as the runner keeps it; each search still starts its own trial
processes); the figure is the median of the warm runs. Ray is stopped between rows.

Prints JSON::

    {"machine": "...", "trials": 16, "concurrent": 2, "targets": {"overhead_fraction_max": {"short": 0.1, ...}},
     "rows": {"short": {"child_s": 4.9, "child_concurrent_s": 5.0, "epochs_per_child": 118, "ideal_s": 40.0,
                        "warm": {"wall_s": ..., "overhead_fraction": ..., "runs_overhead_fraction": [...]},
                        "cold": {"wall_s": ..., "overhead_fraction": ..., "ray_start_s": ...}, ...},
              "long": {...}}}

How long it takes (2 cores): the short row about 4 minutes (16 x 5 s / 2 = 40 s per search, 4 searches, plus
the bare children: calibration and 3 rounds before and after); ``--long`` adds about 12 minutes (16 x 60 s / 2 =
8 minutes for its one warm search, no cold one, plus about 4 minutes of bare children, one round before and after;
``--long-repeats`` and ``--long-rounds`` add more). ``--quick`` (the CI smoke run) takes
about a minute: 4 trials of about 1 s, one warm run, and with ``--long`` a "long" row of 2 s children.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/search_overhead.py [--long] [--trials 16] [--concurrent 2]
[--child-seconds 5] [--long-child-seconds 60] [--repeats 3] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

import torch

#: The targets per row: a warm search's wall time at most this fraction over the ideal.
OVERHEAD_FRACTION_MAX = {"short": 0.10, "long": 0.02}


def _child_config(epochs: int) -> Any:
    from dropsearch.workers.child import ChildConfig

    return ChildConfig(
        model="mlp",
        model_params={"hidden": [256, 256]},
        dataset="synthetic",
        dataset_params={"n": 2000},
        pattern={"variant": "none"},
        epochs=epochs,
        batch_size=32,
    )


def bare_child_seconds(epochs: int) -> float:
    """Wall time of one child trained in this process (one thread), after a warm-up child."""
    from dropsearch.workers.train import train_child

    torch.set_num_threads(1)
    train_child(_child_config(1), report=lambda m: None)
    start = time.perf_counter()
    train_child(_child_config(epochs), report=lambda m: None)
    return time.perf_counter() - start


def calibrate(target_s: float, rounds: int = 3) -> tuple[int, float]:
    """Epochs that make one child last about ``target_s`` seconds, and that child's median time over ``rounds``."""
    per_epoch = bare_child_seconds(2) / 2
    epochs = max(1, round(target_s / per_epoch))
    return epochs, statistics.median(bare_child_seconds(epochs) for _ in range(rounds))


def _timed_children(epochs: int, rounds: int, barrier: Any, results: Any) -> None:
    """One process of :func:`bare_concurrent_seconds`: warm up, then ``rounds`` children started in lockstep."""
    bare_child_seconds(1)  # imports and first-call costs before the first barrier
    for _ in range(rounds):
        barrier.wait()
        results.put(bare_child_seconds(epochs))


def bare_concurrent_seconds(epochs: int, concurrent: int, rounds: int = 3) -> float:
    """Time of one child when ``concurrent`` children train at once in as many plain processes (no Ray).

    This is the ideal a search with ``concurrent`` one-thread trials can reach on this machine: the children
    share its cores, caches and memory bandwidth as the search's trials do, with nothing else running. The
    processes import and warm up first, then start each round together (a barrier); the result is the median
    over rounds of the mean child time in the round.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(concurrent), ctx.Queue()
    procs = [ctx.Process(target=_timed_children, args=(epochs, rounds, barrier, results)) for _ in range(concurrent)]
    for proc in procs:
        proc.start()
    times = [results.get(timeout=3600) for _ in range(concurrent * rounds)]
    for proc in procs:
        proc.join()
    per_round = [times[i : i + concurrent] for i in range(0, len(times), concurrent)]
    return statistics.median(sum(r) / len(r) for r in per_round)


def search_spec(trials: int, concurrent: int, epochs: int) -> Any:
    """The benchmark's search: ``trials`` identical children, ``concurrent`` at once, every epoch trained."""
    from dropsearch.search.spec import SearchSpec

    return SearchSpec.model_validate(
        {
            "model": {"name": "mlp", "params": {"hidden": [256, 256]}},
            "dataset": {"name": "synthetic", "params": {"n": 2000}},
            "space": {"variants": ["none"], "rates": [0.0]},
            "controller": {"name": "random", "batch_size": concurrent},
            "budget": {
                "trials": trials,
                "max_concurrent": concurrent,
                "epochs_per_trial": epochs,
                "early_stopping": "none",
            },
            "training": {"batch_size": 32},
            "validation": {"enabled": False},
        }
    )


def run_engine(trials: int, concurrent: int, epochs: int) -> float:
    """Wall time of one search through :func:`dropsearch.runner.engine.run_search` (Ray must be running)."""
    from dropsearch.runner.engine import run_search

    spec = search_spec(trials, concurrent, epochs)
    with tempfile.TemporaryDirectory(prefix="dropsearch-overhead-") as storage:
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON report
            result = run_search(spec, storage_path=storage)
        wall = time.perf_counter() - start
    statuses = [t.status for t in result.trials]
    if len(statuses) != trials or set(statuses) != {"succeeded"}:
        raise RuntimeError(f"the search did not train {trials} children to the end: {statuses}")
    return wall


def _overhead(wall: float, ideal: float) -> float:
    return round(wall / ideal - 1, 4)


def measure_row(
    trials: int,
    concurrent: int,
    child_seconds: float,
    repeats: int,
    rounds: int,
    *,
    target: float,
    cold_run: bool = True,
) -> dict[str, Any]:
    """One row: calibrate the child, measure the ideal, run the search cold (``cold_run``), then warm ``repeats``."""
    import ray

    from dropsearch.workers.setup import ensure_ray

    if ray.is_initialized():
        ray.shutdown()
    epochs, child_s = calibrate(child_seconds, rounds)
    child_before_s = bare_concurrent_seconds(epochs, concurrent, rounds)
    start = time.perf_counter()
    ensure_ray(num_cpus=concurrent)  # the embedded Ray of `dropsearch runner` (no dashboard)
    ray_start_s = time.perf_counter() - start
    cold = ray_start_s + run_engine(trials, concurrent, epochs) if cold_run else None
    warm = [run_engine(trials, concurrent, epochs) for _ in range(max(1, repeats))]
    ray.shutdown()
    # the machine's speed drifts by a few percent over minutes: measure the bare children again after the runs
    # and take the ideal from both measurements
    child_after_s = bare_concurrent_seconds(epochs, concurrent, rounds)
    child_together_s = (child_before_s + child_after_s) / 2
    ideal = trials * child_together_s / concurrent
    ideal_alone = trials * child_s / concurrent
    ours = statistics.median(warm)
    return {
        "child_seconds_target": child_seconds,
        "child_s": round(child_s, 3),
        "child_concurrent_s": round(child_together_s, 3),
        "child_concurrent_before_after_s": [round(child_before_s, 3), round(child_after_s, 3)],
        "epochs_per_child": epochs,
        "ideal_s": round(ideal, 2),
        "ideal_alone_s": round(ideal_alone, 2),
        "warm": {
            "wall_s": round(ours, 2),
            "overhead_fraction": _overhead(ours, ideal),
            "overhead_fraction_vs_alone": _overhead(ours, ideal_alone),
            "runs_wall_s": [round(w, 2) for w in warm],
            "runs_overhead_fraction": [_overhead(w, ideal) for w in warm],
        },
        "cold": None
        if cold is None
        else {
            "wall_s": round(cold, 2),
            "overhead_fraction": _overhead(cold, ideal),
            "ray_start_s": round(ray_start_s, 2),
        },
        "target_overhead_fraction_max": target,
        "pass": ours / ideal - 1 <= target,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure the rows and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--child-seconds", type=float, default=5.0, help="the short row's child length")
    parser.add_argument("--long", action="store_true", help="add the row of long children (about 20 minutes)")
    parser.add_argument("--only-long", action="store_true", help="measure the long row only")
    parser.add_argument("--long-child-seconds", type=float, default=60.0, help="the long row's child length")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per row; the median is reported")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare children before and after")
    parser.add_argument("--long-repeats", type=int, default=1, help="warm runs of the long row")
    parser.add_argument("--long-rounds", type=int, default=1, help="rounds of bare long children before and after")
    parser.add_argument("--quick", action="store_true", help="4 trials of about 1 s (long: 2 s), one warm run")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.child_seconds, args.long_child_seconds, args.repeats, args.rounds = 4, 1.0, 2.0, 1, 1
        args.long_repeats = args.long_rounds = 1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = time.perf_counter()
    rows = {}
    if not args.only_long:
        rows["short"] = measure_row(
            args.trials,
            args.concurrent,
            args.child_seconds,
            args.repeats,
            args.rounds,
            target=OVERHEAD_FRACTION_MAX["short"],
        )
    if args.long or args.only_long:  # 16 x 60 s children: one warm run, no cold one (the short row reports it)
        rows["long"] = measure_row(
            args.trials,
            args.concurrent,
            args.long_child_seconds,
            args.long_repeats,
            args.long_rounds,
            target=OVERHEAD_FRACTION_MAX["long"],
            cold_run=False,
        )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, ray {ray.__version__}",
        "trials": args.trials,
        "concurrent": args.concurrent,
        "repeats": args.repeats,
        "targets": {"overhead_fraction_max": OVERHEAD_FRACTION_MAX},
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
