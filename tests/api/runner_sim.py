"""Simulate the runner through the store's own functions (the API tests need searches that make progress)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dropsearch.search.validation import Arm, ValidationResults
from dropsearch.search.validation_report import ValidationReport
from dropsearch.store.db import Engine, session_scope
from dropsearch.store.events import append_event
from dropsearch.store.leases import claim_next_queued_search
from dropsearch.store.searches import mark_search_finished
from dropsearch.store.trials import (
    VALIDATION_INDEX_BASE,
    set_validation_report,
    trial_finished,
    trial_reported,
    trial_started,
)

RUNNER = "runner-test"


def spec(name: str, validation: Mapping[str, Any] | None = None, **budget: Any) -> dict[str, Any]:
    """A job spec named ``name`` for the simulated runner: the convnet on digits with ``budget``, and no validation
    stage unless ``validation`` is given (tests that count the search trials only leave it out)."""
    return {
        "name": name,
        "model": {"name": "convnet"},
        "dataset": {"name": "digits"},
        "budget": budget,
        "validation": dict(validation) if validation is not None else {"enabled": False},
    }


def pattern(variant: str = "autodropout", rate: float = 0.2) -> dict[str, Any]:
    """A pattern document (docs/REGULARIZERS.md) for one conv site and one sequence-free site list."""
    shape = {
        "size": 3,
        "stride": 2,
        "repeat": 2,
        "rotate": 30,
        "shear_x": 0.0,
        "shear_y": 0.15,
        "share_c": True,
        "residual": False,
    }
    sites: list[dict[str, Any]] = [
        {
            "site": "features.drop1",
            "rate": rate,
            "shape": shape if variant == "autodropout" else ({"block_size": 3} if variant == "dropblock" else {}),
        }
    ]
    return {"format": "dropsearch.pattern/v1", "variant": variant, "sites": sites, "params": {}, "provenance": {}}


def claim(engine: Engine, search_id: str) -> None:
    """Make ``search_id`` running (it must be the oldest queued search)."""
    with session_scope(engine) as session:
        record = claim_next_queued_search(session=session, runner_id=RUNNER, lease_s=60)
    assert record is not None and record.id == search_id


def run_trial(
    engine: Engine,
    search_id: str,
    index: int,
    reward: float,
    *,
    epochs: int = 2,
    variant: str = "autodropout",
    status: str = "succeeded",
) -> str:
    """Start, report ``epochs`` epochs and finish trial ``index``, writing the events a runner writes."""
    with session_scope(engine) as session:
        trial = trial_started(
            session=session,
            search_id=search_id,
            index=index,
            tokens=[index, 1],
            pattern=pattern(variant, rate=0.1 * (index % 5)),
            node="node-1",
        )
        append_event(
            session=session, search_id=search_id, kind="trial.started", data={"trial_id": trial.id, "index": index}
        )
    for epoch in range(epochs):
        metrics = {"val_accuracy": reward * (epoch + 1) / epochs, "loss": 1.0 / (epoch + 1)}
        with session_scope(engine) as session:
            trial_reported(session=session, search_id=search_id, index=index, epoch=epoch, metrics=metrics)
            append_event(
                session=session,
                search_id=search_id,
                kind="trial.reported",
                data={"trial_id": trial.id, "index": index, "epoch": epoch, **metrics},
            )
    with session_scope(engine) as session:
        trial_finished(session=session, search_id=search_id, index=index, status=status, reward=reward)
        append_event(
            session=session,
            search_id=search_id,
            kind="trial.finished",
            data={"trial_id": trial.id, "index": index, "reward": reward, "status": status},
        )
    return trial.id


def finish(engine: Engine, search_id: str, status: str = "succeeded", error: str | None = None) -> None:
    """Give the search its final status."""
    with session_scope(engine) as session:
        append_event(session=session, search_id=search_id, kind="search.finished", data={"status": status})
        assert mark_search_finished(session=session, search_id=search_id, status=status, error=error)


def run_validation(
    engine: Engine,
    search_id: str,
    arms: Sequence[Arm],
    values: Mapping[str, Sequence[float | None]],
    *,
    seeds: Sequence[int] = (10_000, 10_001, 10_002),
    mode: str = "max",
    metric: str = "val_accuracy",
) -> dict[str, Any]:
    """Run a validation stage: every arm at every seed (``values[arm][i]`` at ``seeds[i]``; ``None``: failed).

    Writes the validation trials (``kind="validation"``, indices from ``VALIDATION_INDEX_BASE``, seed by seed, arm
    by arm) and, after each seed, the report (the real :class:`ValidationReport` plus the chosen arm's pattern)
    with its ``validation_updated`` event, as the runner does; the last one is final.

    Returns:
        The final stored report.
    """
    results = ValidationResults(list(arms), seeds=list(seeds), mode=mode)
    index = VALIDATION_INDEX_BASE
    data: dict[str, Any] = {}
    for i, seed in enumerate(seeds):
        for arm in arms:
            value = values[arm.name][i]
            status = "failed" if value is None else "succeeded"
            with session_scope(engine) as session:
                trial = trial_started(
                    session=session,
                    search_id=search_id,
                    index=index,
                    tokens=[],
                    pattern=arm.pattern,
                    node="node-1",
                    kind="validation",
                    arm=arm.name,
                    seed=seed,
                )
                started = {"index": index, "attempt": trial.attempt, "node": "node-1", "kind": "validation"}
                started.update(variant=arm.pattern["variant"], arm=arm.name, seed=seed)
                append_event(session=session, search_id=search_id, kind="trial_started", data=started)
            with session_scope(engine) as session:
                if value is not None:
                    metrics = {metric: value}
                    trial_reported(session=session, search_id=search_id, index=index, epoch=0, metrics=metrics)
                trial_finished(
                    session=session,
                    search_id=search_id,
                    index=index,
                    status=status,
                    reward=value,
                    error=None if value is not None else "diverged",
                )
                finished = {"index": index, "status": status, "reward": value, "wall_s": 0.1}
                append_event(session=session, search_id=search_id, kind="trial_finished", data=finished)
            results.record(arm.name, seed, value)
            index += 1
        report = ValidationReport.from_results(results, metric=metric)
        data = report.to_dict()
        data["pattern"] = None if report.chosen is None else results.arm(report.chosen).pattern
        final = i == len(seeds) - 1
        with session_scope(engine) as session:
            set_validation_report(session=session, search_id=search_id, report=data, final=final)
            append_event(
                session=session,
                search_id=search_id,
                kind="validation_updated",
                data={"final": final, "validation": data},
            )
    return data
