"""The Ray Tune trainable of a search: one child network per trial, short epochs reported in groups.

:func:`train_trial` is a Tune function trainable. It builds the child of the trial's pattern
(:class:`~dropsearch.workers.train.ChildTraining`), trains it for the search's epochs and reports about once a
second (:func:`~dropsearch.runner.grouping.epochs_per_call`; never past an ASHA rung). A report is the last
epoch's metrics (what Tune's schedulers read: the objective and ``epoch``) plus ``epochs``, the metrics of every
epoch of the group, which the engine's callback turns into one event per epoch.

A child with ``resources.workers_per_trial > 1`` trains under a Ray Train ``TorchTrainer`` started inside the
trial (Ray Train's Tune integration); its rank 0 reports each epoch, which the trial relays to Tune.

A watchdog ends a trial whose epoch takes far longer than the trial's own earlier epochs (or, before any, than
:data:`FIRST_EPOCH_FLOOR_S`), or that outlives ``budget.trial_timeout_s``: it writes why to the trial's directory
and ends the trial's process, so that Tune retries the trial on a fresh worker or fails it (``max_failures``).
Its limits can be changed through the environment of the process that starts the search
(:data:`WATCHDOG_ENV`, read by :func:`watchdog_limits`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dropsearch.runner.exit_hooks import on_exit, run_exit_hooks
from dropsearch.runner.grouping import ASHA_GRACE_PERIOD
from dropsearch.search.reward import LAST_REPORT

__all__ = [
    "BundleBox",
    "FIRST_EPOCH_FLOOR_S",
    "HANG_FACTOR",
    "HANG_FLOOR_S",
    "HUNG_FILE",
    "TrialSettings",
    "WATCHDOG_ENV",
    "train_trial",
    "watchdog_limits",
]

#: An epoch may take this many times the trial's slowest epoch so far before the trial counts as hung.
HANG_FACTOR = 10.0
#: Seconds any later epoch may take whatever the earlier ones took.
HANG_FLOOR_S = 60.0
#: Seconds the first epoch (which includes building the child and any pre-training) may take.
FIRST_EPOCH_FLOOR_S = 600.0
#: Seconds a DDP trial waits, after its last epoch, for its Ray Train run to end (and give its CPUs/GPUs back).
DDP_FINISH_S = 120.0
#: Where the watchdog writes why it ended a trial (in the trial's directory).
HUNG_FILE = "dropsearch_hung.txt"
#: ``TrialSettings`` field -> the environment variable that overrides it (a positive number).
WATCHDOG_ENV = {
    "hang_factor": "DROPSEARCH_HANG_FACTOR",
    "hang_floor_s": "DROPSEARCH_HANG_FLOOR_S",
    "first_epoch_floor_s": "DROPSEARCH_FIRST_EPOCH_FLOOR_S",
}


def watchdog_limits(environ: Mapping[str, str] | None = None) -> dict[str, float]:
    """The watchdog's limits, each overridden by its variable of :data:`WATCHDOG_ENV` when set.

    Defaults: :data:`HANG_FACTOR`, :data:`HANG_FLOOR_S` and :data:`FIRST_EPOCH_FLOOR_S`.

    Args:
        environ: where to read the variables. Default: ``os.environ``.

    Returns:
        ``TrialSettings`` keyword arguments: ``hang_factor``, ``hang_floor_s``, ``first_epoch_floor_s``.

    Raises:
        ValueError: naming the variable, when it is set to anything but a positive finite number.
    """
    environ = os.environ if environ is None else environ
    limits = {"hang_factor": HANG_FACTOR, "hang_floor_s": HANG_FLOOR_S, "first_epoch_floor_s": FIRST_EPOCH_FLOOR_S}
    for key, variable in WATCHDOG_ENV.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            unit = "times" if key == "hang_factor" else "seconds"
            raise ValueError(f"{variable} must be a positive number of {unit}, got {raw!r}")
        limits[key] = value
    return limits


class BundleBox:
    """Carries the dataset's object reference to the trainable without Ray resolving it on every call.

    Each worker process keeps the datasets it fetched, so a reused worker fetches a search's dataset once.
    """

    _cache: dict[str, Any] = {}

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def get(self) -> Any:
        """The dataset (fetched once per worker process)."""
        import ray

        key = self.ref.hex()
        if key not in self._cache:
            self._cache.clear()  # one search's dataset at a time per worker
            self._cache[key] = ray.get(self.ref)
        return self._cache[key]


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares (plain data, shipped once with the trainable).

    Args:
        child: the child configuration common to all trials (``ChildConfig.to_dict()`` without a pattern).
        rungs: whether ASHA decides early stops (reports then end on its rungs).
        rung_grace: ASHA's first rung in epochs (``budget.grace_epochs``).
        group_epochs: whether short epochs are grouped into about one report a second.
        workers_per_trial: Ray Train workers of one child (1: the trial trains it itself).
        use_gpu: one GPU per Ray Train worker.
        cpus_per_worker: CPUs of one Ray Train worker.
        trial_timeout_s: wall-time limit of one trial attempt (``None``: none besides the hang watchdog).
        hang_factor: a later epoch may take this many times the slowest epoch so far...
        hang_floor_s: ...and at least this many seconds.
        first_epoch_floor_s: seconds the first epoch may take.
        model_factory: builds each child's model instead of the registry (``dropsearch.optimize`` only: a callable
            given in-process, shipped to the workers by Ray's cloudpickle; ``None`` for every service search).

    The watchdog's limits default to :func:`watchdog_limits` of the environment where the settings are made (the
    process that starts the search), so ``DROPSEARCH_HANG_FLOOR_S=5`` there shortens them for every trial.
    """

    child: dict[str, Any]
    rungs: bool = False
    rung_grace: int = ASHA_GRACE_PERIOD
    group_epochs: bool = True
    workers_per_trial: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    trial_timeout_s: float | None = None
    hang_factor: float = field(default_factory=lambda: watchdog_limits()["hang_factor"])
    hang_floor_s: float = field(default_factory=lambda: watchdog_limits()["hang_floor_s"])
    first_epoch_floor_s: float = field(default_factory=lambda: watchdog_limits()["first_epoch_floor_s"])
    model_factory: Any = None


