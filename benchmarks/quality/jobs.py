"""Train many fixed children (baselines, re-trainings) on a small pool of Ray actors, one epoch per call.

Each actor (:class:`ChildActor`, one CPU and ``gpus_per_job`` GPUs, as a search's trial) is handed the dataset
bundle from the object store, builds a :class:`~dropsearch.workers.train.ChildTraining` and runs its epochs, one
call per epoch. The pool is killed afterwards so that a search can take the CPUs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dropsearch.workers.child import ChildConfig

__all__ = ["ChildActor", "Job", "JobResult", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One child to train: a label (``(dataset, method, seed)``), its config and the bundle's object reference.

    ``test``: after the last epoch, also evaluate the bundle's test split (``ChildTraining.evaluate_test``).
    """

    key: tuple[str, str, int]
    config: ChildConfig
    bundle_ref: Any
    test: bool = False


@dataclass
class JobResult:
    """What a trained child reported: last-epoch validation (search-half) and final-half accuracy, cost, every epoch.

    ``final_accuracy`` is ``None`` for a dataset without a held-out domain; ``test_accuracy`` is set for a job
    with ``test`` (the test split, evaluated once after the last epoch).
    """

    key: tuple[str, str, int]
    val_accuracy: float
    final_accuracy: float | None
    epochs: int
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy: float | None = None


class ChildActor:
    """A Ray actor that trains one child at a time (:class:`~dropsearch.workers.train.ChildTraining`)."""

    def __init__(self, torch_threads: int = 1) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self._child: Any = None

    def start(self, config: dict[str, Any], bundle: Any) -> None:
        """Build the child of ``config`` (a ``ChildConfig.to_dict()``) on ``bundle`` (pre-training included)."""
        from dropsearch.workers.train import ChildTraining

        self._child = None  # free the previous child before building the next
        self._child = ChildTraining(ChildConfig.from_dict(config), bundle=bundle)

    def run_epoch(self) -> dict[str, Any]:
        """Train the current child one epoch; its metrics."""
        return self._child.run_epoch()

    def test(self) -> dict[str, float]:
        """The current child's ``test_loss`` and ``test_accuracy`` (its dataset's test split)."""
        return self._child.evaluate_test()

    def release(self) -> None:
        """Drop the current child."""
        self._child = None


def _start_actor(gpus: float) -> Any:
    import ray

    return ray.remote(ChildActor).options(num_cpus=1, num_gpus=gpus, max_restarts=0).remote(1)


@dataclass
class _Slot:
    worker: Any
    job: Job | None = None
    ref: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    starting: bool = False
    testing: bool = False


def run_jobs(
    jobs: list[Job],
    *,
    concurrency: int,
    gpus_per_job: float = 0.0,
    log: Callable[[str], None] = print,
) -> list[JobResult]:
    """Train every job (``concurrency`` at once) and return the results in job order.

    Raises:
        RuntimeError: when a child raised (the study has no retries: a failing baseline is a bug to see).
    """
    import ray

    results: dict[int, JobResult] = {}
    queue = list(enumerate(jobs))
    slots = [_Slot(_start_actor(gpus_per_job)) for _ in range(min(concurrency, len(jobs)))]
    index_of: dict[int, int] = {}
    try:
        while queue or any(s.job for s in slots):
            for slot in slots:
                if slot.job is None and queue:
                    i, job = queue.pop(0)
                    slot.job, slot.history, slot.started = job, [], time.perf_counter()
                    index_of[id(slot)] = i
                    slot.ref, slot.starting = slot.worker.start.remote(job.config.to_dict(), job.bundle_ref), True
            busy = {s.ref: s for s in slots if s.job is not None}
            ready, _ = ray.wait(list(busy), num_returns=1)
            slot = busy[ready[0]]
            value = ray.get(ready[0])
            assert slot.job is not None
            if slot.starting:  # the child is built (and pre-trained): run its epochs
                slot.starting, slot.ref = False, slot.worker.run_epoch.remote()
                continue
            test: dict[str, float] = {}
            if slot.testing:
                test, slot.testing = value, False
            else:
                slot.history.append(value)
                if len(slot.history) < slot.job.config.epochs:
                    slot.ref = slot.worker.run_epoch.remote()
                    continue
                if slot.job.test:  # evaluate the test split once, after the last epoch
                    slot.ref, slot.testing = slot.worker.test.remote(), True
                    continue
            last = slot.history[-1]
            final = last.get("heldout_accuracy")
            result = JobResult(
                key=slot.job.key,
                val_accuracy=float(last["val_accuracy"]),
                final_accuracy=None if final is None else float(final),
                epochs=slot.job.config.epochs + slot.job.config.pretrain_epochs,
                wall_s=time.perf_counter() - slot.started,
                history=slot.history,
                test_accuracy=test.get("test_accuracy"),
            )
            results[index_of[id(slot)]] = result
            shown = {"final-half": result.final_accuracy, "test": result.test_accuracy}
            extra = " ".join(f"{k} {v:.4f}" for k, v in shown.items() if v is not None)
            log(f"  {result.key}: validation {result.val_accuracy:.4f} {extra} ({result.wall_s:.1f} s)")
            slot.worker.release.remote()
            slot.job, slot.ref = None, None
    finally:
        for slot in slots:
            ray.kill(slot.worker, no_restart=True)
    return [results[i] for i in range(len(jobs))]


def add_result(
    entries: dict[str, dict[str, Any]], method: str, pattern: dict[str, Any], result: JobResult, *, final: str
) -> None:
    """Append one re-training of ``method`` to its entry (seed, accuracies, wall time, epochs).

    ``final`` names the entry's final-accuracy list: ``"test"`` (the test split) or ``"final"`` (the held-out half).
    """
    entry = entries.setdefault(method, {"pattern": pattern, "seeds": [], "val": [], final: [], "wall_s": []})
    entry["seeds"].append(result.key[2])
    entry["val"].append(result.val_accuracy)
    entry[final].append(result.test_accuracy if final == "test" else result.final_accuracy)
    entry["wall_s"].append(result.wall_s)
    entry["epochs"] = result.epochs
