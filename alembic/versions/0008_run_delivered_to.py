"""run.delivered_to: the queue that took a run's message

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A queued run was sent again whenever its delivery was older than
redeliver_after_seconds, although its message was most likely still waiting
in the broker's queue. Now a delivery records which queue took it (the
Redis server's run id, the local executor's process): the sweeper sends a
message again only when that queue is gone. Runs delivered before this
revision are marked "" (a queue that cannot tell), for which the old rule
by age still holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("delivered_to", sa.String(length=64), nullable=True))
    run = sa.table("run", sa.column("delivered_at"), sa.column("delivered_to"))
    op.execute(sa.update(run).where(run.c.delivered_at.is_not(None)).values(delivered_to=""))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN, on SQLite too (3.35 and later): a batch copy of
    # the table would drop it, and with foreign keys on its dependent rows with it
    op.drop_column("run", "delivered_to")
