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

# samples per group of the streaming standardization fit (`Moments`), by absolute index
ROW_GROUP = 1024
_WIDE_BYTES = 4 * 1024 * 1024  # Moments.add_groups' buffer: this many bytes of groups at once


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
        """Fit on X (n_x, m): the streaming rule of `Moments`, its columns in groups
        of ROW_GROUP, so an array and a stream of the same samples agree to the bit."""
        moments = Moments(X.shape[0])
        m = X.shape[1]
        moments.add_groups(X.T, [(s, min(s + ROW_GROUP, m)) for s in range(0, m, ROW_GROUP)])
        return moments.standardization()

    def transform(self, X: Array) -> Array:
        if X.shape[0] != self.mean.shape[0]:
            raise ValueError(f"X must have {self.mean.shape[0]} features, got {X.shape[0]}")
        return (X - self.mean) / self.scale


class Moments:
    """Per-feature count, mean and M2 = Σ(x - mean)² (n_x,) of samples added
    as row groups (c, n_x), c ≤ ROW_GROUP; the fitted Standardization at the end.

    Each group, shifted by the first sample seen, is reduced on its own (mean,
    then M2 of the deviations: two passes over a cache-sized copy) and the
    groups are combined pairwise, as a binary tree over the order they came in
    (Chan, Golub and LeVeque's update). The result depends only on the groups'
    contents and order, never on how the caller read them, and is as accurate
    as two passes over all the samples.

    `add_groups` adds many groups at once, side by side in one wide buffer (each
    column one feature of one group), so that NumPy's passes are long rather
    than one row of n_x at a time: the same operations on the same values in
    the same order, hence the same bits as `add` one group after another
    (tests/nn/test_preprocessing.py holds them equal).
    """

    def __init__(self, n_x: int) -> None:
        self._group = np.empty((ROW_GROUP, n_x))  # one fixed layout: one summation order
        # the first sample, subtracted from all: sums of small deviations, not of
        # large values (a feature 1e8 + noise keeps its noise's digits)
        self._shift: Array | None = None
        # pending subtrees, oldest first: (height, count, mean, M2)
        self._stack: list[tuple[int, int, Array, Array]] = []
        self._wide: Array | None = None  # add_groups' buffer

    def add(self, rows: Array) -> None:
        """One group's samples as rows (c, n_x); c = 0 adds nothing."""
        c = int(rows.shape[0])
        if c > ROW_GROUP:
            raise ValueError(f"a group holds at most {ROW_GROUP} rows, got {c}")
        if c == 0:
            return
        group = self._group[:c]
        group[...] = rows
        if self._shift is None:
            self._shift = group[0].copy()
        group -= self._shift
        mean = group.sum(axis=0) / c
        group -= mean
        np.square(group, out=group)
        self._push(c, mean, group.sum(axis=0))

    def add_groups(self, rows: Array, edges: Sequence[tuple[int, int]]) -> None:
        """The groups rows[lo:hi] (lo, hi) of `edges`, in order: as `add` of each."""
        n_x = self._group.shape[1]
        per = _WIDE_BYTES // (ROW_GROUP * n_x * 8)
        # n_x = 1: a (c, 1) group's sum is one contiguous reduction, pairwise
        if n_x < 2 or per < 2:
            for lo, hi in edges:
                self.add(rows[lo:hi])
            return
        edges = [(lo, hi) for lo, hi in edges if hi > lo]
        if any(hi - lo > ROW_GROUP for lo, hi in edges):
            raise ValueError(f"a group holds at most {ROW_GROUP} rows")
        for first in range(0, len(edges), per):
            self._add_side_by_side(rows, edges[first : first + per])

    def _add_side_by_side(self, rows: Array, edges: Sequence[tuple[int, int]]) -> None:
        """`add` of each group, the groups side by side: group k's feature j is
        column k·n_x + j of a (ROW_GROUP, g·n_x) buffer, its rows beyond its own
        c_k held at -0.0, which added to any sum leaves it as it is. Each column's
        sum over axis 0 then adds its c_k values one after the other from the
        first, as a (c_k, n_x) group's sum over axis 0 does (n_x ≥ 2)."""
        n_x, g = self._group.shape[1], len(edges)
        if self._wide is None or self._wide.shape[1] < g * n_x:
            self._wide = np.empty((ROW_GROUP, g * n_x))
        wide = self._wide[:, : g * n_x]
        for k, (lo, hi) in enumerate(edges):
            wide[: hi - lo, k * n_x : (k + 1) * n_x] = rows[lo:hi]
        self._pad(wide, edges)  # no garbage of np.empty's in the arithmetic (nor its warnings)
        if self._shift is None:
            self._shift = wide[0, :n_x].copy()
        wide -= np.tile(self._shift, g)
        self._pad(wide, edges)
        counts = np.repeat(np.array([hi - lo for lo, hi in edges], np.float64), n_x)
        means = wide.sum(axis=0) / counts
        wide -= means
        np.square(wide, out=wide)
        self._pad(wide, edges)
        M2s = wide.sum(axis=0)
        for k, (lo, hi) in enumerate(edges):
            cols = slice(k * n_x, (k + 1) * n_x)
            self._push(hi - lo, means[cols], M2s[cols])

    @staticmethod
    def _pad(wide: Array, edges: Sequence[tuple[int, int]]) -> None:
        n_x = wide.shape[1] // len(edges)
        for k, (lo, hi) in enumerate(edges):
            wide[hi - lo :, k * n_x : (k + 1) * n_x] = -0.0

    def _push(self, c: int, mean: Array, M2: Array) -> None:
        """One group's (count, mean, M2) onto the tree of pending subtrees."""
        height, count = 0, c
        while self._stack and self._stack[-1][0] == height:
            _, n_a, mean_a, M2_a = self._stack.pop()
            count, mean, M2 = _combine(n_a, mean_a, M2_a, count, mean, M2)
            height += 1
        self._stack.append((height, count, mean, M2))

    def standardization(self) -> Standardization:
        """mean and scale = the population std (n_x, 1); scale 1 where the
        std is below 10·eps·max(|mean|, 1) (a constant feature, up to rounding)."""
        if self._shift is None:
            raise ValueError("no samples to fit the standardization on")
        _, count, mean, M2 = self._stack[-1]
        for _, n_a, mean_a, M2_a in reversed(self._stack[:-1]):
            count, mean, M2 = _combine(n_a, mean_a, M2_a, count, mean, M2)
        mean = self._shift + mean
        std = np.sqrt(M2 / count)
        eps = np.finfo(np.float64).eps
        scale = np.where(std < 10 * eps * np.maximum(np.abs(mean), 1.0), 1.0, std)
        return Standardization(mean=mean.reshape(-1, 1), scale=scale.reshape(-1, 1))


def _combine(
    n_a: int, mean_a: Array, M2_a: Array, n_b: int, mean_b: Array, M2_b: Array
) -> tuple[int, Array, Array]:
    """(count, mean, M2) of the union of two disjoint sets of samples."""
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), M2_a + M2_b + delta**2 * (n_a * n_b / n)


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
    held = np.zeros(m, np.bool_)  # the held-out samples: both lists, sorted, at once
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        if idx.size < 2:
            raise ValueError(
                "a validation split needs at least 2 samples of each class, "
                f"class {c} has {idx.size}"
            )
        n_val = min(max(1, round(fraction * idx.size)), idx.size - 1)
        held[rng.permutation(idx)[:n_val]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)
