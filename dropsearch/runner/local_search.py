"""``dropsearch.optimize``: search dropout patterns for your own model and tensors, without the service.

Like Optuna's ``study.optimize`` or Ray Tune's ``Tuner.fit``: one call runs the search on a local Ray (or
``ray_address``) through the service's own engine (:func:`~dropsearch.runner.engine.run_search`: the same
controller, scheduler, trainable and validation stage), and returns the validated best pattern, the validation
table and every trial. Nothing is stored and no HTTP is involved; the model is a Python callable that Ray ships to
its workers with cloudpickle. (It is not called ``dropsearch.search``: that name is the ``dropsearch.search``
subpackage, the job spec and search spaces.)

Usage::

    result = dropsearch.optimize(lambda: MyNet(), (x_train, y_train), (x_val, y_val),
                                 budget={"trials": 16, "epochs_per_trial": 5})
    applied = dropsearch.apply(MyNet(), result.pattern)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dropsearch.search.spec import DatasetRef, ModelRef, SearchSpec

__all__ = ["LocalSearchResult", "LocalTrial", "optimize"]

#: The spec sections ``optimize`` takes as keyword arguments (dicts, or the ``dropsearch.search.spec`` models).
SECTIONS = ("space", "controller", "budget", "resources", "validation", "objective", "training")


@dataclass(frozen=True)
class LocalTrial:
    """One trial of a local search.

    Args:
        index: the trial's index (validation runs have indices from 1,000,000 on).
        kind: ``"search"`` (proposed by the controller) or ``"validation"`` (a re-training of the stage).
        status: ``succeeded``, ``stopped`` (early-stopped), ``failed`` or ``cancelled``.
        reward: the raw objective metric (``objective.mode`` says whether higher is better); ``None`` if failed.
        pattern: the pattern document the trial trained.
        metrics: the metrics of every reported epoch.
        wall_s: seconds the trial took.
        error: why it failed.
        arm: the validation arm (validation runs only).
        seed: the training seed (validation runs only).
    """

    index: int
    kind: str
    status: str
    reward: float | None
    pattern: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    wall_s: float
    error: str | None = None
    arm: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class LocalSearchResult:
    """What :func:`optimize` returns.

    Args:
        pattern: the pattern to use: the validation stage's chosen arm when the stage ran (it may be a baseline,
            e.g. no dropout, when nothing beat it), else the best search trial's pattern. ``None`` when no trial
            succeeded. Install it with ``dropsearch.apply(fresh_model, result.pattern)``.
        status: ``succeeded`` or ``cancelled`` (the search's time limit also ends in ``succeeded``).
        validation: the validation stage's report (arms with mean, sd and paired gaps, the chosen arm, the
            conclusion), or ``None`` when it did not run.
        trials: every trial, search and validation, in the order they ended.
        best_reward: the best search trial's reward (raw objective).
        best_search_pattern: that trial's pattern.
        sites: the model's dropout sites the search used.
        spec: the validated spec the engine ran.
        wall_s: seconds the search took.
    """

    pattern: dict[str, Any] | None
    status: str
    validation: dict[str, Any] | None
    trials: list[LocalTrial]
    best_reward: float | None
    best_search_pattern: dict[str, Any] | None
    sites: tuple[Any, ...]
    spec: SearchSpec
    wall_s: float = 0.0
    search_trials: list[LocalTrial] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search_trials", [t for t in self.trials if t.kind == "search"])


def make_spec(*, name: str, seed: int, sections: Mapping[str, Any]) -> SearchSpec:
    """Validate the sections as the service's job spec does (errors name the field, e.g. ``budget.trials``).

    ``model`` and ``dataset`` are labels only (``local:<class>``, ``local:tensors``): the model and data are the
    caller's objects, never looked up by name.
    """
    raw: dict[str, Any] = {
        "name": name,
        "model": ModelRef.model_construct(name=name, params={}),
        "dataset": DatasetRef.model_construct(name="local:tensors", params={}),
        "seed": seed,
    }
    for section in SECTIONS:
        value = sections.get(section)
        if value is not None:
            raw[section] = value.model_dump() if hasattr(value, "model_dump") else value
    spec = SearchSpec.model_validate(raw)
    if spec.resources.workers_per_trial != 1:
        raise ValueError("resources.workers_per_trial: dropsearch.optimize trains each child in one process; use 1")
    return spec


def optimize(
    model_fn: Callable[..., Any],
    train: Any,
    val: Any,
    *,
    space: Any = None,
    controller: Any = None,
    budget: Any = None,
    resources: Any = None,
    validation: Any = None,
    objective: Any = None,
    training: Any = None,
    seed: int = 0,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    sites: Sequence[str] | str | None = None,
    example_input: Any = None,
    forward: Callable[[Any, Any], Any] | None = None,
    num_classes: int | None = None,
    storage_path: str | None = None,
    callbacks: Any = None,
) -> LocalSearchResult:
    """Search dropout patterns for your model on your tensors, on a local Ray, with the service's engine.

    Not called ``dropsearch.search``: that name is the ``dropsearch.search`` subpackage.

    Args:
        model_fn: returns a fresh ``nn.Module`` on each call (one per trial, in the Ray workers, which receive it
            through cloudpickle). It takes no arguments, or the keywords ``num_classes`` and / or ``in_shape``
            (one example's shape, e.g. ``(1, 8, 8)``). Its output must be class logits ``(B, K)``; see
            ``forward`` otherwise.
        train: training data: ``(x, y)`` tensors or a ``TensorDataset`` of two; x float ``(N, ...)`` or int64
            token ids ``(N, T)``, y int64 class ids ``(N,)``.
        val: validation data in the same form; every reward is measured on it.
        space: the spec's ``space`` section (dict or ``SpaceSpec``): variants, rates, choices.
        controller: the ``controller`` section (``reinforce``, ``random`` or ``tpe`` and its settings).
        budget: the ``budget`` section (trials, epochs per trial, concurrency, early stopping, limits).
        resources: the ``resources`` section (CPUs / GPUs per trial; ``workers_per_trial`` must be 1).
        validation: the ``validation`` section (top_k, baselines, seeds, racing; ``{"enabled": False}`` skips it).
        objective: the ``objective`` section (metric, mode, last_k; default ``val_accuracy``, max).
        training: the ``training`` section (batch size, learning rate, optimizer, device...).
        seed: the search's seed (controller, children).
        ray_address: a Ray cluster to join; ``None`` uses the running Ray or starts a local one (left running,
            as ``Tuner.fit`` does; ``ray.shutdown()`` stops it). A cluster's workers need ``model_fn``'s module
            importable, or defined in ``__main__`` / a notebook (then cloudpickle ships it by value).
        num_cpus: CPUs of a local Ray that this call starts.
        sites: module paths (globs allowed) to search over, as ``dropsearch.find_sites`` takes them. Default: the
            model's dropout and stochastic-depth layers that the forward pass reaches.
        example_input: an input the model (through ``forward``) takes, for finding the sites. Default: the first
            two training inputs.
        forward: ``forward(model, x) -> logits (B, K)`` for a model that does not take one input tensor, e.g.
            ``lambda m, ids: m(input_ids=ids, attention_mask=ids.ne(0)).logits`` for a Hugging Face classifier.
            Sites keep the model's own module paths, so the pattern applies to a fresh ``model_fn()``.
        num_classes: classes of the task. Default: the largest label plus one.
        storage_path: where Ray Tune writes its experiment; default a temporary directory, removed at the end.
        callbacks: a :class:`~dropsearch.runner.events.SearchCallbacks` receiving the engine's events.

    Returns:
        The validated best pattern, the validation report and every trial.

    Raises:
        pydantic.ValidationError: a bad spec section (a ``ValueError``; each error names its field).
        TypeError / ValueError: bad data (naming ``train`` or ``val``), a ``model_fn`` that does not return a
            module, or ``sites`` that match nothing.
    """
    from dropsearch.regularizers.find_sites import find_sites
    from dropsearch.runner.engine import run_search
    from dropsearch.runner.events import SearchCallbacks, TrialStarted
    from dropsearch.search.builtin import build_space
    from dropsearch.workers.local_model import LocalModelFactory, bundle_from_tensors
    from dropsearch.workers.setup import PreparedSearch

    sections = {"space": space, "controller": controller, "budget": budget, "resources": resources}
    sections.update(validation=validation, objective=objective, training=training)
    bundle = bundle_from_tensors(train, val, num_classes=num_classes)
    factory = LocalModelFactory(model_fn, forward)
    model = factory(in_shape=bundle.in_shape, num_classes=bundle.num_classes)
    class_name = type(model._dropsearch_model).__name__
    spec = make_spec(name=f"local:{class_name}", seed=seed, sections=sections)
    try:
        found = tuple(find_sites(model, bundle.x_train[:2] if example_input is None else example_input, paths=sites))
    except ValueError as exc:  # said of the view and of find_sites' argument: say it of the model and ``sites``
        raise ValueError(str(exc).replace("LocalModel", class_name).replace("paths=", "sites=")) from None
    if not found:
        raise ValueError(
            f"{class_name} has no dropout or stochastic-depth layer that its forward pass reaches; "
            "name the modules where dropout may go with sites=[...] (globs allowed)"
        )
    factory = LocalModelFactory(model_fn, forward, found)
    choices = spec.space.choices or None
    decisions = build_space(found, variants=spec.space.variants, rates=spec.space.rates, choices=choices)
    prepared = PreparedSearch(spec=spec, bundle=bundle, sites=found, space=decisions, model_factory=factory)

    started: dict[int, TrialStarted] = {}
    user = callbacks or SearchCallbacks()

    def on_started(event: TrialStarted) -> None:
        started[event.index] = event
        if user.on_trial_started is not None:
            user.on_trial_started(event)

    hooks = SearchCallbacks(
        on_trial_started=on_started,
        on_epoch=user.on_epoch,
        on_trial_finished=user.on_trial_finished,
        on_controller_updated=user.on_controller_updated,
        on_validation_updated=user.on_validation_updated,
        should_cancel=user.should_cancel,
    )
    storage = storage_path or tempfile.mkdtemp(prefix="dropsearch-optimize-")
    try:
        result = run_search(
            spec, callbacks=hooks, ray_address=ray_address, num_cpus=num_cpus, storage_path=storage, prepared=prepared
        )
    finally:
        if storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    trials = [_trial(t, started.get(t.index)) for t in result.trials]
    chosen = (result.validation or {}).get("pattern")
    return LocalSearchResult(
        pattern=chosen if chosen is not None else result.best_pattern,
        status=result.status,
        validation=result.validation,
        trials=trials,
        best_reward=result.best_reward,
        best_search_pattern=result.best_pattern,
        sites=found,
        spec=spec,
        wall_s=result.wall_s,
    )


def _trial(finished: Any, started: Any) -> LocalTrial:
    return LocalTrial(
        index=finished.index,
        kind=finished.kind,
        status=finished.status,
        reward=finished.reward,
        pattern=None if started is None else started.pattern,
        metrics=list(finished.metrics),
        wall_s=finished.wall_s,
        error=finished.error,
        arm=None if started is None else started.arm,
        seed=None if started is None else started.seed,
    )
