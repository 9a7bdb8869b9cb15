"""client.datasets: datasets from arrays, frames, CSV and Parquet files; listed, read, deleted."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.client.arrays import PAGE_SIZE, as_labels, as_matrix, pages
from app.client.transport import Transport
from app.schemas.common import Page
from app.schemas.datasets import DatasetRead


class Datasets:
    """client.datasets: create (from arrays, a frame, a CSV or Parquet file), list, get, delete."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def create(
        self,
        data: Any,
        labels: Any = None,
        *,
        name: str | None = None,
        label_column: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> DatasetRead:
        """A dataset from whatever `data` is: a CSV, Parquet or Arrow file's path, a pandas or
        polars frame (with `label_column`), or features X with `labels`."""
        if isinstance(data, str | os.PathLike):
            return self.upload(data, label_column=label_column, name=name)
        if hasattr(data, "columns") and not isinstance(data, np.ndarray):
            if label_column is None:
                raise ValueError("a frame needs label_column: the column of the labels")
            return self.from_frame(data, label_column=label_column, name=name)
        if labels is None:
            raise ValueError("labels are needed with an array of features")
        return self.from_arrays(data, labels, name=name, feature_names=feature_names)

    def from_arrays(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> DatasetRead:
        """X (m, n) rows of features, y m labels (two distinct values)."""
        features = as_matrix(X)
        body: dict[str, Any] = {
            "name": name or f"{features.shape[0]}x{features.shape[1]} arrays",
            "features": features,
            "labels": as_labels(y),
        }
        if feature_names is not None:
            body["feature_names"] = [str(n) for n in feature_names]
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json"}
        return DatasetRead.model_validate(
            self._http.json("POST", "/datasets", content=content, headers=headers)
        )

    def from_frame(self, frame: Any, *, label_column: str, name: str | None = None) -> DatasetRead:
        """A pandas or polars frame: `label_column` the labels, the others the features."""
        columns = [str(c) for c in frame.columns]
        if label_column not in columns:
            raise ValueError(f"no column {label_column!r}; the columns: {', '.join(columns)}")
        features = [c for c in columns if c != label_column]
        X = np.column_stack([np.asarray(frame[c].to_numpy(), dtype=np.float64) for c in features])
        return self.from_arrays(
            X, frame[label_column].to_numpy(), name=name, feature_names=features
        )

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        label_column: str | None = None,
        feature_columns: Sequence[str] | None = None,
        delimiter: str | None = None,
        missing: str | None = None,
        name: str | None = None,
    ) -> DatasetRead:
        """A CSV (plain or compressed), Parquet or Arrow IPC file, uploaded as it
        is (POST /datasets/upload): the server reads it in bounded memory."""
        file = Path(path)
        fields: dict[str, Any] = {"name": name or file.name}
        for key, value in (
            ("label_column", label_column),
            ("delimiter", delimiter),
            ("missing", missing),
        ):
            if value is not None:
                fields[key] = value
        if feature_columns is not None:
            fields["feature_columns"] = list(feature_columns)
        with file.open("rb") as f:
            files = {"file": (file.name, f, "application/octet-stream")}
            return DatasetRead.model_validate(
                self._http.json("POST", "/datasets/upload", data=fields, files=files)
            )

    def sample(
        self,
        kind: str,
        *,
        n_samples: int = 400,
        noise: float = 0.1,
        seed: int = 0,
        name: str | None = None,
    ) -> DatasetRead:
        """A generated dataset (moons, circles, xor, spiral, blobs): the same one for
        the same parameters."""
        body: dict[str, Any] = {"kind": kind, "n_samples": n_samples, "noise": noise, "seed": seed}
        if name is not None:
            body["name"] = name
        return DatasetRead.model_validate(self._http.json("POST", "/datasets/samples", json=body))

    def get(self, dataset_id: str) -> DatasetRead:
        return DatasetRead.model_validate(self._http.json("GET", f"/datasets/{dataset_id}"))

    def delete(self, dataset: DatasetRead | str) -> None:
        self._http.request("DELETE", f"/datasets/{dataset_id_of(dataset)}")

    def list(self, *, page_size: int = PAGE_SIZE) -> Iterator[DatasetRead]:
        """Every dataset, newest first, fetched a page at a time."""

        def fetch(limit: int, offset: int) -> Page[DatasetRead]:
            params = {"limit": limit, "offset": offset}
            body = self._http.json("GET", "/datasets", params=params)
            return Page[DatasetRead].model_validate(body)

        return pages(fetch, page_size)


def dataset_id_of(dataset: DatasetRead | str) -> str:
    return dataset.id if isinstance(dataset, DatasetRead) else dataset
