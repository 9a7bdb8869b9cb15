"""Input checks, label encoding, standardization and the validation split.

Everything here works on the engine's layout: X (n_x, m), Y (1, m).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.nn.params import Array

Label = bool | int | float | str


def check_features(X: Any, *, n_x: int | None = None, name: str = "X") -> Array:
    """X as a finite floating (n_x, m) array, or a clear ValueError."""
    # a float array, the common case, skips the conversions
    arr = X if isinstance(X, np.ndarray) and X.dtype.kind == "f" else _as_numbers(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_x, m), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature and one sample, got {arr.shape}")
    if n_x is not None and arr.shape[0] != n_x:
        raise ValueError(f"{name} must have {n_x} features (rows), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} must be finite: found {arr[tuple(bad)]} at feature {bad[0]}, sample {bad[1]}"
        )
    return arr


def _as_numbers(X: Any, name: str) -> Array:
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} must be a rectangular array of numbers: {exc}") from None
    if arr.dtype == np.object_ or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def check_targets(Y: Any, m: int) -> Array:
    """Y as a (1, m) float64 array of 0/1 holding both classes, or a clear ValueError."""
    arr = np.asarray(Y)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape != (1, m):
        raise ValueError(f"Y must have shape (1, {m}) to match X, got {np.shape(Y)}")
    if arr.dtype == np.object_ or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"Y must hold 0/1 numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("Y must hold only 0 and 1 (encode labels with encode_labels)")
    n_pos = int(arr.sum())
    if n_pos == 0 or n_pos == m:
        raise ValueError(f"Y must hold both classes, got only {int(arr[0, 0])}")
    return arr


def check_labels(labels: Sequence[Label]) -> None:
    """Labels name two classes: values of one type, exactly two distinct ones.

    ValueError otherwise, naming the problem. (bool and int are different
    types here: true and 1 do not name the same class.)
    """
    values = list(labels)
    if not values:
        raise ValueError("labels must not be empty")
    kinds = {type(v) for v in values}
    if len(kinds) > 1:
        raise ValueError(
            "labels must all be of one type, got " + " and ".join(sorted(k.__name__ for k in kinds))
        )
    distinct = set(values)
    if len(distinct) < 2:
        raise ValueError(f"labels must hold two classes, got only {values[0]!r}")
    if len(distinct) > 2:
        shown = ", ".join(sorted(map(repr, distinct))[:5])
        raise ValueError(f"labels must hold exactly two classes, got {len(distinct)}: {shown}")


def encode_labels(labels: Sequence[Label]) -> tuple[Array, list[Label]]:
    """Any two distinct values → Y (1, m) in {0, 1}, and `classes` sorted.

    The second of the sorted classes is the positive class (1), as in
    scikit-learn's LabelEncoder. Labels that break `check_labels` raise
    ValueError.
    """
    values = list(labels)
    check_labels(values)
    classes = sorted(set(values))
    positive = classes[1]
    Y = np.fromiter((v == positive for v in values), dtype=np.float64, count=len(values))
    return Y.reshape(1, -1), classes


@dataclass(frozen=True)
class Standardization:
    """x' = (x - mean) / scale per feature; mean, scale : (n_x, 1).

    Constant features get scale 1 (as scikit-learn's StandardScaler), so they
    map to 0 and never divide by zero.
    """

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, X: Array) -> Standardization:
        mean = X.mean(axis=1, keepdims=True, dtype=np.float64)
        std = X.std(axis=1, keepdims=True, dtype=np.float64)
        scale = np.where(
            std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), 1.0, std
        )
        return cls(mean=mean, scale=scale)

    def transform(self, X: Array) -> Array:
        if X.shape[0] != self.mean.shape[0]:
            raise ValueError(f"X must have {self.mean.shape[0]} features, got {X.shape[0]}")
        return (X - self.mean) / self.scale


def stratified_split(
    Y: Array, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), each sorted, with `fraction` of each class held out.

    Each class gives round(fraction·n_c) samples, at least one, and keeps at
    least one for training. fraction = 0 gives an empty validation set.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    m = Y.shape[-1]
    if fraction == 0:
        return np.arange(m), np.arange(0)
    y = Y.ravel()
    held: list[np.ndarray] = []
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        if idx.size < 2:
            raise ValueError(
                "a validation split needs at least 2 samples of each class, "
                f"class {c} has {idx.size}"
            )
        n_val = min(max(1, round(fraction * idx.size)), idx.size - 1)
        held.append(rng.permutation(idx)[:n_val])
    val = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(m), val, assume_unique=True)
    return train, val
