"""Everything a search needs before its first trial: Ray, the dataset, the model's sites, the space, the controller."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dropsearch.regularizers.pattern import Site
from dropsearch.search.builtin import build_space
from dropsearch.search.space import SearchSpace
from dropsearch.search.spec import SearchSpec
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import DatasetBundle, load_dataset
from dropsearch.workers.models import build_model, dropout_sites
from dropsearch.workers.ray_owner import init_ray

__all__ = ["InsufficientResourcesError", "PreparedSearch", "ensure_ray", "check_resources", "prepare_search"]


class InsufficientResourcesError(ValueError):
    """A spec asks for more per trial than the Ray cluster has; raised before any trial is queued."""


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = False) -> None:
    """Connect to ``address`` (a running cluster), or start an embedded local Ray when none is running.

    Args:
        address: ``"auto"``, ``"ray://host:10001"`` or ``"host:6379"``; ``None`` starts a local Ray.
        num_cpus: CPUs of an embedded local Ray (default: all cores).
        dashboard: start the dashboard with an embedded local Ray.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    if not dashboard:
        # Nobody reads Ray's Prometheus metrics without a dashboard; not exporting them saves the processes of an
        # embedded Ray about a quarter of their background CPU (measured on 2 cores, see docs/SEARCH.md).
        os.environ.setdefault("RAY_enable_metrics_collection", "0")
    # from a thread that lives as long as the process: Ray's head processes die with the thread that started them
    init_ray(num_cpus=num_cpus, include_dashboard=dashboard, log_to_driver=False)


def _node_capacities() -> list[dict[str, float]]:
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def check_resources(spec: SearchSpec) -> int:
    """Refuse a spec whose single trial cannot fit on the cluster (it would wait forever).

    A one-worker trial must fit on one node; a DDP trial's workers may spread over nodes but each needs a whole
    GPU when GPUs are asked for (nccl runs one rank per GPU).

    Returns:
        How many trials of this spec the cluster can run at once (at least 1): the search runs at most that many
        concurrently, so no slot waits for resources that never come.

    Raises:
        InsufficientResourcesError: naming the resource, what one trial asks for, and what the cluster has.
    """
    res = spec.resources
    workers = res.workers_per_trial
    if workers > 1 and res.gpus_per_trial not in (0, 1):
        raise InsufficientResourcesError(
            f"resources.gpus_per_trial: with workers_per_trial={workers} each DDP worker takes one whole GPU; "
            f"use 0 or 1, got {res.gpus_per_trial:g}"
        )
    nodes = _node_capacities()
    asks = {"CPU": res.cpus_per_trial, "GPU": res.gpus_per_trial}
    fields = {"CPU": "cpus_per_trial", "GPU": "gpus_per_trial"}
    fits = []  # how many workers each node can hold
    for node in nodes:
        per_node = [int(node.get(k, 0.0) / v + 1e-9) for k, v in asks.items() if v > 0]
        fits.append(min(per_node) if per_node else 1_000_000)
    for name, value in asks.items():
        total = sum(node.get(name, 0.0) for node in nodes)
        biggest = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if value * workers > total + 1e-9 or (value > biggest + 1e-9):
            raise InsufficientResourcesError(
                f"resources.{fields[name]}: one trial needs {value * workers:g} {name} ({workers} worker(s) x "
                f"{value:g}) but the Ray cluster has {total:g} (at most {biggest:g} on one node)"
            )
    capacity = sum(fits) // workers
    if workers == 1 and capacity < 1:
        raise InsufficientResourcesError(
            "resources: no single node of the Ray cluster has "
            f"{res.cpus_per_trial:g} CPU and {res.gpus_per_trial:g} GPU at once for one trial"
        )
    return max(1, capacity)


@dataclass
class PreparedSearch:
    """A search ready to run: the dataset (loaded once in the driver), the model's sites and the space.

    ``model_factory`` is set only by ``dropsearch.optimize`` (a model given in-process, never a name from a
    request): the children are built by it instead of the registry's ``spec.model.name``.
    """

    spec: SearchSpec
    bundle: DatasetBundle
    sites: tuple[Site, ...]
    space: SearchSpace
    allowed_roots: tuple[str, ...] = ()
    model_factory: Callable[..., Any] | None = None

    def child_config(self, pattern: dict[str, Any]) -> ChildConfig:
        """The child configuration of one trial of this search."""
        spec = self.spec
        extra = spec.training.model_dump()
        return ChildConfig(
            model=spec.model.name,
            model_params=dict(spec.model.params),
            dataset=spec.dataset.name,
            dataset_params=dict(spec.dataset.params),
            pattern=pattern,
            epochs=spec.budget.epochs_per_trial,
            seed=spec.seed,
            seeds=spec.budget.seeds_per_trial,
            objective=spec.objective.metric,
            allowed_roots=self.allowed_roots,
            **extra,
        )


def prepare_search(spec: SearchSpec, *, allowed_roots: tuple[str, ...] = ()) -> PreparedSearch:
    """Load the dataset, build the model once to list its dropout sites, and generate the restricted space."""
    bundle = load_dataset(
        spec.dataset.name, params=dict(spec.dataset.params), seed=spec.seed, allowed_roots=allowed_roots
    )
    model = build_model(
        spec.model.name, params=dict(spec.model.params), in_shape=bundle.in_shape, num_classes=bundle.num_classes
    )
    sites = tuple(dropout_sites(model))
    space = build_space(sites, variants=spec.space.variants, rates=spec.space.rates, choices=spec.space.choices or None)
    return PreparedSearch(spec=spec, bundle=bundle, sites=sites, space=space, allowed_roots=tuple(allowed_roots))
