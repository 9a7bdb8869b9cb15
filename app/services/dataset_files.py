"""A stored dataset back out as a file, streamed a chunk at a time: CSV (a header
row, the features, then the label column) or Parquet (one row group per chunk),
so what was stored can be checked. Features are float64 written to round-trip
exactly; labels are the classes' own values."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.db.arrays import DatasetRows, load_npy
from app.db.models import Dataset
from app.db.session import Database
from app.services.ownership import owned

FileFormat = Literal["csv", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class Download:
    chunks: Iterator[bytes]
    media_type: str
    filename: str


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken as soon as they are written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def dataset_file(*, db: Database, owner: str, dataset_id: str, format: FileFormat) -> Download:
    """The dataset as a file; the dataset is looked up before the first chunk, so
    a missing one is a 404, not a broken download."""
    with db.read() as session:
        dataset = owned(session, Dataset, dataset_id, owner, "dataset")
        labels = load_npy(dataset.labels)
        names, label_name = list(dataset.feature_names), dataset.label_name
        classes = pa.array(list(dataset.classes))
        rows = DatasetRows(
            db=db, dataset_id=dataset_id, m=dataset.n_samples, n_x=dataset.n_features
        )
    schema = pa.schema([*((n, pa.float64()) for n in names), (label_name, classes.type)])

    def tables() -> Iterator[pa.Table]:
        for start, X in rows.blocks():
            codes = pa.array(labels[start : start + X.shape[0]].astype(np.int32))
            columns = [pa.array(X[:, j]) for j in range(X.shape[1])]
            yield pa.Table.from_arrays([*columns, classes.take(codes)], schema=schema)

    def chunks(writer: Any, sink: _Drain) -> Iterator[bytes]:
        with writer:
            for table in tables():
                writer.write_table(table)
                yield sink.take()
        if tail := sink.take():  # a Parquet file's footer
            yield tail

    sink = _Drain()
    writer = pacsv.CSVWriter(sink, schema) if format == "csv" else pq.ParquetWriter(sink, schema)
    return Download(chunks(writer, sink), MEDIA_TYPES[format], f"{dataset_id}.{format}")
