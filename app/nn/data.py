"""The data a training run sees: the stratified split, standardized, in the
layout the fast path reads (`app.nn.workspace`).

The samples come as a `Rows` source, read in blocks of rows: an array in
memory (`ArrayRows`) or chunks from storage, never all of X at once. The
engine keeps only what it trains on, XTa (m_train, n_x+1) and Xa_val
(n_x+1, m_val), and fills them block by block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

from app.nn.params import Array
from app.nn.preprocessing import (
    ROW_GROUP,
    Moments,
    Standardization,
    check_features,
    stratified_split,
)

__all__ = [
    "ROW_GROUP",
    "ArrayRows",
    "Rows",
    "TrainingData",
    "augmented_rows",
    "check_source",
    "training_data",
]

_STANDARDIZE_ELEMENTS = 16 * 1024  # values per pass of _standardize_in_place: cache-sized


@runtime_checkable
class Rows(Protocol):
    """Samples as rows, in blocks: shape (m, n_x); blocks() yields (start, rows)
    with rows a (k, n_x) float64 array of samples start..start+k, in order,
    covering 0..m once; every start is a multiple of ROW_GROUP and every k
    too except the last block's. Each call of blocks() is a new pass."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def blocks(self) -> Iterator[tuple[int, Array]]: ...


class ArrayRows:
    """X (n_x, m) in memory, any layout, as a `Rows` source: blocks of
    `block_rows` samples, views of X.T (float64 copies if X is not float64)."""

    def __init__(self, X: Array, block_rows: int = 4 * ROW_GROUP) -> None:
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_x, m), got shape {X.shape}")
        if block_rows < 1 or block_rows % ROW_GROUP:
            raise ValueError(f"block_rows must be a multiple of {ROW_GROUP}, got {block_rows}")
        self.X = X
        self.block_rows = block_rows

    @property
    def shape(self) -> tuple[int, int]:
        n_x, m = self.X.shape
        return int(m), int(n_x)

    def blocks(self) -> Iterator[tuple[int, Array]]:
        XT = self.X.T
        for start in range(0, XT.shape[0], self.block_rows):
            yield start, np.asarray(XT[start : start + self.block_rows], dtype=np.float64)


def check_source(X: Any) -> tuple[Array | Rows, int, int]:
    """(X, n_x, m): a `Rows` source of shape (m, n_x), m, n_x ≥ 1, as it is (its
    storage vouches for finite float64 values), anything else as a finite
    (n_x, m) array (`check_features`); ValueError otherwise."""
    if isinstance(X, Rows):
        m, n_x = X.shape
        if m < 1 or n_x < 1:
            raise ValueError(f"X must have at least one feature and one sample, got {(n_x, m)}")
        return X, int(n_x), int(m)
    X = check_features(X)
    return X, int(X.shape[0]), int(X.shape[1])


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
    X: Array | Rows,
    Y: Array,
    *,
    validation_fraction: float,
    rng: np.random.Generator,
    standardization: Standardization | None,
    standardize: bool,
    dtype: np.dtype,
) -> TrainingData:
    """Split X (n_x, m) or a Rows source (m, n_x), and Y (1, m), with `rng`
    (stratified), fit the standardization on the training split unless one is
    given (or `standardize` is off), and lay both splits out for the fast path.

    Reads the source at most twice: once to fit when `dtype` is not float64
    (a float64 XTa holds the raw rows exactly, so it is fit and standardized
    in place), once to fill XTa and Xa_val block by block. Beyond those two
    it holds at most about two blocks.
    """
    source = X if isinstance(X, Rows) else ArrayRows(X)
    m, n_x = source.shape
    if Y.shape != (1, m):
        raise ValueError(f"Y must have shape (1, {m}) to match X, got {Y.shape}")
    train_idx, val_idx = stratified_split(Y, validation_fraction, rng)
    fit = standardization is None and standardize
    in_place = fit and dtype == np.float64
    if fit and not in_place:
        standardization = _fit_source(_checked(source), train_idx, n_x)
    splits = [(train_idx, np.empty((train_idx.size, n_x + 1), dtype))]
    if val_idx.size:
        splits.append((val_idx, np.empty((val_idx.size, n_x + 1), dtype)))
    for _, rows in splits:
        rows[:, n_x] = 1
    _fill(_checked(source), splits, None if in_place else standardization)
    if in_place:
        standardization = _fit_rows(splits[0][1][:, :n_x], train_idx, m)
        for _, rows in splits:
            _standardize_in_place(rows, standardization)
    return TrainingData(
        XTa=splits[0][1],
        Y=np.ascontiguousarray(Y[:, train_idx], dtype=dtype),
        Xa_val=splits[1][1].T if val_idx.size else None,
        Y_val=np.ascontiguousarray(Y[:, val_idx], dtype=dtype) if val_idx.size else None,
        standardization=standardization,
    )


