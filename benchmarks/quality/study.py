"""The whole study: baselines, searches, re-training of the best found patterns, transfer to a wider child."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.quality.config import StudySize, baseline_patterns, bernoulli_pattern
from benchmarks.quality.data import STUDY_DATASETS, register_study_datasets
from benchmarks.quality.jobs import Job, JobResult, add_result, run_jobs
from benchmarks.quality.searches import CONTROLLERS, run_one_search
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.setup import ensure_ray

__all__ = ["machine_info", "child_config", "run_study"]


def machine_info() -> dict[str, Any]:
    """Where the study ran: CPU count, load, platform, torch and ray versions."""
    import ray
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def child_config(
    size: StudySize, dataset: str, pattern: dict[str, Any], seed: int, *, pretrain: int = 0, widths: Any = None
) -> ChildConfig:
    """A child of the study: the convnet, ``size.epochs`` epochs in all, Adam 1e-3, ``size.batch_size``."""
    return ChildConfig(
        model="convnet",
        model_params={"widths": list(widths or size.widths)},
        dataset=STUDY_DATASETS[dataset],
        dataset_params=dict(size.datasets[dataset]),
        pattern=pattern,
        epochs=size.epochs - pretrain,
        pretrain_epochs=pretrain,
        batch_size=size.batch_size,
        lr=1e-3,
        optimizer="adam",
        seed=seed,
        objective="val_accuracy",
        device=size.device,
    )


def _entries(results: list[JobResult], patterns: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Group job results by dataset and method: per-seed search-half and final-half accuracy and cost."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        dataset, method, _ = r.key
        add_result(out.setdefault(dataset, {}), method, patterns[(dataset, method)], r, final="final")
    return out


def _train(size: StudySize, plan: list[tuple[str, str, dict[str, Any], int, Any]], refs: dict, log) -> dict:
    """Train ``(dataset, method, pattern, pretrain, widths)`` for every seed of the study."""
    jobs, patterns = [], {}
    for dataset, method, pattern, pretrain, widths in plan:
        patterns[(dataset, method)] = pattern
        for seed in size.seeds:
            config = child_config(size, dataset, pattern, seed, pretrain=pretrain, widths=widths)
            jobs.append(Job((dataset, method, seed), config, refs[dataset]))
    results = run_jobs(jobs, concurrency=size.concurrency, gpus_per_job=size.gpus_per_trial, log=log)
    return _entries(results, patterns)


def _save(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def run_study(size: StudySize, out_json: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study at ``size``; the JSON document is rewritten after every phase (partial results survive)."""
    import ray

    start = time.perf_counter()
    register_study_datasets()
    # Logical CPUs well above the cores: an actor pool killed at the end of a phase (``ray.kill``) can keep its CPUs
    # reserved for minutes, and the next phase's pool would wait for them. The pools themselves cap concurrency.
    ensure_ray(None, num_cpus=max(64, 4 * size.concurrency))
    doc: dict[str, Any] = {"size": size.to_dict(), "machine": machine_info(), "phases": {}, "datasets": {}}
    refs = {d: ray.put(load_dataset(STUDY_DATASETS[d], params=p, seed=0)) for d, p in size.datasets.items()}
    data = doc["datasets"]

    t0 = time.perf_counter()
    plan = [(d, m, p, pre, None) for d in size.datasets for m, (p, pre) in baseline_patterns(size).items()]
    log(f"baselines: {len(plan) * len(size.seeds)} children")
    for dataset, methods in _train(size, plan, refs, log).items():
        bern = {m: e for m, e in methods.items() if m.startswith("bernoulli-")}
        best = max(bern, key=lambda m: statistics.fmean(bern[m]["val"]))
        plain = max(("none", best), key=lambda m: statistics.fmean(methods[m]["val"]))
        data[dataset] = {"baselines": methods, "best_bernoulli": best}
        data[dataset]["threshold"] = statistics.fmean(methods[plain]["val"])
        data[dataset]["threshold_method"] = plain
    doc["phases"]["baselines_s"] = time.perf_counter() - t0
    _save(out_json, doc)

    t0 = time.perf_counter()
    for dataset in size.datasets:
        data[dataset]["searches"] = {}
        for controller in CONTROLLERS:
            runs = []
            for seed in size.search_seeds:
                log(f"search {dataset}/{controller}/seed {seed}: {size.trials} trials")
                runs.append(run_one_search(size, dataset, controller, seed, log=log))
                data[dataset]["searches"][controller] = runs
                _save(out_json, doc)
    doc["phases"]["searches_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = []
    for dataset in size.datasets:
        found = {}
        for controller in CONTROLLERS:
            runs = [r for r in data[dataset]["searches"][controller] if r["best_pattern"] is not None]
            top = max(runs, key=lambda r: r["best_reward"])
            found[controller] = {
                "search_seed": top["seed"],
                "reward": top["best_reward"],
                "pattern": top["best_pattern"],
            }
            plan.append((dataset, f"found-{controller}", top["best_pattern"], 0, None))
        overall = max(CONTROLLERS, key=lambda c: found[c]["reward"])
        data[dataset]["found"] = found
        data[dataset]["best_found"] = overall
        rate = float(data[dataset]["best_bernoulli"].split("-", 1)[1])
        plan.append((dataset, "wider-none", {"variant": "none"}, 0, size.wider))
        plan.append(
            (
                dataset,
                "wider-" + data[dataset]["best_bernoulli"],
                bernoulli_pattern(rate, len(size.wider)),
                0,
                size.wider,
            )
        )
        plan.append((dataset, "wider-found", found[overall]["pattern"], 0, size.wider))
    log(f"re-training and wider transfer: {len(plan) * len(size.seeds)} children")
    for dataset, methods in _train(size, plan, refs, log).items():
        data[dataset]["retrained"] = {m: e for m, e in methods.items() if m.startswith("found-")}
        data[dataset]["wider"] = {m: e for m, e in methods.items() if m.startswith("wider-")}
    doc["phases"]["retrain_s"] = time.perf_counter() - t0
    doc["machine"]["loadavg_end"] = os.getloadavg()
    doc["wall_s"] = time.perf_counter() - start
    _save(out_json, doc)
    return doc
