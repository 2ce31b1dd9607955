"""SQLAlchemy 2 table models: searches, trials, controller states, events and API keys.

One ``*Model`` class per table (Optuna ``storages/_rdb/models.py`` style). Models hold no session and no business
logic; the repository modules (``searches``, ``leases``, ``trials``, ...) read and write them and hand out frozen
records (:mod:`dropsearch.store.records`), so nothing outside the store touches ORM objects.

Every schema change goes through an Alembic revision in ``store/alembic/versions/``; a test checks that the
migrated schema equals this metadata on SQLite and Postgres. Constraint names come from the naming convention
below so that they are the same on every database.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "COMPLETED_TRIAL_STATUSES",
    "MAX_KIND_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_OWNER_LENGTH",
    "SEARCH_STATUSES",
    "TERMINAL_SEARCH_STATUSES",
    "TRIAL_STATUSES",
    "ApiKeyModel",
    "Base",
    "ControllerStateModel",
    "EventModel",
    "SearchModel",
    "TrialModel",
    "UTCDateTime",
    "utcnow",
]

MAX_OWNER_LENGTH = 255
MAX_NAME_LENGTH = 200
MAX_KIND_LENGTH = 64
ID_LENGTH = 32  # uuid4().hex
STATUS_LENGTH = 16
KEY_HASH_LENGTH = 64  # sha256 hex digest
KEY_PREFIX_LENGTH = 8

SEARCH_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_SEARCH_STATUSES = ("succeeded", "failed", "cancelled")
TRIAL_STATUSES = ("queued", "running", "succeeded", "failed", "stopped", "cancelled")
# A completed trial has its final result stored and is never run again. "stopped" = early-stopped (it has a reward);
# "failed" is only written once the runner gives up on the trial (Ray's own retries stay "running").
COMPLETED_TRIAL_STATUSES = ("succeeded", "stopped", "failed")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite needs INTEGER (not BIGINT) for an auto-incrementing rowid primary key.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(timezone.utc)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that always returns aware UTC datetimes, on SQLite too.

    SQLite has no time zones: values are stored as naive UTC text (which sorts chronologically) and come back
    with ``tzinfo=UTC``. Naive datetimes are refused, so local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware datetime -> UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC datetimes (use utcnow())")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Stored value -> aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base holding the metadata (with a constraint naming convention)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ApiKeyModel(Base):
    """An API key. Only the sha256 of the key is stored; ``prefix`` (its first 8 characters) is for display."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"), Index(None, "prefix"), Index(None, "owner"))

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(MAX_OWNER_LENGTH))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    key_hash: Mapped[str] = mapped_column(String(KEY_HASH_LENGTH))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LENGTH))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class SearchModel(Base):
    """One search (a submitted job spec), its progress, and the runner lease that guards its execution."""

    __tablename__ = "searches"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(SEARCH_STATUSES)})", name="status"),
        CheckConstraint("objective_mode IN ('max', 'min')", name="objective_mode"),
        Index(None, "owner", "created_at"),
        Index(None, "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(MAX_OWNER_LENGTH))
    name: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), default="queued")
    spec: Mapped[dict[str, Any]]
    objective_mode: Mapped[str] = mapped_column(String(3), default="max")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    trials_total: Mapped[int] = mapped_column(Integer)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    best_reward: Mapped[float | None] = mapped_column(Float)
    best_trial_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))  # no FK: trials already point here
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the validation stage's report
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(MAX_OWNER_LENGTH))
    lease_expires_at: Mapped[datetime | None]
    # Bumped by every claim and take-over: the fencing token a runner's writes are checked against.
    lease_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TrialModel(Base):
    """One trial of a search: the sampled tokens, the decoded pattern, and its per-epoch metrics and result."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("search_id", "index"),
        CheckConstraint(f"status IN ({_in(TRIAL_STATUSES)})", name="status"),
        Index(None, "search_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[list[Any]]
    pattern: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    reward: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    wall_s: Mapped[float | None] = mapped_column(Float)
    node: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    error: Mapped[str | None] = mapped_column(Text)
    lease_generation: Mapped[int | None] = mapped_column(Integer)  # the search lease that wrote it last
    kind: Mapped[str] = mapped_column(String(16), default="search", server_default="search")  # or "validation"
    arm: Mapped[str | None] = mapped_column(String(200))  # validation runs: the arm re-trained
    seed: Mapped[int | None] = mapped_column(Integer)  # validation runs: the training seed


class ControllerStateModel(Base):
    """A saved controller state (policy weights, optimiser, baseline), versioned 1, 2, ... per search."""

    __tablename__ = "controller_states"
    __table_args__ = (UniqueConstraint("search_id", "version"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    updates: Mapped[int] = mapped_column(Integer)
    trials_seen: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_generation: Mapped[int | None] = mapped_column(Integer)  # the search lease that wrote it


class EventModel(Base):
    """A search event (trial started / reported / finished, controller updated, ...); ``id`` is the SSE cursor."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "search_id", "id"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(MAX_KIND_LENGTH))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_generation: Mapped[int | None] = mapped_column(Integer)  # the search lease that wrote it (None: the API)
