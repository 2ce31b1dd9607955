"""Long-lived Ray actors that train children, one epoch (or a group of short epochs) per call.

Why not one Ray Tune trial per child: a Tune trial costs ~0.3-1 s of scheduling, logging and actor start-up,
which is 6-20% of a 5 s child on 2 cores. A :class:`ChildWorker` is started once per concurrent slot, keeps the
dataset it was handed (a Ray object-store reference, fetched once per worker), and is then sent one small
``start`` and then ``run_epochs`` calls of about a second each (one epoch, or several short ones); the driver
reads metrics from the return values, so reporting costs one round trip per call and no files. Ray Tune is
still used where it is the right tool: its ASHA scheduler decides early stops
(:mod:`dropsearch.workers.search_loop`), and :mod:`dropsearch.workers.tune_engine` runs the same children as
real Tune trials.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import ray

__all__ = ["ChildWorker", "WarmPool", "make_worker", "warm_pool"]


class ChildWorker:
    """One concurrent slot of a search: trains one child at a time, through :meth:`run_epoch` or :meth:`run_epochs`."""

    def __init__(self, torch_threads: int | None = None) -> None:
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self._bundles: dict[str, Any] = {}
        self._child: Any = None

    def start(self, config: dict[str, Any], bundle: Any = None) -> dict[str, Any]:
        """Build the child for ``config`` (a ``ChildConfig.to_dict()``); returns where it runs.

        Args:
            config: the child's configuration.
            bundle: the dataset (resolved by Ray from an object reference); the driver sends it once per worker
                and the worker keeps it; without it (and nothing cached) the child loads the dataset itself.
        """
        from dropsearch.workers.child import ChildConfig
        from dropsearch.workers.train import ChildTraining

        child_config = ChildConfig.from_dict(config)
        key = child_config.dataset_key
        if bundle is not None:
            self._bundles = {key: bundle}  # one dataset per worker: a search uses one dataset
        self._child = None  # free the previous child before building the next
        self._child = ChildTraining(child_config, bundle=self._bundles.get(key))
        return {"node": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def start_ddp(self, config: dict[str, Any], num_workers: int, use_gpu: bool, cpus_per_worker: float) -> dict:
        """Start a child with ``num_workers`` Ray Train workers (DDP) in a background thread of this actor.

        The Train workers reserve their own CPUs/GPUs; this actor only relays rank 0's per-epoch reports.
        """
        from ray.util.queue import Queue

        from dropsearch.workers.ddp import run_ddp_child

        self._child = None
        self._ddp_reports = Queue(maxsize=1000)
        self._ddp_error: list[BaseException] = []

        def train() -> None:
            try:
                result = run_ddp_child(
                    config,
                    reports=self._ddp_reports,
                    num_workers=num_workers,
                    use_gpu=use_gpu,
                    cpus_per_worker=cpus_per_worker,
                )
                if result.error is not None:
                    self._ddp_error.append(result.error)
            except BaseException as exc:  # relayed to the driver by run_epoch
                self._ddp_error.append(exc)

        self._ddp_thread = threading.Thread(target=train, name="ddp-child", daemon=True)
        self._ddp_thread.start()
        return {"node": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def run_epoch(self) -> dict[str, Any]:
        """Train the current child for one epoch and return its metrics (DDP: wait for rank 0's next report)."""
        if self._child is not None:
            return self._child.run_epoch()
        if getattr(self, "_ddp_thread", None) is None:
            raise RuntimeError("run_epoch called before start")
        from ray.util.queue import Empty

        while True:
            try:
                return self._ddp_reports.get(timeout=0.5)
            except Empty:
                if not self._ddp_thread.is_alive():
                    error = self._ddp_error[0] if self._ddp_error else None
                    raise RuntimeError(f"DDP child ended without reporting: {error!r}") from error

    def run_epochs(self, n: int) -> dict[str, Any]:
        """Train up to ``n`` epochs in one call (short epochs cost one round trip per call, not per epoch).

        Returns ``{"metrics": [...], "error": None}``. If an epoch raises after others in this call completed,
        their metrics come back with ``"error"`` set to the exception (re-raised by the driver after it has
        reported them); if the first epoch raises, the exception propagates as from :meth:`run_epoch`.
        """
        metrics: list[dict[str, Any]] = []
        for _ in range(max(1, int(n))):
            try:
                metrics.append(self.run_epoch())
            except Exception as exc:
                if not metrics:
                    raise
                return {"metrics": metrics, "error": exc}
        return {"metrics": metrics, "error": None}

    def ping(self) -> bool:
        """Liveness check used before a warm worker is reused."""
        return True

    def release(self) -> None:
        """Drop the current child (frees its memory; the dataset stays cached)."""
        self._child = None
        self._ddp_thread = None


def make_worker(*, num_cpus: float, num_gpus: float, torch_threads: int | None = None) -> Any:
    """Start one :class:`ChildWorker` actor with the trial's resources.

    ``max_restarts=0``: a dead worker is replaced by the driver, which also decides whether the trial is retried.
    """
    remote_cls = ray.remote(ChildWorker)
    threads = torch_threads or max(1, int(num_cpus))
    return remote_cls.options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0).remote(threads)


