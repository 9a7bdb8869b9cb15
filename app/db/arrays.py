"""A dataset's arrays as its row stores them, for the services that write them
and the workers that read them.

`dataset.data` is an `.npz` archive (format `twolayer.dataset/1`): X (m, n_x)
float64, samples as rows as they arrived, and y (m,) int8 class codes, 0 for
the first of the sorted `classes` and 1 for the second (the positive class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from app.core.errors import NotFound
from app.db.models import Dataset
from app.db.session import Database
from app.nn.preprocessing import Label
from app.nn.serialization import dump_npz, load_npz

DATASET_FORMAT = "twolayer.dataset/1"


def dataset_blob(X: np.ndarray, codes: np.ndarray) -> bytes:
    """The `dataset.data` bytes for rows X (m, n_x) float64 and codes (m,) int8."""
    return dump_npz({"X": X, "y": codes}, {"format": DATASET_FORMAT})


@dataclass(frozen=True)
class DatasetArrays:
    """A dataset ready for the engine: X (m, n_x) rows, Y (1, m) in {0, 1}, its classes."""

    X: np.ndarray
    Y: np.ndarray
    classes: list[Label]


def load_dataset_arrays(*, db: Database, dataset_id: str) -> DatasetArrays:
    with db.read() as session:
        row = session.execute(
            select(Dataset.data, Dataset.classes).where(Dataset.id == dataset_id)
        ).one_or_none()
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset_arrays(row.data, list(row.classes))


def dataset_arrays(data: bytes, classes: list[Label]) -> DatasetArrays:
    """The inverse of dataset_blob, with the dataset's classes."""
    arrays, _ = load_npz(data)
    codes = arrays["y"].astype(np.float64).reshape(1, -1)
    return DatasetArrays(X=arrays["X"], Y=codes, classes=classes)
