"""Lease fencing: searches.lease_generation, and the generation that wrote each trial, event and controller state.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WRITTEN = ("trials", "controller_states", "events")


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("lease_generation", sa.Integer(), nullable=False, server_default="0"))
    for table in _WRITTEN:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_generation", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in (*_WRITTEN, "searches"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_generation")
