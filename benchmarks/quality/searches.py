"""Random search and REINFORCE over the full space, through the service's engine (one Ray Tune experiment each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.quality.config import SEARCH_VARIANTS, StudySize
from benchmarks.quality.data import STUDY_DATASETS
from dropsearch.runner.engine import run_search
from dropsearch.runner.events import SearchCallbacks, TrialFinished, TrialStarted
from dropsearch.search.builtin import DEFAULT_RATES
from dropsearch.search.spec import DatasetRef, SearchSpec

__all__ = ["CONTROLLERS", "search_spec", "run_one_search"]

CONTROLLERS = ("reinforce", "random")


def search_spec(size: StudySize, dataset: str, controller: str, seed: int) -> SearchSpec:
    """The job spec of one search of the study (same child and training budget as the baselines).

    The spec's catalog check knows built-in and entry-point datasets only, not the study's in-process ones, so the
    spec is validated with a built-in dataset name and the study's dataset is set afterwards.
    """
    spec = SearchSpec.model_validate(
        {
            "name": f"quality-{dataset}-{controller}-{seed}",
            "model": {"name": "convnet", "params": {"widths": list(size.widths)}},
            "dataset": {"name": "digits"},
            "space": {"variants": list(SEARCH_VARIANTS), "rates": list(DEFAULT_RATES)},
            "controller": {"name": controller, "batch_size": size.batch, **size.controller},
            "budget": {
                "trials": size.trials,
                "epochs_per_trial": size.epochs,
                "max_concurrent": min(size.concurrency, size.trials),
                "early_stopping": size.early_stopping,
            },
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": size.gpus_per_trial},
            "objective": {"metric": "val_accuracy", "mode": "max"},
            "training": {"batch_size": size.batch_size, "lr": 1e-3, "optimizer": "adam", "device": size.device},
            "validation": {"enabled": False},  # the study re-trains the found patterns itself
            "seed": seed,
        }
    )
    spec.dataset = DatasetRef.model_construct(name=STUDY_DATASETS[dataset], params=dict(size.datasets[dataset]))
    return spec


def run_one_search(
    size: StudySize, dataset: str, controller: str, seed: int, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run one search; returns its trials (in index order), best pattern and cost."""
    patterns: dict[int, dict[str, Any]] = {}
    finished: list[TrialFinished] = []

    def started(event: TrialStarted) -> None:
        patterns[event.index] = event.pattern

    def ended(event: TrialFinished) -> None:
        finished.append(event)
        variant = patterns.get(event.index, {}).get("variant")
        reward = "failed" if event.reward is None else f"{event.reward:.4f}"
        log(f"  {dataset}/{controller}/{seed} trial {event.index}: {variant} reward {reward} ({event.wall_s:.1f} s)")

    spec = search_spec(size, dataset, controller, seed)
    result = run_search(spec, callbacks=SearchCallbacks(on_trial_started=started, on_trial_finished=ended))
    trials = []
    for event in sorted(finished, key=lambda e: e.index):
        last = event.metrics[-1] if event.metrics else {}
        trials.append(
            {
                "index": event.index,
                "status": event.status,
                "reward": event.reward,
                "final_accuracy": last.get("heldout_accuracy"),
                "epochs": len(event.metrics),
                "wall_s": event.wall_s,
                "variant": patterns.get(event.index, {}).get("variant"),
                "pattern": patterns.get(event.index),
            }
        )
    return {
        "seed": seed,
        "status": result.status,
        "trials": trials,
        "best_index": result.best_index,
        "best_reward": result.best_reward,
        "best_pattern": result.best_pattern,
        "updates": result.updates,
        "wall_s": result.wall_s,
        "child_epochs": sum(t["epochs"] for t in trials),
    }