def _checked(source: Rows) -> Iterator[tuple[int, Array]]:
    """source.blocks(), each checked against the `Rows` contract (ValueError)."""
    m, n_x = source.shape
    expected = 0
    for start, rows in source.blocks():
        k = rows.shape[0] if rows.ndim == 2 else 0
        if start != expected or k == 0 or rows.shape != (k, n_x) or rows.dtype != np.float64:
            raise ValueError(
                f"a block of rows must be ({n_x} features) float64 rows from {expected}, "
                f"got {rows.dtype} {rows.shape} from {start}"
            )
        if start + k > m or (k % ROW_GROUP and start + k != m):
            raise ValueError(
                f"a block of rows must be a multiple of {ROW_GROUP} rows within {m}, "
                f"got {k} from {start}"
            )
        expected += k
        yield start, rows
    if expected != m:
        raise ValueError(f"the blocks of rows cover {expected} samples, not {m}")


def _group_edges(idx: np.ndarray, start: int, stop: int) -> list[tuple[int, int]]:
    """(lo, hi) per group of ROW_GROUP samples in start..stop: idx[lo:hi] are the
    group's samples among `idx` (sorted)."""
    edges = np.searchsorted(idx, [*range(start, stop, ROW_GROUP), stop]).tolist()
    return list(pairwise(edges))


def _fit_source(
    blocks: Iterator[tuple[int, Array]], train_idx: np.ndarray, n_x: int
) -> Standardization:
    """The standardization of the samples `train_idx` (sorted) of the blocks."""
    moments = Moments(n_x)
    for start, rows in blocks:
        edges = _group_edges(train_idx, start, start + rows.shape[0])
        if edges:  # the block's training samples, gathered once, in their groups
            first, last = edges[0][0], edges[-1][1]
            chosen = rows[train_idx[first:last] - start]
            moments.add_groups(chosen, [(lo - first, hi - first) for lo, hi in edges])
    return moments.standardization()


def _fit_rows(XT: Array, train_idx: np.ndarray, m: int) -> Standardization:
    """The same from XT (m_train, n_x), the samples `train_idx` of 0..m as rows."""
    moments = Moments(XT.shape[1])
    moments.add_groups(XT, _group_edges(train_idx, 0, m))
    return moments.standardization()


def _standardize_in_place(rows: Array, standardization: Standardization) -> None:
    """rows (k, n_x+1) float64, C-ordered, its last column ones: (x - mean) / scale
    of the features, as `rows[:, :n_x] -= mean.T; rows[:, :n_x] /= scale.T` gives,
    in long passes over the flat rows (the ones column minus 0, over 1: itself)."""
    k, n = rows.shape
    per = max(1, _STANDARDIZE_ELEMENTS // n)  # rows per pass
    mean = np.tile(np.append(standardization.mean.ravel(), 0.0), per)
    scale = np.tile(np.append(standardization.scale.ravel(), 1.0), per)
    flat = rows.reshape(-1)
    for start in range(0, k, per):
        stop = min(start + per, k)
        part = flat[start * n : stop * n]
        part -= mean[: part.size]
        part /= scale[: part.size]


def _fill(
    blocks: Iterator[tuple[int, Array]],
    splits: list[tuple[np.ndarray, Array]],
    standardization: Standardization | None,
) -> None:
    """Each split's rows (size, n_x+1) ← its samples (sorted indices) of the blocks,
    standardized in float64 if given ((x - mean) / scale), then cast."""
    for start, rows in blocks:
        k = rows.shape[0]
        for idx, out in splits:
            lo, hi = np.searchsorted(idx, (start, start + k))
            if lo == hi:
                continue
            dst = out[lo:hi, :-1]
            whole = hi - lo == k  # else a gather: a copy, free to work in
            if standardization is None or dst.dtype == np.float64:
                x = dst
                _put_rows(out[lo:hi], rows, None if whole else idx[lo:hi] - start)
            else:  # in a float64 copy of the block's samples, then the cast
                x = rows.copy() if whole else rows[idx[lo:hi] - start]
            if standardization is not None:
                x -= standardization.mean.T
                x /= standardization.scale.T
                if x is not dst:
                    dst[...] = x


def _put_rows(out: Array, rows: Array, chosen: np.ndarray | None) -> None:
    """out[:, :-1] ← rows (or rows[chosen]): out (k, n_x+1) C-ordered. Float64
    C-ordered rows go as one n_x·8-byte element each (one long copy, not k
    copies of n_x values); anything else, as NumPy's assignment casts it."""
    dst = out[:, :-1]
    if not (rows.dtype == out.dtype == np.float64 and rows.flags.c_contiguous):
        dst[...] = rows if chosen is None else rows[chosen]
        return
    row = np.dtype((np.void, rows.shape[1] * 8))
    source = rows.view(row).reshape(-1)
    target = np.ndarray((out.shape[0],), row, buffer=out, strides=(out.strides[0],))
    target[...] = source if chosen is None else source[chosen]
