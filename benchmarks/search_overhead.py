"""Search overhead: dropsearch's actor-pool engine against Ray Tune's defaults on the same children.

16 identical children of about 5 s of real training each (an MLP on the synthetic dataset, one thread), 2 at a
time. The ideal wall time is the total child work divided by the workers, with the child work measured in this
process before Ray starts (so everything Ray adds, including its background processes' CPU use, counts as
overhead). Ray is started once, before either engine is timed, as in the service (the runner keeps Ray up).
dropsearch is timed twice: a cold run (its workers start inside the timed run) and the steady state of a runner
(workers kept warm from the previous search, :class:`dropsearch.workers.pool.WarmPool`); both are reported.

Prints JSON::

    {"child_s": 5.0, "trials": 16, "concurrent": 2, "ideal_s": 40.0,
     "dropsearch": {"wall_s": ..., "overhead_fraction": ...},
     "tune_defaults": {"wall_s": ..., "overhead_fraction": ...}, "ratio": ...}

Usage: ``python benchmarks/search_overhead.py [--trials 16] [--concurrent 2] [--child-seconds 5] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
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


def calibrate(target_s: float) -> tuple[int, float]:
    """Epochs that make one child last about ``target_s`` seconds, and that child's measured time."""
    per_epoch = bare_child_seconds(2) / 2
    epochs = max(1, round(target_s / per_epoch))
    return epochs, bare_child_seconds(epochs)


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
    parser.add_argument("--quick", action="store_true", help="4 trials of about 1 s (CI smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.child_seconds = 4, 1.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    epochs, child_s = calibrate(args.child_seconds)
    import ray

    ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False)
    ideal = args.trials * child_s / args.concurrent
    cold = run_dropsearch(args.trials, args.concurrent, epochs)  # workers start inside the timed run
    ours = run_dropsearch(args.trials, args.concurrent, epochs)  # the runner's steady state: warm workers
    from dropsearch.workers.pool import warm_pool

    warm_pool().clear()  # idle warm workers hold the CPUs Tune's trials need
    tune_wall = run_tune_defaults(args.trials, args.concurrent, epochs)
    ray.shutdown()
    ours_over, tune_over = ours / ideal - 1, tune_wall / ideal - 1
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, ray {ray.__version__}",
        "child_s": round(child_s, 3),
        "epochs_per_child": epochs,
        "trials": args.trials,
        "concurrent": args.concurrent,
        "ideal_s": round(ideal, 2),
        "dropsearch": {"wall_s": round(ours, 2), "overhead_fraction": round(ours_over, 4)},
        "dropsearch_cold_start": {"wall_s": round(cold, 2), "overhead_fraction": round(cold / ideal - 1, 4)},
        "tune_defaults": {"wall_s": round(tune_wall, 2), "overhead_fraction": round(tune_over, 4)},
        "ratio_tune_to_dropsearch": round(tune_over / ours_over, 2) if ours_over > 0 else None,
        "targets": {"overhead_fraction_max": 0.05, "ratio_min": 3.0},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
