"""dataset_chunk: a dataset's X in chunks of rows (.npy), its codes in dataset.labels,
the name of its label column in dataset.label_name

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Each dataset's `.npz` blob (X and y) is rewritten as chunks of about 8 MiB
and its codes as `.npy`, one dataset at a time; the sha256 is unchanged (it
is of the same bytes). A downgrade puts the blobs back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS_PER_CHUNK_BYTES = 8 * 1024 * 1024
ROW_GROUP = 1024  # app.nn.data.ROW_GROUP when this was written

dataset = sa.table(
    "dataset",
    sa.column("id", sa.String),
    sa.column("n_features", sa.Integer),
    sa.column("data", sa.LargeBinary),
    sa.column("labels", sa.LargeBinary),
    sa.column("stored_bytes", sa.BigInteger),
)
chunk = sa.table(
    "dataset_chunk",
    sa.column("dataset_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _chunk_table(name: str, *, foreign_key: bool) -> None:
    op.create_table(
        name,
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        *(
            [
                sa.ForeignKeyConstraint(
                    ["dataset_id"],
                    ["dataset.id"],
                    name=op.f("fk_dataset_chunk_dataset_id_dataset"),
                    ondelete="CASCADE",
                )
            ]
            if foreign_key
            else []
        ),
        sa.PrimaryKeyConstraint("dataset_id", "seq", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    # the chunks are written to a table without the foreign key first: SQLite's
    # batch mode rebuilds `dataset` below, and its DROP would cascade to them
    _chunk_table("dataset_chunk_staged", foreign_key=False)
    staged = sa.table(
        "dataset_chunk_staged",
        sa.column("dataset_id", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("data", sa.LargeBinary),
    )
    with op.batch_alter_table("dataset") as batch:
        batch.add_column(sa.Column("labels", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("label_name", sa.String(length=200), server_default="label", nullable=False)
        )
    bind = op.get_bind()
    ids = [row.id for row in bind.execute(sa.select(dataset.c.id))]
    for dataset_id in ids:
        blob, n_x = bind.execute(
            sa.select(dataset.c.data, dataset.c.n_features).where(dataset.c.id == dataset_id)
        ).one()
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            X, y = npz["X"], npz["y"]
        k = ROW_GROUP * max(1, ROWS_PER_CHUNK_BYTES // (8 * n_x * ROW_GROUP))
        stored = len(labels := _npy(y.astype(np.int8)))
        for seq, start in enumerate(range(0, X.shape[0], k)):
            data = _npy(np.ascontiguousarray(X[start : start + k], np.float64))
            bind.execute(sa.insert(staged).values(dataset_id=dataset_id, seq=seq, data=data))
            stored += len(data)
        bind.execute(
            sa.update(dataset)
            .where(dataset.c.id == dataset_id)
            .values(labels=labels, stored_bytes=stored)
        )
    with op.batch_alter_table("dataset") as batch:
        batch.alter_column("labels", existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column("stored_bytes", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column("data")
    _chunk_table("dataset_chunk", foreign_key=True)
    bind.execute(sa.insert(chunk).from_select(["dataset_id", "seq", "data"], sa.select(staged)))
    op.drop_table("dataset_chunk_staged")


def downgrade() -> None:
    with op.batch_alter_table("dataset") as batch:  # adds only: no rebuild
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    ids = [row.id for row in bind.execute(sa.select(dataset.c.id))]
    for dataset_id in ids:
        labels = bind.execute(sa.select(dataset.c.labels).where(dataset.c.id == dataset_id)).one()
        parts = [
            np.load(io.BytesIO(row.data), allow_pickle=False)
            for row in bind.execute(
                sa.select(chunk.c.data)
                .where(chunk.c.dataset_id == dataset_id)
                .order_by(chunk.c.seq)
            )
        ]
        X = np.concatenate(parts)
        y = np.load(io.BytesIO(labels[0]), allow_pickle=False)
        buf = io.BytesIO()
        np.savez(buf, X=X, y=y, __meta__=np.array('{"format": "twolayer.dataset/1"}'))
        bind.execute(
            sa.update(dataset).where(dataset.c.id == dataset_id).values(data=buf.getvalue())
        )
    op.drop_table("dataset_chunk")  # before the rebuild of dataset, whose DROP would cascade
    with op.batch_alter_table("dataset") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("label_name")
        batch.drop_column("stored_bytes")
        batch.drop_column("labels")
