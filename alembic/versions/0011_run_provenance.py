"""run.environments, run.warm_start_run_id: what a run needs to be reproduced

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

A run's read carries its reproducibility record: the dataset's sha256 (read
from the dataset), the resolved seed (in its hyperparameters), the run it
warm-started from, and the environments its weights were computed in. The
worker records its environment (app/worker/environment.py) when it starts
training an attempt, one entry per distinct environment with the attempts
trained in it. Runs made before this revision keep `environments` null (not
recorded), and their `warm_start_run_id` is their init_from_run_id now: one
whose source was deleted before this revision cannot tell it had one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("warm_start_run_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("environments", sa.JSON(), nullable=True))
    run = sa.table("run", sa.column("init_from_run_id"), sa.column("warm_start_run_id"))
    op.execute(
        sa.update(run)
        .where(run.c.init_from_run_id.is_not(None))
        .values(warm_start_run_id=run.c.init_from_run_id)
    )


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN, on SQLite too (3.35 and later): a batch copy of
    # the table would drop it, and with foreign keys on its dependent rows with it
    op.drop_column("run", "environments")
    op.drop_column("run", "warm_start_run_id")
