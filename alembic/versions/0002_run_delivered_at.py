"""run.delivered_at: when the executor last accepted the run id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.db.base import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("delivered_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN, on SQLite too (3.35 and later): a batch copy of
    # the table would drop it, and with foreign keys on its dependent rows with it
    op.drop_column("run", "delivered_at")
