"""The search engine: one search is one Ray Tune experiment.

:func:`run_search` builds a ``tune.Tuner`` whose ``search_alg`` is the spec's controller (REINFORCE or random
through :class:`~dropsearch.controller.searcher.ControllerSearcher`, TPE through
:class:`~dropsearch.controller.tpe.TPESearcher`), whose scheduler is the spec's ``budget.early_stopping``
(:mod:`dropsearch.runner.schedulers`), with ``FailureConfig(max_failures)``, ``max_concurrent_trials``, actor
reuse, per-trial resources, and :func:`~dropsearch.runner.trainable.train_trial` as the trainable (which runs a Ray
Train ``TorchTrainer`` inside the trial when ``workers_per_trial > 1``). A Tune callback
(:class:`~dropsearch.runner.tune_events.SearchEventsCallback`) turns the experiment into typed events
(:mod:`dropsearch.runner.events`) for the caller, who stores them.

Resume: the caller's store is the source of truth. :class:`~dropsearch.runner.events.ResumeState` holds the
controller's last stored state and the trials that ended after it; the restored controller samples the same next
batch, and those trials' stored results are fed to it instead of being trained again. Tune's own experiment
directory is a scratch space of one run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from dropsearch.runner._local import ProcessLocal
from dropsearch.runner.events import ControllerUpdated, ResumeState, SearchCallbacks, SearchResult, TrialFinished
from dropsearch.search.spec import SearchSpec

log = logging.getLogger(__name__)

__all__ = ["TUNE_LOGGERS", "run_search"]

#: Tune logger callbacks a runner may switch on (``DROPSEARCH_TUNE_LOGGERS``).
TUNE_LOGGERS = ("tensorboard", "csv", "json", "mlflow")


@dataclass
class _Stop(ProcessLocal):
    """The experiment's stopper: a cancel, a lost lease or the search's time limit ends every trial."""

    callbacks: SearchCallbacks
    time_limit_s: float | None
    started: float = field(default_factory=time.perf_counter)
    reason: str | None = None

    def __post_init__(self) -> None:
        self.keep_alive()

    def check(self) -> bool:
        if self.reason is None:
            if self.callbacks.cancelled():
                self.reason = "cancelled"
            elif self.time_limit_s is not None and time.perf_counter() - self.started > self.time_limit_s:
                self.reason = "time_limit"
        return self.reason is not None


def _stopper(stop: _Stop) -> Any:
    from ray import tune

    class SearchStopper(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return stop.check()

    return SearchStopper()


def _logger_callbacks(names: tuple[str, ...], storage_path: str) -> list[Any]:
    """Tune's logger callbacks by name; unknown names raise ValueError naming them."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    made: list[Any] = []
    for name in names:
        if name == "tensorboard":
            made.append(TBXLoggerCallback())
        elif name == "csv":
            made.append(CSVLoggerCallback())
        elif name == "json":
            made.append(JsonLoggerCallback())
        elif name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            uri = "file://" + os.path.join(os.path.abspath(storage_path), "mlruns")
            made.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name="dropsearch"))
        else:
            raise ValueError(f"tune logger {name!r} is not one of {', '.join(TUNE_LOGGERS)}")
    return made


def _searcher(spec: SearchSpec, prepared: Any, controller: Any, resume: ResumeState, on_update: Any) -> Any:
    """The spec's controller as a Tune searcher, continuing from ``resume``."""
    objective, total = spec.objective, spec.budget.trials
    if spec.controller.name == "tpe":
        from dropsearch.controller.tpe import TPESearcher

        done = {i: (t.tokens, t.reward) for i, t in resume.completed.items()}
        return TPESearcher(
            prepared.space,
            metric=objective.metric,
            mode=objective.mode,
            max_trials=total,
            seed=spec.seed,
            completed=done,
        )
    from dropsearch.controller import make_controller
    from dropsearch.controller.searcher import ControllerSearcher

    controller = controller or make_controller(spec.controller, prepared.space, seed=spec.seed)
    if resume.controller_state is not None:
        controller.load_state_dict(resume.controller_state)
    return ControllerSearcher(
        controller,
        metric=objective.metric,
        mode=objective.mode,
        batch_size=spec.controller.batch_size,
        max_trials=total - resume.trials_seen,
        on_update=on_update,
        completed={i: t.reward if t.status in ("succeeded", "stopped") else None for i, t in resume.completed.items()},
    )


