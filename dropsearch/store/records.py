"""Frozen records that repository functions return: plain data, safe to use after the session has closed.

The API and the runner only ever see these (never ORM objects), so nothing outside ``dropsearch.store`` imports
SQLAlchemy. Records are snapshots: they do not change when the database does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dropsearch.store.models import (
    COMPLETED_TRIAL_STATUSES,
    ApiKeyModel,
    ControllerStateModel,
    EventModel,
    SearchModel,
    TrialModel,
)

__all__ = [
    "ApiKeyRecord",
    "ControllerStateRecord",
    "EventRecord",
    "SearchPage",
    "SearchRecord",
    "TrialPage",
    "TrialRecord",
]


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key without its secret (``prefix`` is the first 8 characters of the plain key, for display)."""

    id: int
    owner: str
    name: str
    prefix: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, row: ApiKeyModel) -> ApiKeyRecord:
        """Snapshot of ``row``."""
        return cls(row.id, row.owner, row.name, row.prefix, row.is_admin, row.created_at, row.revoked_at)


@dataclass(frozen=True)
class SearchRecord:
    """A search: spec, status, progress (``trials_done`` of ``trials_total``), best result and runner lease."""

    id: str
    owner: str
    name: str | None
    status: str
    spec: dict[str, Any]
    objective_mode: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    trials_total: int
    trials_done: int
    best_reward: float | None
    best_trial_id: str | None
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_generation: int = 0
    validation: dict[str, Any] | None = None

    @classmethod
    def from_model(cls, row: SearchModel) -> SearchRecord:
        """Snapshot of ``row``."""
        return cls(
            id=row.id,
            owner=row.owner,
            name=row.name,
            status=row.status,
            spec=dict(row.spec),
            objective_mode=row.objective_mode,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            error=row.error,
            trials_total=row.trials_total,
            trials_done=row.trials_done,
            best_reward=row.best_reward,
            best_trial_id=row.best_trial_id,
            cancel_requested=row.cancel_requested,
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
            lease_generation=row.lease_generation or 0,
            validation=None if row.validation is None else dict(row.validation),
        )


@dataclass(frozen=True)
class SearchPage:
    """One page of searches (newest first) and the total number the query matches."""

    items: list[SearchRecord]
    total: int


@dataclass(frozen=True)
class TrialRecord:
    """A trial. ``metrics`` holds one dict per reported epoch, sorted by its ``"epoch"`` key."""

    id: str
    search_id: str
    index: int
    tokens: list[Any]
    pattern: dict[str, Any] | None
    status: str
    attempt: int
    reward: float | None
    metrics: list[dict[str, Any]]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    wall_s: float | None
    node: str | None
    error: str | None
    lease_generation: int | None = None
    kind: str = "search"
    arm: str | None = None
    seed: int | None = None

    @property
    def completed(self) -> bool:
        """Whether the trial has its final result (succeeded, early-stopped or finally failed)."""
        return self.status in COMPLETED_TRIAL_STATUSES

    @classmethod
    def from_model(cls, row: TrialModel) -> TrialRecord:
        """Snapshot of ``row``."""
        return cls(
            id=row.id,
            search_id=row.search_id,
            index=row.index,
            tokens=list(row.tokens),
            pattern=None if row.pattern is None else dict(row.pattern),
            status=row.status,
            attempt=row.attempt,
            reward=row.reward,
            metrics=[dict(entry) for entry in row.metrics],
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            heartbeat_at=row.heartbeat_at,
            wall_s=row.wall_s,
            node=row.node,
            error=row.error,
            lease_generation=row.lease_generation,
            kind=row.kind or "search",
            arm=row.arm,
            seed=row.seed,
        )


@dataclass(frozen=True)
class TrialPage:
    """One page of trials (by index) and the total number the query matches."""

    items: list[TrialRecord]
    total: int


@dataclass(frozen=True)
class ControllerStateRecord:
    """A saved controller state: ``blob`` is opaque to the store (the controller serialises it)."""

    search_id: str
    version: int
    blob: bytes
    updates: int
    trials_seen: int
    created_at: datetime
    lease_generation: int | None = None

    @classmethod
    def from_model(cls, row: ControllerStateModel) -> ControllerStateRecord:
        """Snapshot of ``row``."""
        return cls(
            row.search_id,
            row.version,
            bytes(row.blob),
            row.updates,
            row.trials_seen,
            row.created_at,
            row.lease_generation,
        )


@dataclass(frozen=True)
class EventRecord:
    """An event of a search; ``id`` increases with insertion and is the SSE ``Last-Event-ID`` cursor."""

    id: int
    search_id: str
    kind: str
    data: dict[str, Any]
    created_at: datetime
    lease_generation: int | None = None

    @classmethod
    def from_model(cls, row: EventModel) -> EventRecord:
        """Snapshot of ``row``."""
        return cls(row.id, row.search_id, row.kind, dict(row.data), row.created_at, row.lease_generation)
