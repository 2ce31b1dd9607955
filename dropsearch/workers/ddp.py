"""Children with more than one worker: a Ray Train ``TorchTrainer`` (gloo on CPU, nccl on GPU) per child.

Each Train worker builds the same child (same seed, so the same initial weights), trains on its own shard of
every batch, and reports once per epoch from rank 0. Variants with a plain training step run under
``DistributedDataParallel``; variants whose step helper runs extra passes on the model itself (GSNR, GradAug,
Y-Drop refresh) keep the bare model and average gradients with one ``all_reduce`` per parameter before the
optimizer step, which is the same data-parallel update without DDP's bucketing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = ["AllReduceOptimizer", "ddp_train_loop", "run_ddp_child"]


class AllReduceOptimizer:
    """Wraps an optimizer so that ``step()`` first averages every gradient across the process group."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forward to the wrapped optimizer."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """All-reduce (mean) the gradients, then step the wrapped optimizer."""
        world = dist.get_world_size()
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                    param.grad.div_(world)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the wrapped optimizer's state."""
        self.optimizer.load_state_dict(state)


def ddp_train_loop(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs: one child, sharded batches, a report per epoch."""
    from dataclasses import replace

    import ray.train
    import ray.train.torch

    from dropsearch.workers.child import ChildConfig
    from dropsearch.workers.train import ChildTraining

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    config = ChildConfig.from_dict(loop_config["child"])
    child = ChildTraining(replace(config, seeds=1), device=str(device))  # a data-parallel child trains one seed
    child.data.shard(rank, world)
    ddp_model, synced = None, None
    reports = loop_config.get("reports")  # a ray.util.queue.Queue: the pool worker relays each epoch at once
    for _ in range(child.config.epochs):
        if child.applied is not synced:  # first epoch, and again when the pattern is installed after pre-training
            synced = child.applied
            if synced.helper is None:  # plain step: one DDP wrapper of the model, kept across the phases
                if ddp_model is None:
                    ddp_model = torch.nn.parallel.DistributedDataParallel(
                        child.model, device_ids=[device.index] if device.type == "cuda" else None
                    )
                synced.model = ddp_model
            elif not isinstance(child.optimizer, AllReduceOptimizer):
                child.optimizer = AllReduceOptimizer(child.optimizer)  # type: ignore[assignment]
        metrics = child.run_epoch()
        metrics["workers"] = world
        if reports is not None and rank == 0:
            reports.put(metrics)
        ray.train.report(metrics)


def run_ddp_child(
    child: dict[str, Any],
    *,
    reports: Any = None,
    num_workers: int,
    use_gpu: bool,
    cpus_per_worker: float = 1.0,
    callbacks: list[Any] | None = None,
    storage_path: str | None = None,
    name: str | None = None,
    placement_group_cleaner: bool = True,
) -> Any:
    """Train one child with ``num_workers`` Ray Train workers and return the trainer's ``Result``.

    Args:
        child: ``ChildConfig.to_dict()``.
        reports: optional ``ray.util.queue.Queue`` that rank 0 puts each epoch's metrics into.
        num_workers: data-parallel workers.
        use_gpu: one GPU per worker (nccl) instead of CPU (gloo).
        cpus_per_worker: CPUs reserved per worker.
        callbacks: Ray Train ``UserCallback``s (e.g. Tune's ``TuneReportCallback`` inside a Tune trial).
        storage_path: where Ray Train keeps its run directory.
        name: the run's name.
        placement_group_cleaner: keep Ray Train's detached ``PlacementGroupCleaner`` actor, which removes the
            workers' placement group if the trainer's controller dies. It asks the dashboard's state API whether
            the controller lives and never exits when that API does not answer (no dashboard), so a caller that
            removes the placement group itself (:mod:`dropsearch.runner.ddp_cleanup`) turns it off.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer_cls = TorchTrainer if placement_group_cleaner else _without_cleaner(TorchTrainer)
    trainer = trainer_cls(
        ddp_train_loop,
        train_loop_config={"child": child, "reports": reports},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=RunConfig(callbacks=callbacks or [], storage_path=storage_path, name=name),
    )
    return trainer.fit()


def _without_cleaner(trainer_cls: type) -> type:
    """``trainer_cls`` without Ray Train's ``PlacementGroupCleanerCallback`` among its default callbacks."""
    if not hasattr(trainer_cls, "_create_default_callbacks"):  # Ray Train v1: no cleaner
        return trainer_cls

    class TrainerWithoutCleaner(trainer_cls):  # type: ignore[misc, valid-type]
        def _create_default_callbacks(self) -> list[Any]:
            made = super()._create_default_callbacks()
            return [c for c in made if type(c).__name__ != "PlacementGroupCleanerCallback"]

    return TrainerWithoutCleaner
