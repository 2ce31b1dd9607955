"""Search overhead: dropsearch's actor-pool engine against Ray Tune's defaults on the same children.

16 identical children of about 5 s of real training each (an MLP on the synthetic dataset, one thread), 2 at a
time. The ideal wall time is the total child work divided by the workers, with the child work measured before Ray
starts and again after it stopped (their mean; the machine's speed drifts by a few percent over minutes), in plain
processes: ``concurrent`` children trained at once in as many processes (they share the cores, caches and memory
bandwidth as the search's workers do), so everything Ray and the engine add, including their background
processes' CPU use, counts as overhead. The time of one child trained alone is reported too, with the
overhead against that stricter ideal. Ray is started once, before either engine is timed, as in the service (the
runner keeps Ray up). dropsearch is timed in a cold run (its workers start inside the timed run) and in
``--repeats`` runs in the steady state of a runner (workers kept warm from the previous search,
:class:`dropsearch.workers.pool.WarmPool`); the cold figure and the median of the warm ones are reported.

Prints JSON::

    {"child_s": 4.9, "child_concurrent_s": 5.0, "trials": 16, "concurrent": 2, "ideal_s": 40.0,
     "dropsearch": {"wall_s": ..., "overhead_fraction": ..., "overhead_fraction_vs_alone": ...},
     "tune_defaults": {"wall_s": ..., "overhead_fraction": ...}, "ratio": ...}

Usage: ``python benchmarks/search_overhead.py [--trials 16] [--concurrent 2] [--child-seconds 5] [--quick]``
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

    This is the ideal a search with ``concurrent`` one-thread workers can reach on this machine: the children
    share its cores, caches and memory bandwidth as the search's workers do, with nothing else running. The
    processes import and warm up first, then start each round together (a barrier); the result is the median
    over rounds of the mean child time in the round.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(concurrent), ctx.Queue()
    procs = [ctx.Process(target=_timed_children, args=(epochs, rounds, barrier, results)) for _ in range(concurrent)]
    for proc in procs:
        proc.start()
    times = [results.get(timeout=600) for _ in range(concurrent * rounds)]
    for proc in procs:
        proc.join()
    per_round = [times[i : i + concurrent] for i in range(0, len(times), concurrent)]
    return statistics.median(sum(r) / len(r) for r in per_round)


def run_dropsearch(trials: int, concurrent: int, epochs: int) -> float:
    """Wall time of the search through :func:`dropsearch.workers.run_search` (actor pool)."""
    from dropsearch.search.spec import SearchSpec
    from dropsearch.workers.search_loop import run_search

    spec = SearchSpec.model_validate(
        {
            "model": {"name": "mlp", "params": {"hidden": [256, 256]}},
            "dataset": {"name": "synthetic", "params": {"n": 2000}},
            "space": {"variants": ["none"], "rates": [0.0]},
            "controller": {"name": "random", "batch_size": concurrent},
            "budget": {
                "trials": trials,
                "epochs_per_trial": epochs,
                "max_concurrent": concurrent,
                "early_stopping": "none",
            },
            "training": {"batch_size": 32},
        }
    )
    start = time.perf_counter()
    result = run_search(spec)
    wall = time.perf_counter() - start
    assert len(result.trials) == trials and all(t.status == "succeeded" for t in result.trials)
    return wall


def _tune_child(config: dict[str, Any]) -> None:
    from ray import tune

    from dropsearch.workers.train import ChildTraining

    torch.set_num_threads(1)
    child = ChildTraining(_child_config(config["epochs"]))
    for _ in range(config["epochs"]):
        tune.report(child.run_epoch())


def run_tune_defaults(trials: int, concurrent: int, epochs: int) -> float:
    """Wall time of the same children as Ray Tune trials with Tune's default settings."""
    from ray import tune

    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(_tune_child, {"cpu": 1}),
            param_space={"epochs": epochs},
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        )
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Tune prints tables; stdout is for the JSON report
            results = tuner.fit()
        wall = time.perf_counter() - start
    assert len(results) == trials and not results.errors
    return wall


def main(argv: list[str] | None = None) -> int:
    """Run both engines and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--child-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3, help="warm dropsearch runs; the median is reported")
    parser.add_argument("--quick", action="store_true", help="4 trials of about 1 s, one warm run (CI smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.child_seconds, args.repeats = 4, 1.0, 1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    epochs, child_s = calibrate(args.child_seconds)
    child_together_s = bare_concurrent_seconds(epochs, args.concurrent)
    import ray

    from dropsearch.workers.setup import ensure_ray

    ensure_ray(num_cpus=args.concurrent)  # the embedded Ray of `dropsearch runner` (no dashboard)
    ideal_alone = args.trials * child_s / args.concurrent
    cold = run_dropsearch(args.trials, args.concurrent, epochs)  # workers start inside the timed run
    warm = [run_dropsearch(args.trials, args.concurrent, epochs) for _ in range(max(1, args.repeats))]
    ours = statistics.median(warm)  # the runner's steady state: warm workers
    from dropsearch.workers.pool import warm_pool

    warm_pool().clear()  # idle warm workers hold the CPUs Tune's trials need
    tune_wall = run_tune_defaults(args.trials, args.concurrent, epochs)
    ray.shutdown()
    # the machine's speed drifts by a few percent over minutes: measure the bare children again after the runs
    # and take the ideal from both measurements
    child_before_s, child_after_s = child_together_s, bare_concurrent_seconds(epochs, args.concurrent)
    child_together_s = (child_before_s + child_after_s) / 2
    ideal = args.trials * child_together_s / args.concurrent
    ours_over, tune_over = ours / ideal - 1, tune_wall / ideal - 1
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, ray {ray.__version__}",
        "child_s": round(child_s, 3),
        "child_concurrent_s": round(child_together_s, 3),
        "child_concurrent_before_after_s": [round(child_before_s, 3), round(child_after_s, 3)],
        "epochs_per_child": epochs,
        "trials": args.trials,
        "concurrent": args.concurrent,
        "ideal_s": round(ideal, 2),
        "ideal_alone_s": round(ideal_alone, 2),
        "dropsearch": {
            "wall_s": round(ours, 2),
            "overhead_fraction": round(ours_over, 4),
            "overhead_fraction_vs_alone": round(ours / ideal_alone - 1, 4),
            "runs_overhead_fraction": [round(w / ideal - 1, 4) for w in warm],
        },
        "dropsearch_cold_start": {"wall_s": round(cold, 2), "overhead_fraction": round(cold / ideal - 1, 4)},
        "tune_defaults": {"wall_s": round(tune_wall, 2), "overhead_fraction": round(tune_over, 4)},
        "ratio_tune_to_dropsearch": round(tune_over / ours_over, 2) if ours_over > 0 else None,
        "targets": {"overhead_fraction_max": 0.05, "ratio_min": 3.0},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
