"""server_secret, with the key of sample datasets' ids generated here, once

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "server_secret",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secret")),
    )
    # every database its own key: its sample ids cannot be computed elsewhere
    op.bulk_insert(table, [{"name": "sample_id_key", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("server_secret")