class _Watchdog:
    """Ends this process when the trial stops making progress (see the module docstring).

    Time the trial spends handing a report to Tune (:meth:`reporting`) is not training: the driver may be slow to
    take it, and a trial that Tune stops (an ASHA rung, a cancel) is never given control back from that report.
    So the watchdog sleeps while a report is being handed over, and a new trial in the same process (Tune reuses
    the actor) stops the watchdog of the trial before it, which would otherwise end the process under the new
    trial.
    """

    _current: _Watchdog | None = None
    _lock = threading.Lock()

    def __init__(self, trial_dir: str | None, settings: TrialSettings) -> None:
        self.trial_dir, self.timeout_s, self.settings = trial_dir, settings.trial_timeout_s, settings
        self.started = self.last = time.monotonic()
        self.slowest: float | None = None
        self.done = threading.Event()
        self.waiting = False
        with _Watchdog._lock:
            if _Watchdog._current is not None:
                _Watchdog._current.stop()
            _Watchdog._current = self
        threading.Thread(target=self._watch, name="dropsearch-watchdog", daemon=True).start()

    @contextlib.contextmanager
    def reporting(self) -> Iterator[None]:
        """Around a report to Tune: not watched; the next epoch's deadline counts from its return."""
        self.waiting = True
        try:
            yield
        finally:
            self.last = time.monotonic()
            self.waiting = False

    def epoch_done(self, seconds: float) -> None:
        """Record one finished epoch that took ``seconds``."""
        self.slowest = seconds if self.slowest is None else max(self.slowest, seconds)
        self.last = time.monotonic()

    def stop(self) -> None:
        """The trial ended normally."""
        self.done.set()

    def _deadline(self) -> tuple[float, str]:
        s = self.settings
        limit = s.first_epoch_floor_s if self.slowest is None else max(s.hang_floor_s, s.hang_factor * self.slowest)
        hung_at, why = self.last + limit, f"no epoch finished in {round(limit, 1):g} s"
        if self.timeout_s is not None and self.started + self.timeout_s < hung_at:
            hung_at, why = self.started + self.timeout_s, f"budget.trial_timeout_s ({self.timeout_s:g} s) exceeded"
        return hung_at, why

    def _watch(self) -> None:
        while not self.done.wait(1.0):
            if self.waiting:
                continue
            hung_at, why = self._deadline()
            if time.monotonic() > hung_at:
                self._end(why)

    def _end(self, why: str) -> None:
        message = f"trial hung: {why}; its worker process was ended"
        if self.trial_dir:
            try:
                with open(os.path.join(self.trial_dir, HUNG_FILE), "w") as f:
                    f.write(message)
            except OSError:
                pass
        print(message, file=sys.stderr, flush=True)
        run_exit_hooks()
        os._exit(3)  # a blocked epoch cannot be interrupted from Python; Tune sees the worker die


def _attempt(trial_dir: str | None) -> int:
    """Which attempt of the trial this is (1 = first): counted in a file of the trial's directory."""
    if not trial_dir:
        return 1
    os.makedirs(trial_dir, exist_ok=True)
    path = os.path.join(trial_dir, "dropsearch_attempts")
    try:
        with open(path) as f:
            attempt = int(f.read().strip() or 0) + 1
    except (OSError, ValueError):
        attempt = 1
    with open(path, "w") as f:
        f.write(str(attempt))
    try:
        os.remove(os.path.join(trial_dir, HUNG_FILE))
    except OSError:
        pass
    return attempt


_NODE: list[str] = []


def _node() -> str:
    """``<host>:<first 8 hex digits of the Ray node id>`` of this worker."""
    if not _NODE:
        import socket

        import ray

        _NODE.append(f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}")
    return _NODE[0]


