"""A fitted model: parameters, activation, classes and standardization, and its file.

The model file (`to_bytes`, served as `GET /runs/{id}/model.npz`) is an
`.npz` archive that `np.load(..., allow_pickle=False)` reads:

    W1 (n_h, n_x)  b1 (n_h, 1)  W2 (1, n_h)  b2 (1, 1)   in the standardized feature space
    mean, scale (n_x, 1)                                  only when standardized
    __meta__  a JSON string: {"format": "twolayer.model/1", "activation": "relu"|"tanh",
              "classes": [negative, positive]}  (the classes keep their JSON types)

ŷ is finite, in [0, 1], for every finite input. A column whose forward pass
may overflow (|x| near 1e308, or a tiny scale) is computed again scaled by an
exact power of two s = 2^k, chosen from the exponents of x, mean, scale and
the weights so that nothing overflows: with x' = x/s, mean/s and biases b/s,

    Z1' = W1·((x' - mean/s) / scale) + b1/s = Z1 / s
    relu:  Z2 = s·(W2·relu(Z1')) + b2          (relu is positively homogeneous)
    tanh:  Z2 = W2·tanh(s·Z1') + b2            (tanh(±inf) = ±1)

and σ(±inf) is exactly 0 or 1, all in float64 (a float32 model's b/s would
underflow). Every other column is the plain pass, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.nn.data import augmented_rows
from app.nn.network import sigmoid
from app.nn.params import Activation, Array, Parameters
from app.nn.preprocessing import Label, Standardization, check_features
from app.nn.rules import Rule
from app.nn.serialization import dump_npz, load_npz
from app.nn.workspace import Workspace, logits

MODEL_FORMAT = "twolayer.model/1"
DEFAULT_THRESHOLD = 0.5
_LOWEST, _HIGHEST = 0.0, 1.0
THRESHOLD = Rule("float", "ŷ at or above it predicts the positive class", ge=_LOWEST, le=_HIGHEST)


# Up to this many columns, prediction reuses buffers: for a few rows the cost
# is allocation and call overhead, not arithmetic. The buffers a model keeps
# are at most BUFFER_BYTES in all (a set past it is used once, not kept): a
# large model's buffers for every m up to 64 would otherwise hold over 100 MiB.
SMALL_BATCH = 64
BUFFER_BYTES = 4 * 1024 * 1024

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
    _kept: list[int] = field(  # [bytes of the buffer sets kept], at most BUFFER_BYTES
        default_factory=lambda: [0], init=False, repr=False, compare=False
    )
    _bounds: list[int] = field(  # [e_W, plain limit] once worked out (_limits)
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def n_features(self) -> int:
        return self.params.n_x

    @property
    def hidden_units(self) -> int:
        return self.params.n_h

    @property
    def max_buffer_bytes(self) -> int:
        """The most its prediction buffers keep: one set per m up to SMALL_BATCH,
        of [X; 1], [A1; 1], Z2 and A2 columns, and never over BUFFER_BYTES."""
        column = self.params.theta.dtype.itemsize * (self.n_features + self.hidden_units + 4)
        return min(BUFFER_BYTES, column * SMALL_BATCH * (SMALL_BATCH + 1) // 2)

    def predict_proba(self, X: Any) -> Array:
        """ŷ = σ(Z2) (1, m) for raw features X (n_x, m); standardization applied.
        Finite, in [0, 1], for any finite X (the module's docstring)."""
        X = check_features(X, n_x=self.n_features)
        with np.errstate(over="ignore", invalid="ignore"):
            A2 = self._plain_proba(X)
            redo = ~np.isfinite(A2[0])
            # A sum that overflows in Z1 can still end finite (relu(-inf) = 0,
            # σ(±inf) is 0 or 1), and where it does depends on the order of the
            # sums: a column that may overflow at all is computed scaled.
            # One look at X's largest magnitude clears the usual input at once.
            extreme = max(abs(float(X.max(initial=0.0))), abs(float(X.min(initial=0.0))))
            if math.frexp(extreme)[1] > self._limits()[1]:
                redo |= self._scale_exponents(X) > 0
            if redo.any():
                A2[:, redo] = self._scaled_proba(X[:, redo])
        return A2

    def _scale_exponents(self, X: Array, dtype: Any = None) -> Array:
        """k (m,) per column of X (n_x, m): the smallest power s = 2^k for which no
        sum of the forward pass on X / s, in `dtype` (the model's by default), can
        overflow, whatever its order (every partial sum is bounded by the sum of
        the magnitudes); 0 for most inputs."""
        P, st = self.params, self.standardization
        _, e_x = np.frexp(X)  # |x| < 2^e_x
        if st is None:
            e_u = e_x.max(axis=0)  # |u| < 2^e_u per column, u the layer's input
        else:  # |x - mean| / scale < 2^(max(e_x, e_mean) + 1 - (e_scale - 1))
            _, e_mean = np.frexp(st.mean)
            _, e_scale = np.frexp(st.scale)
            e_u = (np.maximum(e_x, e_mean) + 2 - e_scale).max(axis=0)
        room = np.finfo(dtype or P.theta.dtype).maxexp - 8  # below the largest exponent
        k: Array = np.maximum(e_u + max(self._limits()[0], 0) - room, 0)
        return k

    def _limits(self) -> tuple[int, int]:
        """(e_W, the plain pass's limit), worked out once per model (O(n_h·n_x)).

        e_W: |Z1'| <= max_i Σ_j |W1_ij|·|u'_j| + |b1| and |Z2'| <= Σ |W2|·max|Z1'| +
        |b2| stay below 2^(e_u + e_W). The limit: _scale_exponents is 0 for every
        column iff the exponent of max|x| is at most it (without standardization,
        e_x + e_W' <= room; with it, for every feature j, max(e_x, e_mean_j) + 2 -
        e_scale_j + e_W' <= room)."""
        if not self._bounds:
            P, st = self.params, self.standardization
            W1_sum = float(np.abs(P.W1).astype(np.float64).sum(axis=1).max())
            W2_sum = float(np.abs(P.W2).astype(np.float64).sum())
            e_W = int(np.frexp(W1_sum)[1]) + int(np.frexp(W2_sum)[1])
            limit = np.finfo(P.theta.dtype).maxexp - 8 - max(e_W, 0)
            if st is not None:
                ceiling = limit - 2 + np.frexp(st.scale)[1]
                limit = int(ceiling.min()) if (np.frexp(st.mean)[1] <= ceiling).all() else -(2**31)
            self._bounds.extend([e_W, limit])
        return self._bounds[0], self._bounds[1]

    def _scaled_proba(self, X: Array) -> Array:
        """ŷ (1, m) for columns X (n_x, m) whose plain pass may overflow, each scaled
        by its own s = 2^k (the module's docstring)."""
        P, st = self.params, self.standardization
        # in float64 whatever the model's dtype: a float32 model's b/s would
        # underflow to 0 at the scales a float32 pass needs
        W1, b1, W2, b2 = (a.astype(np.float64) for a in (P.W1, P.b1, P.W2, P.b2))
        k = self._scale_exponents(X, np.float64)  # (m,): s = 2^k
        U = np.ldexp(X, -k)
        if st is not None:
            U -= np.ldexp(st.mean, -k)
            U /= st.scale
        Z1 = W1 @ U + np.ldexp(b1, -k)  # Z1' = Z1 / s
        if self.activation == "relu":
            np.maximum(Z1, 0, out=Z1)
            Z2 = np.ldexp(W2 @ Z1, k) + b2  # s·W2·relu(Z1') + b2, ±inf past the range
        else:
            Z2 = W2 @ np.tanh(np.ldexp(Z1, k)) + b2
        return sigmoid(Z2).astype(P.theta.dtype)

    def _plain_proba(self, X: Array) -> Array:
        """The forward pass as trained, on the fast path's buffers."""
        m = X.shape[1]
        if m > SMALL_BATCH:
            Xa = augmented_rows(X, self.standardization, self.params.theta.dtype).T
            A2 = np.empty((1, m), self.params.theta.dtype)
            logits(self.params, Xa, self.activation, A2)
            return A2
        free = self._free.setdefault(m, [])
        keep = True
        try:
            buffers = free.pop()
        except IndexError:
            buffers = self._new_buffers(m)
            size = buffers[0].nbytes + buffers[1].nbytes + buffers[2].nbytes
            keep = self._kept[0] + size <= self.max_buffer_bytes
            if keep:
                self._kept[0] += size
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
            if keep:
                free.append(buffers)

    def _new_buffers(self, m: int) -> _Buffers:
        """A workspace, [X; 1] and Z2 buffers for m columns."""
        P, dtype = self.params, self.params.theta.dtype
        Xa = np.empty((P.n_x + 1, m), dtype)
        Xa[P.n_x] = 1
        return Workspace(P.n_x, P.n_h, m, dtype, backward=False), Xa, np.empty((1, m), dtype)

    def predict(self, X: Any, threshold: float = DEFAULT_THRESHOLD) -> list[Label]:
        """The class of each column: the positive class where ŷ ≥ threshold."""
        return self.labels(self.predict_proba(X), threshold)

    def labels(self, probabilities: Array, threshold: float = DEFAULT_THRESHOLD) -> list[Label]:
        """The class for each probability ŷ: the positive class where ŷ ≥ threshold."""
        # the rule's own check only when the range says no: this is /predict's path
        if not _LOWEST <= threshold <= _HIGHEST and (
            problem := THRESHOLD.problem("threshold", threshold)
        ):
            raise ValueError(problem)
        negative, positive = self.classes
        return [positive if p else negative for p in (probabilities.ravel() >= threshold).tolist()]

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


def check_warm_start(
    model: Model, *, n_features: int, hidden_units: int, activation: Activation
) -> None:
    """A run may start from `model`'s weights only with its shape and activation."""
    if model.n_features != n_features:
        raise ValueError(
            f"the initial model has {model.n_features} features, the data {n_features}"
        )
    if model.hidden_units != hidden_units:
        raise ValueError(
            f"the initial model has {model.hidden_units} hidden units, "
            f"this run asks for {hidden_units}"
        )
    if model.activation != activation:
        raise ValueError(
            f"the initial model uses {model.activation}, this run asks for {activation}"
        )


def _two_classes(classes: Sequence[Label]) -> tuple[Label, Label]:
    if len(classes) != 2:
        raise ValueError(f"a model has two classes, got {len(classes)}")
    return (classes[0], classes[1])
