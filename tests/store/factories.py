"""Small builders shared by the store tests."""

from __future__ import annotations

from sqlalchemy import Engine

from dropsearch.store.db import session_scope
from dropsearch.store.records import SearchRecord
from dropsearch.store.searches import create_search


def spec(trials: int = 4, name: str = "digits-convnet", mode: str = "max") -> dict:
    """A job-spec-shaped dict (the store keeps it as opaque JSON)."""
    return {
        "name": name,
        "model": {"name": "convnet", "params": {}},
        "dataset": {"name": "digits", "params": {}},
        "budget": {"trials": trials, "epochs_per_trial": 2},
        "objective": {"metric": "val_accuracy", "mode": mode},
    }


def make_search(engine: Engine, owner: str = "alice", trials: int = 4, mode: str = "max") -> SearchRecord:
    """Create and commit one queued search."""
    with session_scope(engine) as session:
        return create_search(
            session=session,
            owner=owner,
            name=f"{owner}-search",
            spec=spec(trials, mode=mode),
            trials_total=trials,
            objective_mode=mode,
        )
