"""The seed's map as code: forward pass, cost and backward pass.

    X : (n_x, m)   Y : (1, m)   W1 : (n_h, n_x)   b1 : (n_h, 1)   W2 : (1, n_h)   b2 : (1, 1)

`forward`, `compute_cost` and `backward` are the formulas as the course
writes them, one line each, on plain arrays. They are the reference: the
training loop and prediction run the same map in preallocated buffers
(`app.nn.workspace`), and the tests hold that fast form to these functions
(to 1e-12 in float64). `sigmoid` and `cross_entropy_sum` are shared by both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.nn.params import Activation, Array, Parameters


def sigmoid(Z: Array, out: Array | None = None) -> Array:
    """σ(z) = ½·(1 + tanh(z/2)): exact, never overflows, full precision near 0 and 1."""
    out = np.multiply(Z, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def cross_entropy_sum(Z2: Array, Y: Array) -> float:
    """Σ L(σ(Z2), Y) computed from the logits, stably.

    -y·log σ(z) - (1-y)·log(1-σ(z)) = softplus(z) - y·z, and
    softplus(z) = log(1 + e^z) = logaddexp(0, z) never overflows and never
    takes log(0): finite for any finite z (|z| up to 1e4 and far beyond).
    The sum is taken in float64 whatever the dtype of Z2.
    """
    z = Z2.ravel()
    y = Y.ravel()
    # softplus(z) = max(z, 0) + log1p(e^-|z|), in place: faster than NumPy's logaddexp
    softplus = np.abs(z)
    np.negative(softplus, out=softplus)
    np.exp(softplus, out=softplus)
    np.log1p(softplus, out=softplus)
    softplus += np.maximum(z, 0)
    return float(np.sum(softplus, dtype=np.float64)) - float(np.dot(y, z))


def activation_forward(Z: Array, activation: Activation, out: Array | None = None) -> Array:
    """A = relu(Z) = max(Z, 0), or A = tanh(Z)."""
    if activation == "relu":
        return np.maximum(Z, 0, out=out)
    if activation == "tanh":
        return np.tanh(Z, out=out)
    raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")


def activation_backward(dA: Array, Z: Array, A: Array, activation: Activation) -> Array:
    """dZ = dA * g'(Z): dA * [Z > 0] for relu, dA * (1 - A²) for tanh (A = tanh(Z))."""
    if activation == "relu":
        return dA * (Z > 0)
    if activation == "tanh":
        return dA * (1 - A**2)
    raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")


@dataclass(frozen=True)
class Cache:
    """What the forward pass keeps for the backward pass."""

    Z1: Array  # (n_h, m)
    A1: Array  # (n_h, m)
    Z2: Array  # (1, m)
    A2: Array  # (1, m)


@dataclass(frozen=True)
class Gradients:
    """Every array of the backprop map, for one batch."""

    dZ2: Array  # (1, m)
    dW2: Array  # (1, n_h)
    db2: Array  # (1, 1)
    dA1: Array  # (n_h, m)
    dZ1: Array  # (n_h, m)
    dW1: Array  # (n_h, n_x)
    db1: Array  # (n_h, 1)


def _check_X(P: Parameters, X: Array) -> None:
    if X.ndim != 2 or X.shape[0] != P.n_x:
        raise ValueError(f"X must have shape (n_x={P.n_x}, m), got {X.shape}")


def forward(P: Parameters, X: Array, activation: Activation = "relu") -> Cache:
    """Forward pass on X (n_x, m); returns Z1, A1 (n_h, m) and Z2, A2 (1, m)."""
    _check_X(P, X)
    Z1 = P.W1 @ X + P.b1  # (n_h, m)
    A1 = activation_forward(Z1, activation)  # (n_h, m)
    Z2 = P.W2 @ A1 + P.b2  # (1, m)
    A2 = sigmoid(Z2)  # (1, m): ŷ
    return Cache(Z1=Z1, A1=A1, Z2=Z2, A2=A2)


def compute_cost(Z2: Array, Y: Array, P: Parameters | None = None, l2: float = 0.0) -> float:
    """J = (1/m)·Σ L + (λ/2m)·(‖W1‖² + ‖W2‖²), from the logits Z2 (1, m)."""
    if Z2.shape != Y.shape:
        raise ValueError(f"Z2 and Y must have the same shape, got {Z2.shape} and {Y.shape}")
    m = Z2.shape[-1]
    J = cross_entropy_sum(Z2, Y) / m
    if l2 and P is not None:
        W1, W2 = P.W1.astype(np.float64), P.W2.astype(np.float64)
        J += l2 / (2 * m) * (float(np.sum(W1**2)) + float(np.sum(W2**2)))
    return float(J)


def backward(
    P: Parameters,
    X: Array,
    Y: Array,
    activation: Activation = "relu",
    l2: float = 0.0,
) -> Gradients:
    """The backprop map for X (n_x, m), Y (1, m): the gradient of J (with L2 λ) and
    every intermediate array, as the course writes it."""
    _check_X(P, X)
    m = X.shape[1]
    if Y.shape != (1, m):
        raise ValueError(f"Y must have shape (1, {m}), got {Y.shape}")
    cache = forward(P, X, activation)
    Z1, A1, A2 = cache.Z1, cache.A1, cache.A2
    dZ2 = A2 - Y  # (1, m): σ with cross-entropy, ∂L/∂Z2 = A2 - Y
    dW2 = (1 / m) * dZ2 @ A1.T + (l2 / m) * P.W2  # (1, n_h)
    db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)  # (1, 1)
    dA1 = P.W2.T @ dZ2  # (n_h, m)
    # (n_h, m): dZ1 = dA1 * [Z1 > 0] for relu, dA1 * (1 - A1²) for tanh
    dZ1 = activation_backward(dA1, Z1, A1, activation)
    dW1 = (1 / m) * dZ1 @ X.T + (l2 / m) * P.W1  # (n_h, n_x)
    db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)  # (n_h, 1)
    return Gradients(dZ2=dZ2, dW2=dW2, db2=db2, dA1=dA1, dZ1=dZ1, dW1=dW1, db1=db1)
