"""A dataset's arrays as the database stores them, for the services that write
them and the workers that read them.

X (m, n_x) float64, samples as rows as they arrived, is stored in
`dataset_chunk` rows: chunk `seq` holds rows seq·k … seq·k + k − 1 as a
(k, n_x) array in NumPy's `.npy` format, k = `chunk_rows(n_x)` (about 8 MiB,
a multiple of the engine's ROW_GROUP), the last chunk shorter. The class
codes y (m,) int8 — 0 for the first of the sorted `classes`, 1 for the
second — are `dataset.labels`, also `.npy`. Nothing is ever pickled.

Chunks let a 400 MB dataset be written and read a block at a time: neither
the server that stores it nor the worker that trains on it holds it whole
besides the engine's own arrays (bench/README.md, "Ingest").
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.db.models import Dataset, DatasetChunk
from app.db.session import Database
from app.nn.data import ROW_GROUP
from app.nn.preprocessing import Label

CHUNK_BYTES = 8 * 1024 * 1024
_NPY_MAGIC = b"\x93NUMPY"


def chunk_rows(n_x: int) -> int:
    """Rows per chunk for n_x features: ~CHUNK_BYTES, a multiple of ROW_GROUP."""
    return ROW_GROUP * max(1, CHUNK_BYTES // (8 * n_x * ROW_GROUP))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    """An array from `.npy` bytes; ValueError for anything else (never unpickled)."""
    if not bytes(data[:6]) == _NPY_MAGIC:
        raise ValueError("not a .npy array")
    arr: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return arr


def dataset_sha256(m: int, n_x: int, classes: list[Label], rows: Any, codes: np.ndarray) -> str:
    """A dataset's identity: sha256 of [shape, classes] as JSON, the sha256 of X's
    rows (`rows`, a hashlib object fed float64 C-order rows), then the int8 codes."""
    digest = hashlib.sha256(json.dumps([[m, n_x], classes]).encode())
    digest.update(rows.digest())
    digest.update(np.ascontiguousarray(codes, np.int8).data)
    return digest.hexdigest()


def insert_chunk(session: Session, *, dataset_id: str, seq: int, rows: np.ndarray) -> int:
    """Write one chunk (k, n_x) float64 with a Core insert (the ORM would keep
    every chunk's bytes until the commit); its stored size."""
    data = npy_bytes(np.ascontiguousarray(rows, np.float64))
    session.execute(insert(DatasetChunk), [{"dataset_id": dataset_id, "seq": seq, "data": data}])
    return len(data)


@dataclass(frozen=True)
class DatasetArrays:
    """A dataset ready for the engine: X (m, n_x) rows, Y (1, m) in {0, 1}, its classes."""

    X: np.ndarray
    Y: np.ndarray
    classes: list[Label]


class DatasetRows:
    """A stored dataset's X as the engine's `Rows` source: shape (m, n_x), and
    blocks of rows read one chunk at a time (each pass a new read)."""

    def __init__(self, *, db: Database, dataset_id: str, m: int, n_x: int) -> None:
        self.db, self.dataset_id = db, dataset_id
        self.shape = (m, n_x)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        m, n_x = self.shape
        start = 0
        query = (
            select(DatasetChunk.data)
            .where(DatasetChunk.dataset_id == self.dataset_id)
            .order_by(DatasetChunk.seq)
            .execution_options(yield_per=1)  # a server-side cursor on PostgreSQL
        )
        with self.db.read() as session:
            for data in session.scalars(query):
                rows = load_npy(data)
                del data
                if rows.dtype != np.float64 or rows.ndim != 2 or rows.shape[1] != n_x:
                    raise ValueError(f"dataset {self.dataset_id}: chunk of shape {rows.shape}")
                yield start, rows
                start += rows.shape[0]
        if start != m:
            raise ValueError(f"dataset {self.dataset_id}: chunks hold {start} rows, not {m}")


@dataclass(frozen=True)
class StoredDataset:
    """What training needs of a dataset, X not read yet: its rows, Y (1, m), classes,
    and its sha256 (app.worker.dataset_cache keys its local copies by it)."""

    rows: DatasetRows
    Y: np.ndarray
    classes: list[Label]
    sha256: str


def stored_dataset(
    *, db: Database, dataset_id: str, session: Session | None = None
) -> StoredDataset:
    """The dataset's labels and description, read in `session` if given (a
    worker's reads of a run are one transaction), else in one of its own."""
    query = select(
        Dataset.labels,
        Dataset.classes,
        Dataset.n_samples,
        Dataset.n_features,
        Dataset.sha256,
    ).where(Dataset.id == dataset_id)
    if session is None:
        with db.read() as own:
            row = own.execute(query).one_or_none()
    else:
        row = session.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    codes = load_npy(row.labels)
    rows = DatasetRows(db=db, dataset_id=dataset_id, m=row.n_samples, n_x=row.n_features)
    Y = codes.astype(np.float64).reshape(1, -1)
    return StoredDataset(rows=rows, Y=Y, classes=list(row.classes), sha256=row.sha256)


def load_dataset_arrays(*, db: Database, dataset_id: str) -> DatasetArrays:
    """The whole dataset in memory (for small uses: a chart, a test)."""
    stored = stored_dataset(db=db, dataset_id=dataset_id)
    X = np.empty(stored.rows.shape)
    for start, rows in stored.rows.blocks():
        X[start : start + rows.shape[0]] = rows
    return DatasetArrays(X=X, Y=stored.Y, classes=stored.classes)
