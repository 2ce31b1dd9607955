"""``run_search``: the controller proposes a batch, a pool of Ray actors trains it, the controller learns.

Batches are synchronous, as in AutoDropout: batch ``b`` holds trial indices ``[b*B, (b+1)*B)``; the controller
samples it, up to ``max_concurrent`` children train at once, and one policy update follows when every trial of the
batch has ended. Rules the controller sees:

- reward = the objective of the trial's last reported epoch (negated when ``mode == "min"``; NaN there: left out of
  the update), :func:`dropsearch.search.trial_reward`;
- an early-stopped trial (ASHA) counts with the objective of its last epoch, like a finished one;
- a trial that raised is retried up to ``max_failures`` times on a fresh worker; after that it is ``failed`` and
  left out of the update (a batch whose trials all failed makes no update).

Restart: the runner stores the controller state after every update. Restored, the controller samples the same
next batch (its RNG state is part of the state); trials of that batch that had completed are fed their stored
rewards instead of being trained again, the others run.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from dropsearch.controller import BaseController, Proposal, make_controller
from dropsearch.search.codec import tokens_to_pattern
from dropsearch.search.reward import trial_reward
from dropsearch.search.spec import SearchSpec
from dropsearch.workers.events import (
    ControllerUpdated,
    EpochReported,
    ResumeState,
    SearchCallbacks,
    SearchResult,
    TrialFinished,
    TrialStarted,
)
from dropsearch.workers.pool import make_worker, warm_pool
from dropsearch.workers.setup import PreparedSearch, check_resources, ensure_ray, prepare_search

__all__ = ["run_search", "reward_of", "ASHA_GRACE_PERIOD", "ASHA_REDUCTION_FACTOR", "CALL_TARGET_S", "epochs_per_call"]

#: Short epochs are grouped so that one call to a worker trains about this long (seconds): the driver's round
#: trip, its events and Ray's task bookkeeping are then paid per call instead of per epoch.
CALL_TARGET_S = 1.0
#: ASHA's settings (``budget.early_stopping: asha``): rungs at epochs ``grace * reduction ** k``.
ASHA_GRACE_PERIOD = 1
ASHA_REDUCTION_FACTOR = 2


def reward_of(metrics: list[dict[str, Any]], metric: str, mode: str) -> float | None:
    """The controller's reward for a trial from its per-epoch metrics (:func:`dropsearch.search.trial_reward`)."""
    return trial_reward((epoch.get(metric) for epoch in metrics), mode)


def epochs_per_call(
    done: int, total: int, epoch_s: float | None, *, asha: bool, target_s: float = CALL_TARGET_S
) -> int:
    """How many epochs the next call to a worker trains.

    One epoch while the epoch time is unknown; otherwise as many as fit in ``target_s`` (at least one), never
    past the trial's last epoch, and with ASHA never past its next rung: ASHA decides only when a trial reaches a
    rung (epochs 1, 2, 4, 8, ... with :data:`ASHA_GRACE_PERIOD` 1 and :data:`ASHA_REDUCTION_FACTOR` 2), so its
    decisions and the epochs a stopped trial trains are the same as with one epoch per call.

    Args:
        done: epochs the trial has reported.
        total: epochs of the trial's budget.
        epoch_s: measured seconds per epoch (``None`` before the first).
        asha: whether ASHA decides early stops.
        target_s: seconds one call should last. Default: :data:`CALL_TARGET_S`.
    """
    remaining = total - done
    if remaining <= 1 or epoch_s is None:
        return 1
    n = max(1, min(remaining, int(target_s / max(epoch_s, 1e-6))))
    if asha:
        rung = ASHA_GRACE_PERIOD
        while rung <= done:
            rung *= ASHA_REDUCTION_FACTOR
        n = min(n, rung - done)
    return n


@dataclass
class _Trial:
    index: int
    proposal: Proposal
    pattern: dict[str, Any]
    attempt: int = 1
    metrics: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    trial_id: str = ""
    epoch_s: float | None = None  # measured seconds per epoch of this trial, from the driver's side


