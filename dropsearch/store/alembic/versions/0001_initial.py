"""Initial schema: api_keys, searches, trials, controller_states, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the values in models.py at this revision (revisions never import application code).
SEARCH_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'cancelled'"
TRIAL_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'stopped', 'cancelled'"
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _time("created_at", nullable=False),
        _time("revoked_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])
    op.create_index("ix_api_keys_owner", "api_keys", ["owner"])

    op.create_table(
        "searches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("objective_mode", sa.String(3), nullable=False),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trials_total", sa.Integer(), nullable=False),
        sa.Column("trials_done", sa.Integer(), nullable=False),
        sa.Column("best_reward", sa.Float(), nullable=True),
        sa.Column("best_trial_id", sa.String(32), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        _time("lease_expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_searches"),
        sa.CheckConstraint(f"status IN ({SEARCH_STATUSES})", name="ck_searches_status"),
        sa.CheckConstraint("objective_mode IN ('max', 'min')", name="ck_searches_objective_mode"),
    )
    op.create_index("ix_searches_owner", "searches", ["owner", "created_at"])
    op.create_index("ix_searches_status", "searches", ["status", "created_at"])

    op.create_table(
        "trials",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("search_id", sa.String(32), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=False),
        sa.Column("pattern", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        _time("created_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        _time("heartbeat_at"),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("node", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
        sa.ForeignKeyConstraint(
            ["search_id"], ["searches.id"], name="fk_trials_search_id_searches", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("search_id", "index", name="uq_trials_search_id_index"),
        sa.CheckConstraint(f"status IN ({TRIAL_STATUSES})", name="ck_trials_status"),
    )
    op.create_index("ix_trials_search_id", "trials", ["search_id", "status"])

    op.create_table(
        "controller_states",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("search_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("trials_seen", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_controller_states"),
        sa.ForeignKeyConstraint(
            ["search_id"], ["searches.id"], name="fk_controller_states_search_id_searches", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("search_id", "version", name="uq_controller_states_search_id_version"),
    )

    op.create_table(
        "events",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("search_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _time("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["search_id"], ["searches.id"], name="fk_events_search_id_searches", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_events_search_id", "events", ["search_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("controller_states")
    op.drop_table("trials")
    op.drop_table("searches")
    op.drop_table("api_keys")