def _kill_quietly(worker: Any) -> None:
    try:
        ray.kill(worker, no_restart=True)
    except Exception:  # already gone
        pass


class WarmPool:
    """Idle :class:`ChildWorker` actors kept between searches.

    A runner so pays worker start-up (a process and ``import torch``, 2-4 s) once per slot, not once per search.

    Workers are keyed by their resources; the pool is bound to the Ray job that made them (a new ``ray.init``
    starts an empty pool). A worker is pinged before reuse; a dead one is dropped.
    """

    def __init__(self, max_idle: int = 8) -> None:
        self.max_idle = max_idle
        self._idle: dict[tuple[float, float], list[Any]] = {}
        self._job: str | None = None
        self.active = 0  # searches of this process running now; idle workers are kept only when none is

    def search_started(self) -> None:
        """Count a running search (see :meth:`give_back`)."""
        self.active += 1

    def search_ended(self) -> None:
        """Uncount a search."""
        self.active = max(0, self.active - 1)

    def _check_job(self) -> None:
        context = ray.get_runtime_context()
        job = f"{context.get_job_id()}@{context.get_node_id()}"  # job ids repeat across ray.init sessions
        if job != self._job:
            self._idle, self._job = {}, job

    def take(self, *, num_cpus: float, num_gpus: float) -> Any:
        """An idle worker with these resources, or a new one."""
        self._check_job()
        for key in [k for k in self._idle if k != (num_cpus, num_gpus)]:  # free what other shapes reserve
            for worker in self._idle.pop(key):
                ray.kill(worker, no_restart=True)
        idle = self._idle.get((num_cpus, num_gpus), [])
        while idle:
            worker = idle.pop()
            try:
                ray.get(worker.ping.remote(), timeout=10)
                return worker
            except Exception:  # dead or hung: drop it and try the next one
                _kill_quietly(worker)
        if num_cpus == 0 and num_gpus == 0:
            return make_worker(num_cpus=0, num_gpus=0, torch_threads=1)
        return make_worker(num_cpus=num_cpus, num_gpus=num_gpus)

    def give_back(self, worker: Any, *, num_cpus: float, num_gpus: float) -> None:
        """Keep an idle worker for the next search (or kill it when the pool is full)."""
        self._check_job()
        idle = self._idle.setdefault((num_cpus, num_gpus), [])
        # While another search of this process runs, an idle worker would hold CPUs/GPUs its pending workers
        # may be waiting for (a deadlock on a small cluster): free it instead.
        if self.active > 0 or sum(len(v) for v in self._idle.values()) >= self.max_idle:
            ray.kill(worker, no_restart=True)
            return
        worker.release.remote()
        idle.append(worker)

    def clear(self) -> None:
        """Kill every idle worker (frees their CPUs/GPUs for other Ray jobs)."""
        for workers in self._idle.values():
            for worker in workers:
                ray.kill(worker, no_restart=True)
        self._idle = {}


_WARM_POOL = WarmPool()


def warm_pool() -> WarmPool:
    """The process-wide pool of idle workers."""
    return _WARM_POOL
