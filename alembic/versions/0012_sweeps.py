"""sweeps: sweep and sweep_trial

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

A sweep searches hyperparameters on one dataset with Optuna's ask-and-tell
interface; its trials are ordinary runs. The sweep keeps its request (`spec`,
with the seed resolved) and where it stands; each trial keeps the parameters
its sampler chose and, once its run has ended, its state, the sweep's metric
and the per-epoch figures a pruner compares. That is all the study's state:
it is rebuilt from these rows wherever it is needed, so a sweep survives any
process's death. A trial outlives its run (SET NULL); a sweep goes with its
dataset (CASCADE), which can only be deleted once no run uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.db.base import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_sweep_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_sweep_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep")),
    )
    op.create_index(op.f("ix_sweep_owner_created_at"), "sweep", ["owner", "created_at"])
    op.create_index(op.f("ix_sweep_status"), "sweep", ["status"])
    op.create_table(
        "sweep_trial",
        sa.Column("sweep_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("system_attrs", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=True),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'complete', 'pruned', 'failed', 'cancelled')",
            name=op.f("ck_sweep_trial_state"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_sweep_trial_run_id_run"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweep.id"],
            name=op.f("fk_sweep_trial_sweep_id_sweep"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", "number", name=op.f("pk_sweep_trial")),
    )
    op.create_index(op.f("ix_sweep_trial_run_id"), "sweep_trial", ["run_id"], unique=True)
    op.create_index(
        op.f("ix_sweep_trial_sweep_id"),
        "sweep_trial",
        ["sweep_id"],
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sweep_trial_sweep_id"), table_name="sweep_trial")
    op.drop_index(op.f("ix_sweep_trial_run_id"), table_name="sweep_trial")
    op.drop_table("sweep_trial")
    op.drop_index(op.f("ix_sweep_status"), table_name="sweep")
    op.drop_index(op.f("ix_sweep_owner_created_at"), table_name="sweep")
    op.drop_table("sweep")