@dataclass
class _Slot:
    worker: Any
    node: str
    has_bundle: bool = False
    trial: _Trial | None = None
    ref: Any = None
    sent: float = 0.0  # when the call in flight was sent
    epochs_sent: int = 0  # epochs the call in flight trains


class _PoolDriver:
    """Runs the batches of one search on a pool of :class:`~dropsearch.workers.pool.ChildWorker` actors."""

    def __init__(
        self,
        prepared: PreparedSearch,
        controller: BaseController,
        callbacks: SearchCallbacks,
        resume: ResumeState,
        max_failures: int,
        child_overrides: dict[str, Any] | None = None,
        slots: int | None = None,
    ) -> None:
        import ray

        self.ray = ray
        self.prepared, self.spec = prepared, prepared.spec
        self.controller, self.callbacks, self.resume = controller, callbacks, resume
        self.max_failures = max_failures
        self.child_overrides = dict(child_overrides or {})
        self.bundle_ref = ray.put(prepared.bundle)
        self.scheduler = self._make_scheduler()
        concurrent = min(self.spec.budget.max_concurrent, slots or self.spec.budget.max_concurrent)
        self.slots = [self._new_slot() for _ in range(concurrent)]  # never more than the cluster can place
        self.finished: list[TrialFinished] = []
        self.best: tuple[float, int, dict[str, Any]] | None = None
        self.start = time.perf_counter()
        warm_pool().search_started()  # last: shutdown() (which uncounts it) runs only for a built driver

    def _make_scheduler(self) -> Any:
        if self.spec.budget.early_stopping != "asha" or self.spec.budget.epochs_per_trial < 2:
            return None
        from ray.tune.schedulers import AsyncHyperBandScheduler

        return AsyncHyperBandScheduler(
            time_attr="epoch",
            metric=self.spec.objective.metric,
            mode=self.spec.objective.mode,
            max_t=self.spec.budget.epochs_per_trial,
            grace_period=ASHA_GRACE_PERIOD,
            reduction_factor=ASHA_REDUCTION_FACTOR,
        )

    def _slot_resources(self) -> dict[str, float]:
        res = self.spec.resources
        if res.workers_per_trial > 1:  # the Ray Train workers reserve the resources; the slot only relays
            return {"num_cpus": 0, "num_gpus": 0}
        return {"num_cpus": res.cpus_per_trial, "num_gpus": res.gpus_per_trial}

    def _new_slot(self, *, fresh: bool = False) -> _Slot:
        resources = self._slot_resources()
        worker = make_worker(**resources) if fresh else warm_pool().take(**resources)
        return _Slot(worker=worker, node="")

    # -- one trial -------------------------------------------------------------------------------------------
    def _launch(self, slot: _Slot, trial: _Trial) -> None:
        config = replace(self.prepared.child_config(trial.pattern), attempt=trial.attempt, **self.child_overrides)
        res = self.spec.resources
        if res.workers_per_trial > 1:
            start_ref = slot.worker.start_ddp.remote(
                config.to_dict(), res.workers_per_trial, res.gpus_per_trial > 0, res.cpus_per_trial
            )
        else:
            bundle = None if slot.has_bundle else self.bundle_ref
            start_ref = slot.worker.start.remote(config.to_dict(), bundle)
            slot.has_bundle = True
        slot.trial, slot.ref = trial, (start_ref, "start")
        trial.started = time.perf_counter()
        trial.trial_id = f"{trial.index}-{trial.attempt}"
        if self.scheduler is not None:
            self.scheduler.on_trial_add(None, _SchedulerTrial(trial.trial_id))

    def _on_ready(self, slot: _Slot) -> None:
        trial = slot.trial
        assert trial is not None
        ref, kind = slot.ref
        value = self.ray.get(ref)
        if kind == "start":
            slot.node = f"{value['node']}:{value['node_id'][:8]}"
            self.callbacks.emit(
                TrialStarted(trial.index, trial.proposal.tokens, trial.pattern, trial.attempt, slot.node)
            )
            self._next_epochs(slot, trial)
            return
        if slot.epochs_sent:
            trial.epoch_s = (time.perf_counter() - slot.sent) / slot.epochs_sent
        for metrics in value["metrics"]:
            trial.metrics.append(metrics)
            self.callbacks.emit(EpochReported(trial.index, metrics))
            if len(trial.metrics) >= self.spec.budget.epochs_per_trial:
                self._finish(slot, "succeeded")
                return
            if self._asha_says_stop(trial, metrics):
                self._finish(slot, "stopped")
                return
        if value["error"] is not None:  # an epoch after the reported ones raised
            self._on_error(slot, value["error"])
            return
        self._next_epochs(slot, trial)

    def _next_epochs(self, slot: _Slot, trial: _Trial) -> None:
        """Send the next call: one epoch, or several short ones (:func:`epochs_per_call`)."""
        n = epochs_per_call(
            len(trial.metrics), self.spec.budget.epochs_per_trial, trial.epoch_s, asha=self.scheduler is not None
        )
        slot.ref, slot.sent, slot.epochs_sent = (slot.worker.run_epochs.remote(n), "epoch"), time.perf_counter(), n

    def _asha_says_stop(self, trial: _Trial, metrics: dict[str, Any]) -> bool:
        if self.scheduler is None or metrics.get(self.spec.objective.metric) is None:
            return False
        decision = self.scheduler.on_trial_result(None, _SchedulerTrial(trial.trial_id), metrics)
        return decision == "STOP"

    def _finish(self, slot: _Slot, status: str, error: str | None = None) -> None:
        trial = slot.trial
        assert trial is not None
        objective = self.spec.objective
        reward = (
            reward_of(trial.metrics, objective.metric, objective.mode) if status in ("succeeded", "stopped") else None
        )
        if self.scheduler is not None:
            self.scheduler.on_trial_remove(None, _SchedulerTrial(trial.trial_id))
        event = TrialFinished(
            trial.index, status, reward, list(trial.metrics), time.perf_counter() - trial.started, error
        )
        self.finished.append(event)
        self.callbacks.emit(event)
        self.rewards[trial.index] = reward
        if reward is not None and (self.best is None or reward > self.best[0]):
            self.best = (reward, trial.index, trial.pattern)
        slot.worker.release.remote()
        slot.trial, slot.ref = None, None

    def _on_error(self, slot: _Slot, exc: Exception) -> None:
        trial = slot.trial
        assert trial is not None
        if isinstance(exc, self.ray.exceptions.RayActorError):  # the worker process died: replace it
            self.ray.kill(slot.worker, no_restart=True)
            fresh = self._new_slot(fresh=True)
            slot.worker, slot.has_bundle = fresh.worker, False
        if self.scheduler is not None:
            self.scheduler.on_trial_remove(None, _SchedulerTrial(trial.trial_id))
        if trial.attempt <= self.max_failures:
            self.pending.appendleft(_Trial(trial.index, trial.proposal, trial.pattern, trial.attempt + 1))
            slot.trial, slot.ref = None, None
            return
        self._finish(slot, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])

    # -- batches ---------------------------------------------------------------------------------------------
    def run_batch(self, first_index: int, proposals: list[Proposal]) -> dict[int, float | None]:
        """Train every not-yet-completed trial of one batch; returns index -> reward (``None`` = failed)."""
        self.rewards: dict[int, float | None] = {}
        self.pending: deque[_Trial] = deque()
        for offset, proposal in enumerate(proposals):
            index = first_index + offset
            done = self.resume.completed.get(index)
            if done is not None:
                self.rewards[index] = done.reward
                continue
            pattern = tokens_to_pattern(self.prepared.space, proposal.tokens).to_dict()
            self.pending.append(_Trial(index, proposal, pattern))
        while self.pending or any(s.trial for s in self.slots):
            if self.callbacks.cancelled() or self._out_of_time():
                self._stop_running()
                break
            for slot in self.slots:
                if slot.trial is None and self.pending:
                    self._launch(slot, self.pending.popleft())
            busy = {s.ref[0]: s for s in self.slots if s.trial is not None}
            ready, _ = self.ray.wait(list(busy), num_returns=1, timeout=0.5)
            for ref in ready:
                slot = busy[ref]
                try:
                    self._on_ready(slot)
                except (self.ray.exceptions.RayTaskError, self.ray.exceptions.RayActorError) as exc:
                    self._on_error(slot, exc)
        return self.rewards

    def _out_of_time(self) -> bool:
        limit = self.spec.budget.time_limit_s
        return limit is not None and time.perf_counter() - self.start > limit

    def _stop_running(self) -> None:
        for slot in self.slots:
            if slot.trial is not None:
                worker = slot.worker
                self._finish(slot, "cancelled")
                self.ray.kill(worker, no_restart=True)  # stops the epoch in flight; never reused
                slot.worker = None
        self.pending.clear()

    def shutdown(self) -> None:
        """Idle workers go back to the warm pool for the next search; busy ones (cancelled) are killed."""
        warm_pool().search_ended()
        for slot in self.slots:
            if slot.worker is None:
                continue
            if slot.trial is None:
                warm_pool().give_back(slot.worker, **self._slot_resources())
            else:
                self.ray.kill(slot.worker, no_restart=True)