def run_search(
    spec: SearchSpec,
    controller: Any = None,
    callbacks: SearchCallbacks | None = None,
    *,
    resume: ResumeState | None = None,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    allowed_roots: tuple[str, ...] = (),
    max_failures: int | None = None,
    child_overrides: dict[str, Any] | None = None,
    storage_path: str | None = None,
    name: str | None = None,
    loggers: tuple[str, ...] = (),
    prepared: Any = None,
) -> SearchResult:
    """Run a whole search as one Ray Tune experiment: the entry the service's runner calls.

    Args:
        spec: the validated job spec.
        controller: a controller to use instead of the spec's (REINFORCE and random only).
        callbacks: receive trial started / epoch reported / trial finished / controller updated events.
        resume: continue a search that a restart interrupted.
        ray_address: join this Ray cluster; ``None`` uses the running one or starts a local Ray.
        num_cpus: CPUs of an embedded local Ray.
        allowed_roots: directories dataset paths may name.
        max_failures: retries of a trial that raised before it counts as failed (default ``budget.max_failures``).
        child_overrides: ``ChildConfig`` fields set on every child (fault-injection drills, device, threads).
        storage_path: Tune's storage (experiment directory, logger files). Default: a temporary directory.
        name: the experiment's name (the service uses the search id): Tune's experiment directory
            ``storage_path/name`` and the search's actor in the Ray dashboard (:mod:`dropsearch.runner.dashboard`).
            Default: ``"dropsearch"``.
        loggers: Tune logger callbacks to switch on, from :data:`TUNE_LOGGERS`.
        prepared: a :class:`~dropsearch.workers.setup.PreparedSearch` made in-process by ``dropsearch.optimize``
            (its own dataset, sites and model factory) instead of ``prepare_search(spec)``; the service never
            passes one.

    Returns:
        How the search ended, with every trial that ended in this run and the best of them.

    Raises:
        InsufficientResourcesError: when one trial needs more CPUs/GPUs than the cluster has.
    """
    from dropsearch.runner.dashboard import start_search_log
    from dropsearch.runner.schedulers import make_scheduler
    from dropsearch.runner.tune_events import SearchEventsCallback
    from dropsearch.workers.setup import check_resources, ensure_ray, prepare_search

    resume = resume or ResumeState()
    ensure_ray(ray_address, num_cpus=num_cpus)
    capacity = check_resources(spec)
    prepared = prepared if prepared is not None else prepare_search(spec, allowed_roots=allowed_roots)
    storage = storage_path or tempfile.mkdtemp(prefix="dropsearch-tune-")
    name = name or "dropsearch"
    search_log = start_search_log(name, os.path.join(storage, name), spec.objective.metric)
    callbacks = _logged(callbacks or SearchCallbacks(), search_log.send)

    stop = _Stop(callbacks, spec.budget.time_limit_s)
    events = SearchEventsCallback(callbacks, spec, cancelling=lambda: stop.reason is not None)

    def on_update(stats: dict[str, float], ctrl: Any) -> None:
        events.post(ControllerUpdated(ctrl.n_updates, ctrl.n_sampled, stats, ctrl.state_dict()))

    child = {**prepared.child_config({"variant": "none"}).to_dict(), **(child_overrides or {})}
    experiment = _Experiment(spec, capacity, prepared, child, events, stop, storage, name, loggers, max_failures)
    start = time.perf_counter()
    try:
        if _search_trials_left(spec, resume):
            searcher = _searcher(spec, prepared, controller, resume, on_update)
            experiment.fit(searcher, make_scheduler(spec), suffix="")
        status = "cancelled" if stop.reason == "cancelled" else "succeeded"
        report = None
        if status == "succeeded" and stop.reason is None and spec.validation.enabled:
            from dropsearch.runner.validation_stage import run_validation

            report = run_validation(spec, prepared, resume, events, experiment)
            status = "cancelled" if stop.reason == "cancelled" else status
    finally:
        search_log.close()
        events.release()
        stop.release()
    best = _best([t for t in events.finished if t.kind == "search"], spec.objective.mode)
    return SearchResult(
        status=status,
        trials=events.finished,
        best_index=best.index if best else None,
        best_reward=best.reward if best else None,
        best_pattern=None if best is None else events.patterns.get(best.index),
        updates=events.updates,
        wall_s=time.perf_counter() - start,
        validation=report,
    )


