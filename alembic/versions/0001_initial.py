"""initial schema: dataset, run, run_epoch, model, checkpoint

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.db.base import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("feature_names", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("class_counts", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("init_from_run_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_run_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_run_dataset_id_dataset"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["init_from_run_id"],
            ["run.id"],
            name=op.f("fk_run_init_from_run_id_run"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run")),
    )
    op.create_index(op.f("ix_run_dataset_id"), "run", ["dataset_id"])
    op.create_index(op.f("ix_run_status_lease_expires_at"), "run", ["status", "lease_expires_at"])
    op.create_table(
        "run_epoch",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_cost", sa.Float(), nullable=False),
        sa.Column("train_accuracy", sa.Float(), nullable=False),
        sa.Column("validation_cost", sa.Float(), nullable=True),
        sa.Column("validation_accuracy", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_run_epoch_run_id_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "epoch", name=op.f("pk_run_epoch")),
    )
    for table in ("model", "checkpoint"):
        op.create_table(
            table,
            sa.Column("run_id", sa.String(length=36), nullable=False),
            sa.Column("epoch", sa.Integer(), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.ForeignKeyConstraint(
                ["run_id"], ["run.id"], name=op.f(f"fk_{table}_run_id_run"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("run_id", name=op.f(f"pk_{table}")),
        )


def downgrade() -> None:
    op.drop_table("checkpoint")
    op.drop_table("model")
    op.drop_table("run_epoch")
    op.drop_index(op.f("ix_run_status_lease_expires_at"), table_name="run")
    op.drop_index(op.f("ix_run_dataset_id"), table_name="run")
    op.drop_table("run")
    op.drop_table("dataset")
