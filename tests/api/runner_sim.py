"""Simulate the runner through the store's own functions (the API tests need searches that make progress)."""

from __future__ import annotations

from typing import Any

from dropsearch.store.db import Engine, session_scope
from dropsearch.store.events import append_event
from dropsearch.store.leases import claim_next_queued_search
from dropsearch.store.searches import mark_search_finished
from dropsearch.store.trials import trial_finished, trial_reported, trial_started

RUNNER = "runner-test"


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