def _search_trials_left(spec: SearchSpec, resume: ResumeState) -> bool:
    """Whether the search stage has trials to run (a search resumed during its validation stage has none)."""
    return len([t for t in resume.search_trials if t.status != "cancelled"]) < spec.budget.trials


class _Experiment:
    """Runs Ray Tune experiments of one search (the search stage, then the validation stage) on one trainable."""

    def __init__(
        self,
        spec: SearchSpec,
        capacity: int,
        prepared: Any,
        child: dict[str, Any],
        events: Any,
        stop: _Stop,
        storage: str,
        name: str,
        loggers: tuple[str, ...],
        max_failures: int | None,
    ) -> None:
        import ray
        from ray import tune

        from dropsearch.runner.schedulers import grace_epochs, reports_end_on_rungs
        from dropsearch.runner.trainable import BundleBox, TrialSettings, train_trial

        res, budget = spec.resources, spec.budget
        self.spec, self.capacity, self.events, self.stop = spec, capacity, events, stop
        self.storage, self.name, self.loggers = storage, name, loggers
        self.max_failures = budget.max_failures if max_failures is None else max_failures
        self.ddp = res.workers_per_trial > 1
        settings = TrialSettings(
            child=child,
            rungs=reports_end_on_rungs(spec),
            rung_grace=grace_epochs(spec),
            group_epochs=budget.early_stopping in ("none", "asha", "hyperband"),
            workers_per_trial=res.workers_per_trial,
            use_gpu=res.gpus_per_trial > 0,
            cpus_per_worker=res.cpus_per_trial,
            trial_timeout_s=budget.trial_timeout_s,
            model_factory=prepared.model_factory,
        )
        box = BundleBox(ray.put(prepared.bundle))
        # A DDP trial only relays its Ray Train workers' reports; the workers reserve the CPUs/GPUs.
        resources = {"cpu": 0.01, "gpu": 0} if self.ddp else {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
        self.trainable = tune.with_resources(
            tune.with_parameters(train_trial, bundle=box, settings=settings), resources
        )
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # loggers are opt-in (``loggers``)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner on the runner's console
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)  # no result files: fine

    def fit(self, searcher: Any, scheduler: Any, *, suffix: str) -> None:
        """One Tune experiment named ``<name><suffix>`` with ``searcher`` and ``scheduler``."""
        from ray import tune

        spec = self.spec
        tuner = tune.Tuner(
            self.trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=spec.objective.metric,
                mode=spec.objective.mode,
                num_samples=-1,
                max_concurrent_trials=min(spec.budget.max_concurrent, self.capacity),
                reuse_actors=not self.ddp,  # a stopped DDP trial's actor ends, and with it its Ray Train workers
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=self.name + suffix,
                storage_path=self.storage,
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                callbacks=[self.events, *_logger_callbacks(self.loggers, self.storage)],
                stop=_stopper(self.stop),
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                verbose=0,
            ),
        )
        tuner.fit()
        if self.ddp:  # the placement groups of DDP trials that ended before their trainer (a stop, a kill)
            from dropsearch.runner.ddp_cleanup import reap_orphans_soon

            reap_orphans_soon()


def _logged(callbacks: SearchCallbacks, also: Any) -> SearchCallbacks:
    """``callbacks`` with every event also handed to ``also`` first (the search's dashboard log)."""

    def both(hook: Any) -> Any:
        def call(event: Any) -> None:
            also(event)
            if hook is not None:
                hook(event)

        return call

    return SearchCallbacks(
        on_trial_started=both(callbacks.on_trial_started),
        on_epoch=both(callbacks.on_epoch),
        on_trial_finished=both(callbacks.on_trial_finished),
        on_controller_updated=both(callbacks.on_controller_updated),
        on_validation_updated=both(callbacks.on_validation_updated),
        should_cancel=callbacks.should_cancel,
    )


def _trial_dirname(trial: Any) -> str:
    """``trial_<index>_<tune id>``: short, and findable by the search's trial index."""
    config = trial.config
    if config.get("kind") == "validation":
        return f"validation_{config.get('arm')}_{config.get('seed')}_{trial.trial_id}"
    return f"trial_{config.get('proposal_index', 'x')}_{trial.trial_id}"


def _best(trials: list[TrialFinished], mode: str) -> TrialFinished | None:
    scored = [t for t in trials if t.reward is not None]
    if not scored:
        return None
    return max(scored, key=lambda t: t.reward) if mode == "max" else min(scored, key=lambda t: t.reward)
