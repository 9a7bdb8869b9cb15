"""dataset.sha256 of X's rows' own sha256, so that an upload hashes its rows as they
are parsed; dataset_chunk.data stored uncompressed on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

The sha256 was of [shape, classes] as JSON, then X's rows, then the codes: the
shape comes first but is known only once the whole file is read. It is now of
[shape, classes] as JSON, then the sha256 of X's rows (32 bytes), then the
codes: the rows' digest runs while they stream in. Every dataset's sha256 is
computed again from its chunks, one chunk at a time; a downgrade puts the old
one back.

PostgreSQL tried to compress every 8 MiB chunk with pglz (float64 data hardly
compresses, and trying took 2/3 of an upload's store time: bench/README.md);
`SET STORAGE EXTERNAL` keeps chunks out of line, uncompressed. Rows already
stored are left as they are.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

dataset = sa.table(
    "dataset",
    sa.column("id", sa.String),
    sa.column("n_samples", sa.Integer),
    sa.column("n_features", sa.Integer),
    sa.column("classes", sa.JSON),
    sa.column("labels", sa.LargeBinary),
    sa.column("sha256", sa.String),
)
chunk = sa.table(
    "dataset_chunk",
    sa.column("dataset_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def _load(data: bytes) -> np.ndarray:
    arr: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return arr


def _rehash(*, rows_digest: bool) -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(dataset.c.id)).all():
        one = bind.execute(sa.select(dataset).where(dataset.c.id == row.id)).one()
        head = hashlib.sha256(json.dumps([[one.n_samples, one.n_features], one.classes]).encode())
        rows: Any = hashlib.sha256() if rows_digest else head
        seqs = bind.execute(
            sa.select(chunk.c.seq).where(chunk.c.dataset_id == row.id).order_by(chunk.c.seq)
        ).scalars()
        for seq in list(seqs):  # one chunk in memory at a time
            data = bind.execute(
                sa.select(chunk.c.data).where(chunk.c.dataset_id == row.id, chunk.c.seq == seq)
            ).scalar_one()
            rows.update(np.ascontiguousarray(_load(data), np.float64).data)
        if rows_digest:
            head.update(rows.digest())
        head.update(_load(one.labels).astype(np.int8).data)
        bind.execute(
            sa.update(dataset).where(dataset.c.id == row.id).values(sha256=head.hexdigest())
        )


def upgrade() -> None:
    _rehash(rows_digest=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE dataset_chunk ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE dataset_chunk ALTER COLUMN data SET STORAGE EXTENDED")
    _rehash(rows_digest=False)
