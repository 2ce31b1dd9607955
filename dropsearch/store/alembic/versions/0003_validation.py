"""Validation stage: trials.kind / arm / seed, and the search's validation report (searches.validation).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="search"))
        batch.add_column(sa.Column("arm", sa.String(200), nullable=True))
        batch.add_column(sa.Column("seed", sa.Integer(), nullable=True))
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("validation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("validation")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("seed")
        batch.drop_column("arm")
        batch.drop_column("kind")
