"""The MNIST-1D study: a search submitted over HTTP to the real service, then re-trained on fresh seeds and tested.

1. Each controller's search (default: REINFORCE only, the spec default) is submitted to an in-process service
   (:mod:`benchmarks.quality.service`: SQLite store, runner, local Ray, uvicorn) with the spec's defaults for the
   controller settings and the validation stage; ``/best`` gives the validated pattern and its table.
2. Re-training with ``size.test_seeds`` (new seeds, never used by the search or its validation stage) on the
   search's own train / validation split (3200 / 800 of the 4000 training examples, split by the search's seed):
   the validated best, the raw top search trial (the pattern ``/best`` would return without the stage), no
   dropout, and plain dropout at every grid rate. Every child is evaluated once on the 1000 MNIST-1D *test*
   examples after its last epoch; no choice reads them. The grid's best rate is chosen on the validation split
   (mean validation accuracy over the same re-training seeds).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.quality.jobs import Job, JobResult, add_result, run_jobs
from benchmarks.quality.service import local_service, run_service_search

__all__ = ["Mnist1dSize", "MNIST1D_SIZES", "search_spec", "run_mnist1d_study"]

#: First store index of validation runs (``dropsearch.store.trials.VALIDATION_INDEX_BASE``).
_VALIDATION_INDEX_BASE = 1_000_000
_DOC_KEYS = ("provenance", "validation")


@dataclass(frozen=True)
class Mnist1dSize:
    """How big the MNIST-1D study is.

    Args:
        name: ``tiny`` (CI) or ``default`` (2 CPU cores, about half an hour).
        hidden: hidden widths of the ``mlp`` child.
        dataset_params: ``mnist1d`` params (e.g. ``n_train`` for a smaller, faster CI run).
        epochs, batch_size, lr: training of every child (Adam).
        trials, max_concurrent, early_stopping, grace_epochs: the search budget (``grace_epochs``: ASHA's first
            rung; rungs at 15, 30 and 60 of the 60 epochs by default).
        variants, rates: the search space (``autodropout`` offers no pattern for the MLP's linear and features
            sites, so it is not listed).
        search_seed: the searches' ``seed`` (their split, their children's seed, the validation seeds).
        test_seeds: the re-training seeds, new and paired across methods.
        grid: plain-dropout rates of the grid baseline.
        validation: the spec's ``validation`` section; ``None`` keeps the service default.
        controllers: one search each, in this order.
    """

    name: str
    hidden: tuple[int, ...] = (512, 512)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 60
    batch_size: int = 100
    lr: float = 1e-3
    trials: int = 32
    max_concurrent: int = 2
    early_stopping: str = "asha"
    grace_epochs: int | None = 15
    variants: tuple[str, ...] = ("bernoulli", "gsnr", "ydrop")
    rates: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)
    search_seed: int = 1
    test_seeds: tuple[int, ...] = (20000, 20001, 20002, 20003, 20004)
    grid: tuple[float, ...] = (0.1, 0.3, 0.5)
    validation: dict[str, Any] | None = None
    controllers: tuple[str, ...] = ("reinforce",)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


MNIST1D_SIZES: dict[str, Mnist1dSize] = {
    "default": Mnist1dSize(name="default"),
    "tiny": Mnist1dSize(
        name="tiny",
        hidden=(16, 16),
        dataset_params={"n_train": 400},
        epochs=2,
        trials=4,
        grace_epochs=None,
        test_seeds=(20000, 20001),
        grid=(0.1, 0.5),
        validation={"top_k": 1, "seeds": 2},
    ),
}


def search_spec(size: Mnist1dSize, controller: str) -> dict[str, Any]:
    """The JSON job spec of one search (controller settings and validation stage left at their defaults)."""
    spec: dict[str, Any] = {
        "name": f"quality-mnist1d-mlp-{controller}",
        "model": {"name": "mlp", "params": {"hidden": list(size.hidden)}},
        "dataset": {"name": "mnist1d", "params": dict(size.dataset_params)},
        "space": {"variants": list(size.variants), "rates": list(size.rates)},
        "controller": {"name": controller},
        "budget": {
            "trials": size.trials,
            "epochs_per_trial": size.epochs,
            "max_concurrent": size.max_concurrent,
            "early_stopping": size.early_stopping,
            **({"grace_epochs": size.grace_epochs} if size.grace_epochs is not None else {}),
        },
        "resources": {"cpus_per_trial": 1},
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "training": {"batch_size": size.batch_size, "lr": size.lr, "optimizer": "adam", "device": "cpu"},
        "seed": size.search_seed,
    }
    if size.validation is not None:
        spec["validation"] = dict(size.validation)
    return spec


def _pattern(document: dict[str, Any]) -> dict[str, Any]:
    """A ``/best`` document or a stored pattern without its provenance and validation table."""
    return {k: v for k, v in document.items() if k not in _DOC_KEYS}


def _search_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the study keeps of a search: its trials, validation runs, top trial and validated best."""
    search = [t for t in result["trials"] if t["index"] < _VALIDATION_INDEX_BASE]
    runs = [t for t in result["trials"] if t["index"] >= _VALIDATION_INDEX_BASE]
    keep = ("index", "status", "reward", "wall_s", "pattern")
    trials = [{**{k: t[k] for k in keep}, "epochs": len(t["metrics"])} for t in search]
    rated = [t for t in trials if t["reward"] is not None]
    top = max(rated, key=lambda t: t["reward"]) if rated else None
    best = result["best"]
    return {
        "id": result["id"],
        "status": result["status"],
        "wall_s": result["wall_s"],
        "trials": trials,
        "validation_runs": [{k: t[k] for k in ("index", "status", "reward", "wall_s")} for t in runs],
        "child_epochs": sum(t["epochs"] for t in trials) + sum(len(t["metrics"]) for t in runs),
        "top": top,
        "best": best,
        "validation": None if best is None else best.get("validation"),
    }