@dataclass(frozen=True)
class _SchedulerTrial:
    """What Ray Tune's ASHA needs of a trial: its id."""

    trial_id: str


def run_search(
    spec: SearchSpec,
    controller: BaseController | None = None,
    callbacks: SearchCallbacks | None = None,
    *,
    resume: ResumeState | None = None,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    allowed_roots: tuple[str, ...] = (),
    max_failures: int | None = None,
    child_overrides: dict[str, Any] | None = None,
) -> SearchResult:
    """Run a whole search: the entry the service's runner calls.

    Args:
        spec: the validated job spec.
        controller: the controller to use; default built from ``spec.controller`` over the model's space.
        callbacks: receive trial started / epoch reported / trial finished / controller updated events.
        resume: continue a search that a restart interrupted.
        ray_address: join this Ray cluster; ``None`` uses the running one or starts a local Ray.
        num_cpus: CPUs of an embedded local Ray.
        allowed_roots: directories dataset paths may name.
        max_failures: retries of a trial that raised before it counts as failed (default ``budget.max_failures``).
        child_overrides: ``ChildConfig`` fields set on every child (fault-injection drills, device, threads).

    Returns:
        How the search ended, with every finished trial and the best pattern.

    Raises:
        InsufficientResourcesError: when one trial needs more CPUs/GPUs than the cluster has.
    """
    callbacks = callbacks or SearchCallbacks()
    resume = resume or ResumeState()
    ensure_ray(ray_address, num_cpus=num_cpus)
    capacity = check_resources(spec)
    prepared = prepare_search(spec, allowed_roots=allowed_roots)
    controller = controller or make_controller(spec.controller, prepared.space, seed=spec.seed)
    if resume.controller_state is not None:
        controller.load_state_dict(resume.controller_state)
    if max_failures is None:
        max_failures = spec.budget.max_failures
    driver = _PoolDriver(prepared, controller, callbacks, resume, max_failures, child_overrides, slots=capacity)
    batch, total = spec.controller.batch_size, spec.budget.trials
    seen = resume.trials_seen
    status = "succeeded"
    try:
        while seen < total:
            proposals = controller.sample(min(batch, total - seen))
            rewards = driver.run_batch(seen, proposals)
            if callbacks.cancelled():
                status = "cancelled"
                break
            scored = [(p, rewards[seen + i]) for i, p in enumerate(proposals) if rewards.get(seen + i) is not None]
            seen += len(proposals)
            stats = controller.update([p for p, _ in scored], [r for _, r in scored]) if scored else {}
            callbacks.emit(ControllerUpdated(controller.n_updates, seen, stats, controller.state_dict()))
            if driver._out_of_time():
                break
    finally:
        driver.shutdown()
    best = driver.best
    return SearchResult(
        status=status,
        trials=driver.finished,
        best_index=best[1] if best else None,
        best_reward=best[0] if best else None,
        best_pattern=best[2] if best else None,
        updates=controller.n_updates,
        wall_s=time.perf_counter() - driver.start,
    )
