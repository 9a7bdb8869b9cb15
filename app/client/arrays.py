"""Arrays in and out: features and labels as the API takes them, paged lists,
predictions as NumPy arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel

from app.client.transport import Transport
from app.schemas.common import Page

PAGE_SIZE = 100
M = TypeVar("M", bound=BaseModel)


def pages(fetch: Callable[[int, int], Page[M]], page_size: int) -> Iterator[M]:
    """Every item of a paged list, one page fetched at a time as they are used."""
    offset = 0
    while True:
        page = fetch(page_size, offset)
        yield from page.items
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


def as_matrix(X: Any) -> np.ndarray:
    """Rows of features as a (m, n) float64 array: a NumPy array, nested lists,
    or a pandas/polars frame (its columns in order)."""
    if hasattr(X, "columns") and not isinstance(X, np.ndarray):
        return np.column_stack([np.asarray(X[c].to_numpy(), dtype=np.float64) for c in X.columns])
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"X must be 2-D, (samples, features); got shape {matrix.shape}")
    return matrix


def as_labels(y: Any) -> list[Any]:
    """Labels as JSON values: integral floats become integers (0.0 → 0)."""
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if labels.ndim != 1:
        labels = labels.reshape(-1)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels) & (labels == np.round(labels))):
        labels = labels.astype(np.int64)
    return list(labels.tolist())


@dataclass(frozen=True)
class Prediction:
    """ŷ for each row and the label it predicts (the dataset's own class values)."""

    run_id: str
    probabilities: np.ndarray
    labels: np.ndarray
    model: str | None = None  # "name@version" that answered, when a model was asked for


def prediction_of(body: dict[str, Any]) -> Prediction:
    return Prediction(
        run_id=body["run_id"],
        probabilities=np.asarray(body["probabilities"], dtype=np.float64),
        labels=np.asarray(body["labels"]),
        model=body.get("model"),
    )


def send_predict(
    transport: Transport, path: str, X: Any, threshold: float | None, extra: dict[str, Any]
) -> Prediction:
    """POST a prediction request for rows of features X; the Prediction."""
    body: dict[str, Any] = {**extra, "instances": as_matrix(X)}
    if threshold is not None:
        body["threshold"] = threshold
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"content-type": "application/json"}
    return prediction_of(transport.json("POST", path, content=content, headers=headers))