def _report(group: list[dict[str, Any]], *, last: bool = False) -> None:
    """One Tune report: the last epoch's metrics (what schedulers read) and every epoch of the group.

    The report of the trial's final epoch carries ``LAST_REPORT: True``, so that a searcher can count the trial as
    done while Tune is still ending it (the controller's batch closes and its next trials can take over this
    trial's process instead of a new one: :class:`~dropsearch.controller.searcher.ControllerSearcher`).
    """
    from ray import tune

    group = [{**group[0], "node": _node()}, *group[1:]]
    tune.report({**group[-1], "epochs": group, **({LAST_REPORT: True} if last else {})})


def train_trial(config: dict[str, Any], *, bundle: BundleBox, settings: TrialSettings) -> None:
    """Tune function trainable: train the child of ``config["pattern"]`` and report its epochs.

    Args:
        config: the trial's config from the searcher: ``pattern`` (a pattern document) and optionally ``seed``
            (validation runs re-train a pattern with their own seeds).
        bundle: the search's dataset.
        settings: what all trials of the search share.
    """
    from ray import tune

    from dropsearch.runner.grouping import epochs_per_call
    from dropsearch.workers.child import ChildConfig

    trial_dir = tune.get_context().get_trial_dir()
    overrides = {"pattern": config["pattern"], "attempt": _attempt(trial_dir)}
    if config.get("seed") is not None:
        overrides["seed"] = int(config["seed"])
    child_config = ChildConfig.from_dict({**settings.child, **overrides})
    watchdog = _Watchdog(trial_dir, settings)
    try:
        if settings.workers_per_trial > 1:
            _relay_ddp(child_config, settings, watchdog)
            return
        from dropsearch.workers.train import ChildTraining

        child = ChildTraining(child_config, bundle=bundle.get(), model_factory=settings.model_factory)
        epoch_s: float | None = None
        while child.epoch < child_config.epochs:
            n = epochs_per_call(
                child.epoch,
                child_config.epochs,
                epoch_s if settings.group_epochs else None,
                rungs=settings.rungs,
                grace=settings.rung_grace,
            )
            group: list[dict[str, Any]] = []
            error: Exception | None = None
            for _ in range(n):
                start = time.perf_counter()
                try:
                    group.append(child.run_epoch())
                except Exception as exc:  # the epochs before it are reported first
                    error = exc
                    break
                epoch_s = time.perf_counter() - start
                watchdog.epoch_done(epoch_s)
            if group:
                with watchdog.reporting():
                    _report(group, last=error is None and child.epoch >= child_config.epochs)
            if error is not None:
                raise error
    finally:
        watchdog.stop()


def _relay_ddp(child_config: Any, settings: TrialSettings, watchdog: _Watchdog) -> None:
    """Train the child with Ray Train workers (in a thread) and relay rank 0's per-epoch metrics to Tune.

    The trainer's placement group holds the workers' CPUs/GPUs (:mod:`dropsearch.runner.ddp_cleanup`): the trial
    waits for the trainer to end after the last epoch (Ray Train then removes it), removes it itself when the
    process ends first (Tune stopping the trial, the watchdog), and removes those of earlier trials that could
    not (a crash) before and while its own trainer starts.
    """
    from ray.util.queue import Empty, Queue

    from dropsearch.runner.ddp_cleanup import reap_orphans, release_own
    from dropsearch.workers.ddp import run_ddp_child

    on_exit(release_own)
    reap_orphans()
    # no CPU: the trial's placement group (which Tune makes child actors join) holds only the trial's 0.01 CPU
    reports: Queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})
    errors: list[BaseException] = []

    def train() -> None:
        try:
            result = run_ddp_child(
                child_config.to_dict(),
                reports=reports,
                num_workers=settings.workers_per_trial,
                use_gpu=settings.use_gpu,
                cpus_per_worker=settings.cpus_per_worker,
                placement_group_cleaner=False,  # ours: dropsearch.runner.ddp_cleanup
            )
            if getattr(result, "error", None) is not None:
                errors.append(result.error)
        except BaseException as exc:  # relayed below
            errors.append(exc)

    thread = threading.Thread(target=train, name="ddp-child", daemon=True)
    thread.start()
    reported, last = 0, time.perf_counter()
    reaped = last
    while reported < child_config.epochs:
        try:
            metrics = reports.get(timeout=0.5)
        except Empty:
            if reported == 0 and time.perf_counter() - reaped > 2.0:  # a predecessor's group may die only now
                reap_orphans()
                reaped = time.perf_counter()
            if not thread.is_alive():
                if reports.empty():
                    error = errors[0] if errors else None
                    raise RuntimeError(f"DDP child ended after {reported} epoch(s): {error!r}") from error
            continue
        now = time.perf_counter()
        watchdog.epoch_done(now - last)
        last = now
        reported += 1
        with watchdog.reporting():
            _report([metrics], last=reported >= child_config.epochs)
        last = time.perf_counter()
    watchdog.stop()
    thread.join(DDP_FINISH_S)  # the trainer removes its workers and their placement group
