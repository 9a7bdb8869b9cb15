"""owners on datasets and runs; api_key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.db.base import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_index(op.f("ix_api_key_prefix"), "api_key", ["prefix"])
    op.create_index(op.f("ix_api_key_owner"), "api_key", ["owner"])
    for table in ("dataset", "run"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("owner", sa.String(length=100), server_default="local", nullable=False)
            )
    op.create_index(op.f("ix_dataset_owner"), "dataset", ["owner"])
    op.create_index(op.f("ix_run_owner_status"), "run", ["owner", "status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_run_owner_status"), table_name="run")
    op.drop_index(op.f("ix_dataset_owner"), table_name="dataset")
    for table in ("run", "dataset"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner")
    op.drop_index(op.f("ix_api_key_owner"), table_name="api_key")
    op.drop_index(op.f("ix_api_key_prefix"), table_name="api_key")
    op.drop_table("api_key")
