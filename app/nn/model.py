"""A fitted model: parameters, activation, classes and standardization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.nn.network import Workspace
from app.nn.params import Activation, Array, Parameters
from app.nn.preprocessing import Label, Standardization, check_features
from app.nn.serialization import dump_npz, load_npz

MODEL_FORMAT = "twolayer.model/1"


def chunk_width(n_h: int, dtype: np.dtype | type) -> int:
    """Columns per chunk when a pass is split to keep (n_h, m) buffers in cache.

    A function of n_h and dtype only, so a run computes identically
    (bit for bit) on every machine and after every resume.
    """
    itemsize = np.dtype(dtype).itemsize
    # ~1 MiB per (n_h, width) buffer: measured fastest for n_h 128 (1024 columns
    # in float64, 2048 in float32); narrower chunks cost GEMM efficiency.
    width = (1024 * 1024) // (max(n_h, 1) * itemsize)
    return int(min(max(width, 256), 8192))


def logits(P: Parameters, Xa: Array, activation: Activation, A2: Array | None = None) -> Array:
    """Z2 (1, m) for Xa = [X; 1] (n_x+1, m), in cache-sized chunks of columns;
    also fills A2 = σ(Z2) (1, m) when given."""
    m = Xa.shape[1]
    Z2 = np.empty((1, m), P.theta.dtype)
    width = chunk_width(P.n_h, P.theta.dtype)
    workspaces: dict[int, Workspace] = {}
    for start in range(0, m, width):
        stop = min(start + width, m)
        ws = workspaces.get(stop - start)
        if ws is None:
            ws = workspaces[stop - start] = Workspace(
                P.n_x, P.n_h, stop - start, P.theta.dtype, backward=False
            )
        ws.forward(P, Xa[:, start:stop], Z2[:, start:stop], activation)
        if A2 is not None:
            A2[:, start:stop] = ws.A2
    return Z2


def augmented_rows(X: Array, standardization: Standardization | None, dtype: np.dtype) -> Array:
    """Rows [x_i, 1] (m, n_x+1), C-ordered, from X (n_x, m).

    Its transpose is Xa = [X; 1] in F order: one sample's features are
    contiguous, so a batch of consecutive samples is one contiguous block.
    """
    n_x, m = X.shape
    XTa = np.empty((m, n_x + 1), dtype)
    XTa[:, :n_x] = (standardization.transform(X) if standardization else X).T
    XTa[:, n_x] = 1
    return XTa


# Up to this many columns, prediction reuses buffers: for a few rows the cost
# is allocation and call overhead, not arithmetic.
SMALL_BATCH = 64

_Buffers = tuple[Workspace, Array, Array]  # workspace, [X; 1] and Z2 for m columns


@dataclass(frozen=True)
class Model:
    params: Parameters
    activation: Activation
    classes: tuple[Label, Label]
    standardization: Standardization | None
    # m -> free buffer sets; a call borrows one and gives it back, so concurrent
    # callers (threads) never share one. list.pop and list.append are atomic.
    _free: dict[int, list[_Buffers]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def n_features(self) -> int:
        return self.params.n_x

    @property
    def hidden_units(self) -> int:
        return self.params.n_h

    def predict_proba(self, X: Any) -> Array:
        """ŷ = σ(Z2) (1, m) for raw features X (n_x, m); standardization applied."""
        X = check_features(X, n_x=self.n_features)
        m = X.shape[1]
        if m > SMALL_BATCH:
            Xa = augmented_rows(X, self.standardization, self.params.theta.dtype).T
            A2 = np.empty((1, m), self.params.theta.dtype)
            logits(self.params, Xa, self.activation, A2)
            return A2
        free = self._free.setdefault(m, [])
        try:
            buffers = free.pop()
        except IndexError:
            buffers = self._new_buffers(m)
        try:
            ws, Xa, Z2 = buffers
            n_x = self.n_features
            if self.standardization is None:
                Xa[:n_x] = X
            else:  # the same (x - mean) / scale as Standardization.transform
                np.subtract(X, self.standardization.mean, out=Xa[:n_x])
                np.divide(Xa[:n_x], self.standardization.scale, out=Xa[:n_x])
            ws.forward(self.params, Xa, Z2, self.activation)
            return ws.A2.copy()
        finally:
            free.append(buffers)

    def _new_buffers(self, m: int) -> _Buffers:
        """A workspace, [X; 1] and Z2 buffers for m columns."""
        P, dtype = self.params, self.params.theta.dtype
        Xa = np.empty((P.n_x + 1, m), dtype)
        Xa[P.n_x] = 1
        return Workspace(P.n_x, P.n_h, m, dtype, backward=False), Xa, np.empty((1, m), dtype)

    def predict(self, X: Any, threshold: float = 0.5) -> list[Label]:
        """The class of each column: the positive class where ŷ ≥ threshold."""
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        positive = self.predict_proba(X).ravel() >= threshold
        return [self.classes[int(p)] for p in positive]

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = dict(self.params.arrays())
        if self.standardization is not None:
            arrays["mean"] = self.standardization.mean
            arrays["scale"] = self.standardization.scale
        meta = {
            "format": MODEL_FORMAT,
            "activation": self.activation,
            "classes": list(self.classes),
        }
        return dump_npz(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        arrays, meta = load_npz(data)
        if meta.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a twolayer model archive (format {meta.get('format')!r})")
        try:
            params = Parameters.from_arrays(arrays["W1"], arrays["b1"], arrays["W2"], arrays["b2"])
        except KeyError as exc:
            raise ValueError(f"model archive lacks {exc}") from None
        standardization = None
        if "mean" in arrays:
            standardization = Standardization(mean=arrays["mean"], scale=arrays["scale"])
        return cls(
            params=params,
            activation=meta["activation"],
            classes=_two_classes(meta["classes"]),
            standardization=standardization,
        )


def _two_classes(classes: Sequence[Label]) -> tuple[Label, Label]:
    if len(classes) != 2:
        raise ValueError(f"a model has two classes, got {len(classes)}")
    return (classes[0], classes[1])
