"""run.warnings, run.seconds_per_epoch; runs found by name

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("seconds_per_epoch", sa.Float(), nullable=True))
    op.create_index(op.f("ix_run_owner_name"), "run", ["owner", "name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_run_owner_name"), table_name="run")
    # ALTER TABLE … DROP COLUMN, on SQLite too (3.35 and later): a batch copy of
    # the table would drop it, and with foreign keys on its dependent rows with it
    op.drop_column("run", "seconds_per_epoch")
    op.drop_column("run", "warnings")
