"""The data a training run sees: the stratified split, standardized, in the
layout the fast path reads (`app.nn.workspace`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.nn.params import Array
from app.nn.preprocessing import Standardization, stratified_split

ROW_GROUP = 1024


def augmented_rows(X: Array, standardization: Standardization | None, dtype: np.dtype) -> Array:
    """Rows [x_i, 1] (m, n_x+1), C-ordered, from X (n_x, m), standardized if given.

    Its transpose is Xa = [X; 1] in F order: one sample's features are
    contiguous, so a batch of consecutive samples is one contiguous block.
    """
    n_x, m = X.shape
    XTa = np.empty((m, n_x + 1), dtype)
    if standardization is not None and X.dtype == dtype == standardization.mean.dtype:
        # the same (X - mean) / scale, in place: no (n_x, m) temporary
        rows = XTa[:, :n_x]
        rows[...] = X.T
        rows -= standardization.mean.T
        rows /= standardization.scale.T
    else:
        XTa[:, :n_x] = (standardization.transform(X) if standardization else X).T
    XTa[:, n_x] = 1
    return XTa


@dataclass(frozen=True)
class TrainingData:
    """The training split as rows XTa = [x_i, 1] (m, n_x+1) and Y (1, m); the
    validation split as Xa = [X; 1] (n_x+1, m_val) and Y (1, m_val), or None."""

    XTa: Array
    Y: Array
    Xa_val: Array | None
    Y_val: Array | None
    standardization: Standardization | None

    @property
    def m(self) -> int:
        return int(self.XTa.shape[0])

    @property
    def m_val(self) -> int:
        return 0 if self.Y_val is None else int(self.Y_val.shape[1])


def training_data(
    X: Array,
    Y: Array,
    *,
    validation_fraction: float,
    rng: np.random.Generator,
    standardization: Standardization | None,
    standardize: bool,
    dtype: np.dtype,
) -> TrainingData:
    """Split X (n_x, m), Y (1, m) with `rng` (stratified), fit the standardization
    on the training split unless one is given (or `standardize` is off), and lay
    both splits out for the fast path."""
    train_idx, val_idx = stratified_split(Y, validation_fraction, rng)
    if standardization is None and standardize:
        standardization = Standardization.fit(X[:, train_idx])
    Xa_val = Y_val = None
    if val_idx.size:
        Xa_val = augmented_rows(X[:, val_idx], standardization, dtype).T
        Y_val = np.ascontiguousarray(Y[:, val_idx], dtype=dtype)
    return TrainingData(
        XTa=augmented_rows(X[:, train_idx], standardization, dtype),
        Y=np.ascontiguousarray(Y[:, train_idx], dtype=dtype),
        Xa_val=Xa_val,
        Y_val=Y_val,
        standardization=standardization,
    )
