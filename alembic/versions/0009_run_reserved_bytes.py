"""run.reserved_bytes: the bound of what a run may store, kept with the run

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The owner's storage budget counts, for every queued or running run, the
bound of what it may store (its checkpoint, then its model). It was
computed in Python from every active run's hyperparameters at every
creation, under the owner's lock: with 400 runs queued that was 26 ms of a
37 ms POST /runs, and it grew with the queue. The bound depends only on the
run's hyperparameters and its dataset's features, both fixed at creation:
it is now computed once and stored, and the budget is one SUM. Existing
runs get theirs computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.nn import Hyperparameters
from app.nn.checkpoint import stored_bytes

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(
            sa.Column("reserved_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
    run = sa.table(
        "run",
        sa.column("id"),
        sa.column("status"),
        sa.column("dataset_id"),
        sa.column("hyperparameters", sa.JSON()),
        sa.column("reserved_bytes"),
    )
    dataset = sa.table("dataset", sa.column("id"), sa.column("n_features"))
    # the budget counts the bound of active runs only: theirs are computed
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(run.c.id, run.c.hyperparameters, dataset.c.n_features)
        .join(dataset, dataset.c.id == run.c.dataset_id)
        .where(run.c.status.in_(("queued", "running")))
    ).all()
    bounds = [
        {"run_id": run_id, "bound": _bound(hyperparameters, n_features)}
        for run_id, hyperparameters, n_features in rows
    ]
    if bounds:
        connection.execute(
            sa.update(run)
            .where(run.c.id == sa.bindparam("run_id"))
            .values(reserved_bytes=sa.bindparam("bound")),
            bounds,
        )


def _bound(hyperparameters: dict[str, object], n_features: int) -> int:
    """The run's bound; 0 for hyperparameters today's rules refuse (the worker
    fails such a run when it claims it, storing nothing)."""
    try:
        return stored_bytes(n_features, Hyperparameters(**hyperparameters))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN, on SQLite too (3.35 and later): a batch copy of
    # the table would drop it, and with foreign keys on its dependent rows with it
    op.drop_column("run", "reserved_bytes")