def _plan(size: Mnist1dSize, runs: dict[str, dict[str, Any]], sites: Any, done: set[str]) -> dict[str, dict]:
    """Method name -> pattern to re-train: baselines, then each search's validated best and raw top trial.

    A pattern already planned (same :func:`pattern_key`) is not trained twice: the later name becomes an alias.
    """
    from dropsearch.search.validation import baseline_pattern, pattern_key

    methods: dict[str, dict[str, Any]] = {"none": {"variant": "none"}}
    for rate in size.grid:
        methods[f"bernoulli-{rate:g}"] = baseline_pattern({"variant": "bernoulli", "rate": rate}, sites)
    for controller, run in runs.items():
        if run["best"] is not None:
            methods[f"validated-{controller}"] = _pattern(run["best"])
        if run["top"] is not None:
            methods[f"top-{controller}"] = _pattern(run["top"]["pattern"])
    planned: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    for name, pattern in methods.items():
        key = pattern_key(pattern)
        planned[name] = {"pattern": pattern, "same_as": keys.get(key)}
        keys.setdefault(key, name)
    return {name: p for name, p in planned.items() if name not in done}


def _entries(results: list[JobResult], patterns: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        add_result(out, r.key[1], patterns[r.key[1]], r, final="test")
    return out


def _retrain(size: Mnist1dSize, prepared: Any, bundle_ref: Any, plan: dict[str, dict], log) -> dict[str, Any]:
    """Train every planned pattern (aliases excepted) with every test seed; evaluate each on the test split."""
    jobs, patterns = [], {}
    for name, item in plan.items():
        if item["same_as"] is not None:
            continue
        patterns[name] = item["pattern"]
        for seed in size.test_seeds:
            config = replace(prepared.child_config(item["pattern"]), seed=seed, seeds=1)
            jobs.append(Job(("mnist1d", name, seed), config, bundle_ref, test=True))
    log(f"re-training {len(patterns)} patterns x {len(size.test_seeds)} seeds = {len(jobs)} children")
    entries = _entries(run_jobs(jobs, concurrency=size.max_concurrent, log=log), patterns) if jobs else {}
    for name, item in plan.items():
        if item["same_as"] is not None:
            entries[name] = {"same_as": item["same_as"]}
    return entries


def _save(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(path)


def _best_grid(methods: dict[str, Any]) -> str:
    grid = {m: e for m, e in methods.items() if m.startswith("bernoulli-") and "val" in e}
    return max(grid, key=lambda m: statistics.fmean(grid[m]["val"]))


def reusable_baselines(size: Mnist1dSize, earlier: dict[str, Any]) -> dict[str, Any]:
    """The baselines (no dropout, grid rates) of an earlier run with the same child, split and test seeds.

    Raises:
        ValueError: naming the first setting that differs (the re-trainings would not be paired).
    """
    mine, theirs = size.to_dict(), earlier["size"]
    for key in ("hidden", "dataset_params", "epochs", "batch_size", "lr", "search_seed", "test_seeds", "grid"):
        if json.loads(json.dumps(mine[key])) != theirs[key]:
            raise ValueError(f"cannot reuse the baselines: {key} differs ({theirs[key]} there, {mine[key]} here)")
    names = ["none", *(f"bernoulli-{rate:g}" for rate in size.grid)]
    return {name: earlier["methods"][name] for name in names}


def run_mnist1d_study(
    size: Mnist1dSize,
    out_json: Path,
    workdir: Path,
    *,
    log: Callable[[str], None] = print,
    baselines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the study; the JSON document is rewritten after every phase (partial results survive).

    ``baselines``: already trained baselines (:func:`reusable_baselines`), not trained again.
    """
    import ray

    from benchmarks.quality.study import machine_info
    from dropsearch.search.spec import SearchSpec
    from dropsearch.workers.setup import ensure_ray, prepare_search

    start = time.perf_counter()
    # Logical CPUs above the cores: a killed actor pool may keep its CPUs reserved for a while (see study.py);
    # max_concurrent and the pools cap the real concurrency.
    ensure_ray(None, num_cpus=64)
    doc: dict[str, Any] = {"study": "mnist1d", "size": size.to_dict(), "machine": machine_info(), "phases": {}}
    doc["searches"], doc["methods"], doc["specs"] = {}, dict(baselines or {}), {}
    doc["reused_baselines"] = sorted(baselines or {})
    prepared = prepare_search(SearchSpec.model_validate(search_spec(size, size.controllers[0])))
    bundle_ref = ray.put(prepared.bundle)
    doc["split"] = {
        "train": len(prepared.bundle.y_train),
        "validation": len(prepared.bundle.y_val),
        "test": len(prepared.bundle.y_test),
        "split_seed": size.search_seed,
    }
    with local_service(workdir) as client:
        for controller in size.controllers:
            t0 = time.perf_counter()
            spec = search_spec(size, controller)
            doc["specs"][controller] = spec
            log(f"search {controller}: {size.trials} trials of up to {size.epochs} epochs over HTTP")
            doc["searches"][controller] = _search_summary(run_service_search(client, spec, log=log))
            doc["phases"][f"search_{controller}_s"] = time.perf_counter() - t0
            doc["machine"][f"loadavg_after_search_{controller}"] = os.getloadavg()
            _save(out_json, doc)

            t0 = time.perf_counter()
            plan = _plan(size, doc["searches"], prepared.sites, set(doc["methods"]))
            doc["methods"].update(_retrain(size, prepared, bundle_ref, plan, log))
            doc["best_grid"] = _best_grid(doc["methods"])
            doc["phases"][f"retrain_{controller}_s"] = time.perf_counter() - t0
            doc["machine"][f"loadavg_after_retrain_{controller}"] = os.getloadavg()
            doc["wall_s"] = time.perf_counter() - start
            _save(out_json, doc)
    doc["machine"]["loadavg_end"] = os.getloadavg()
    doc["wall_s"] = time.perf_counter() - start
    _save(out_json, doc)
    return doc
