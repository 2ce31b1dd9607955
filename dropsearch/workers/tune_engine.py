"""The same search as real Ray Tune trials: ``ControllerSearcher`` + ASHA + ``FailureConfig`` + checkpoints.

:func:`run_search` (the actor-pool engine) is the default because it pays no per-trial start-up; this engine is
for what Tune does best: ``Tuner.restore`` of an interrupted experiment, per-epoch checkpoints in Tune's storage,
and Tune's own tooling. Children with several workers (DDP) run on the pool engine, whose worker starts a Ray
Train ``TorchTrainer`` per child. Both engines train children with the same
:class:`~dropsearch.workers.train.ChildTraining`
and emit the same events.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import torch
from ray import tune

from dropsearch.controller import BaseController, make_controller
from dropsearch.controller.searcher import ControllerSearcher
from dropsearch.search.spec import SearchSpec
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.events import (
    ControllerUpdated,
    EpochReported,
    SearchCallbacks,
    SearchResult,
    TrialFinished,
    TrialStarted,
)
from dropsearch.workers.search_loop import ASHA_GRACE_PERIOD, ASHA_REDUCTION_FACTOR, reward_of
from dropsearch.workers.setup import check_resources, ensure_ray, prepare_search

__all__ = ["tune_child", "run_search_with_tune"]


def tune_child(config: dict[str, Any], bundle: Any = None, base: dict[str, Any] | None = None) -> None:
    """Tune function trainable: one child, one ``tune.report`` (with a checkpoint) per epoch."""
    from dropsearch.workers.train import ChildTraining

    child_config = ChildConfig.from_dict({**(base or {}), "pattern": config["pattern"]})
    child = ChildTraining(child_config, bundle=bundle)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            child.load_state_dict(torch.load(os.path.join(path, "child.pt"), weights_only=False))
    while child.epoch < child_config.epochs:
        metrics = child.run_epoch()
        with tempfile.TemporaryDirectory() as path:
            torch.save(child.state_dict(), os.path.join(path, "child.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(path))


class _UpdateSink:
    """A picklable ``on_update`` hook that carries only a key into a registry of this driver process.

    Tune copies the searcher (and so its hook) when it starts the experiment.
    """

    _registry: dict[str, Any] = {}

    def __init__(self, key: str) -> None:
        self.key = key

    @classmethod
    def register(cls, fn: Any) -> _UpdateSink:
        key = f"{os.getpid()}-{id(fn)}-{time.perf_counter_ns()}"
        cls._registry[key] = fn
        return cls(key)

    def unregister(self) -> None:
        self._registry.pop(self.key, None)

    def __call__(self, stats: dict[str, float], controller: BaseController) -> None:
        fn = self._registry.get(self.key)
        if fn is not None:
            fn(stats, controller)


class _EventsCallback(tune.Callback):
    """Turns Tune's trial lifecycle into dropsearch events."""

    def __init__(self, callbacks: SearchCallbacks, spec: SearchSpec) -> None:
        self.callbacks, self.spec = callbacks, spec
        self.metrics: dict[str, list[dict[str, Any]]] = {}
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.patterns: dict[int, dict[str, Any]] = {}
        self.finished: list[TrialFinished] = []

    @staticmethod
    def _index(trial: Any) -> int:
        return int(trial.config["proposal_index"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.attempts[trial.trial_id] = self.attempts.get(trial.trial_id, 0) + 1
        self.metrics[trial.trial_id] = []
        self.started[trial.trial_id] = time.perf_counter()
        self.patterns[self._index(trial)] = trial.config["pattern"]
        node = getattr(trial, "location", None)
        self.callbacks.emit(
            TrialStarted(
                self._index(trial),
                tuple(trial.config["tokens"]),
                trial.config["pattern"],
                self.attempts[trial.trial_id],
                str(getattr(node, "hostname", "") or ""),
            )
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = {k: v for k, v in result.items() if isinstance(v, int | float | str) and k != "config"}
        self.metrics.setdefault(trial.trial_id, []).append(metrics)
        self.callbacks.emit(EpochReported(self._index(trial), metrics))

    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        history = self.metrics.get(trial.trial_id, [])
        objective = self.spec.objective
        reward = reward_of(history, objective.metric, objective.mode) if status != "failed" else None
        wall = time.perf_counter() - self.started.get(trial.trial_id, time.perf_counter())
        event = TrialFinished(self._index(trial), status, reward, history, wall, error)
        self.finished.append(event)
        self.callbacks.emit(event)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        done = len(self.metrics.get(trial.trial_id, []))
        self._finish(trial, "succeeded" if done >= self.spec.budget.epochs_per_trial else "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "failed", error=str(getattr(trial, "error_file", "") or "trial raised"))


def run_search_with_tune(
    spec: SearchSpec,
    controller: BaseController | None = None,
    callbacks: SearchCallbacks | None = None,
    *,
    storage_path: str,
    name: str = "dropsearch",
    ray_address: str | None = None,
    num_cpus: int | None = None,
    allowed_roots: tuple[str, ...] = (),
    max_failures: int = 2,
) -> SearchResult:
    """Run a search as a Ray Tune experiment under ``storage_path/name``.

    Args:
        spec: the validated job spec.
        controller: the controller; default built from the spec.
        callbacks: event hooks (as for :func:`~dropsearch.workers.run_search`).
        storage_path: Tune's storage (experiment state, searcher state, per-epoch checkpoints).
        name: the experiment's name.
        ray_address: join this cluster; default the running Ray or a new local one.
        num_cpus: CPUs of an embedded local Ray.
        allowed_roots: directories dataset paths may name.
        max_failures: Tune ``FailureConfig.max_failures`` (retries per trial).

    An interrupted experiment can be continued with ``tune.Tuner.restore(storage_path/name, ...)``: the searcher
    (and so the controller) comes back from Tune's own checkpoint (tested in ``tests/controller``). The service's
    runner resumes through its store instead, with the pool engine.
    """
    callbacks = callbacks or SearchCallbacks()
    ensure_ray(ray_address, num_cpus=num_cpus)
    check_resources(spec)
    prepared = prepare_search(spec, allowed_roots=allowed_roots)
    controller = controller or make_controller(spec.controller, prepared.space, seed=spec.seed)
    res = spec.resources

    updates: list[ControllerUpdated] = []

    def on_update(stats: dict[str, float], ctrl: BaseController) -> None:
        event = ControllerUpdated(ctrl.n_updates, len(ctrl.history), stats, ctrl.state_dict())
        updates.append(event)
        callbacks.emit(event)

    sink = _UpdateSink.register(on_update)
    searcher = ControllerSearcher(
        controller,
        prepared.space,
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        batch_size=spec.controller.batch_size,
        max_trials=spec.budget.trials,
        on_update=sink,
    )
    scheduler = None
    if spec.budget.early_stopping == "asha" and spec.budget.epochs_per_trial > 1:
        scheduler = tune.schedulers.ASHAScheduler(
            time_attr="epoch",
            max_t=spec.budget.epochs_per_trial,
            grace_period=ASHA_GRACE_PERIOD,
            reduction_factor=ASHA_REDUCTION_FACTOR,
        )
    base = prepared.child_config({"variant": "none"}).to_dict()
    if res.workers_per_trial > 1:
        raise ValueError("resources.workers_per_trial > 1 runs on the pool engine (dropsearch.workers.run_search)")
    trial_resources: dict[str, float] = {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
    trainable = tune.with_resources(
        tune.with_parameters(tune_child, bundle=prepared.bundle, base=base), trial_resources
    )
    events = _EventsCallback(callbacks, spec)
    start = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            metric=spec.objective.metric,
            mode=spec.objective.mode,
            num_samples=spec.budget.trials,
            max_concurrent_trials=spec.budget.max_concurrent,
            reuse_actors=True,
            time_budget_s=spec.budget.time_limit_s,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[events],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        sink.unregister()
    scored = [t for t in events.finished if t.reward is not None]
    best = max(scored, key=lambda t: t.reward, default=None)
    return SearchResult(
        status="succeeded",
        trials=events.finished,
        best_index=best.index if best else None,
        best_reward=best.reward if best else None,
        best_pattern=events.patterns.get(best.index) if best else None,
        updates=updates[-1].updates if updates else 0,
        wall_s=time.perf_counter() - start,
    )
