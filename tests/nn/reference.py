"""A textbook training loop over the seed's map, written plainly, to test the Trainer against.

The gradient is `app.nn.backward`, the map as the engine writes it; the rest
is here in plain form: separate arrays, no buffers, no augmented matrices,
no chunking, the cost from log(ŷ). Each line is one line of the formulas
in docs/design.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.nn import Gradients, Parameters, backward

F = NDArray[Any]


@dataclass
class Net:
    W1: F
    b1: F
    W2: F
    b2: F
    activation: str = "relu"
    state: dict[str, F] = field(default_factory=dict)

    def parameters(self) -> Parameters:
        return Parameters.from_arrays(self.W1, self.b1, self.W2, self.b2)


def cost(net: Net, X: F, Y: F, l2: float = 0.0) -> float:
    """J = -(1/m)·Σ (y·log ŷ + (1-y)·log(1-ŷ)) + (λ/2m)·(‖W1‖² + ‖W2‖²), naively."""
    m = X.shape[1]
    A1 = (
        np.maximum(net.W1 @ X + net.b1, 0)
        if net.activation == "relu"
        else np.tanh(net.W1 @ X + net.b1)
    )
    A2 = 1 / (1 + np.exp(-(net.W2 @ A1 + net.b2)))
    J = float(-(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)).sum() / m)
    return float(J + l2 / (2 * m) * float((net.W1**2).sum() + (net.W2**2).sum()))


def gradients(net: Net, X: F, Y: F, l2: float = 0.0) -> Gradients:
    return backward(net.parameters(), X, Y, net.activation, l2)  # type: ignore[arg-type]


def update(net: Net, grads: Gradients, optimizer: str, lr: float, t: int) -> None:
    """sgd, momentum (course form) or adam (course form), one step; t counts from 1."""
    for name in ("W1", "b1", "W2", "b2"):
        theta, d = getattr(net, name), getattr(grads, "d" + name)
        if optimizer == "sgd":
            step = d
        elif optimizer == "momentum":
            v = net.state.get("v" + name, np.zeros_like(d))
            v = 0.9 * v + 0.1 * d
            net.state["v" + name] = v
            step = v
        else:
            v = net.state.get("v" + name, np.zeros_like(d))
            s = net.state.get("s" + name, np.zeros_like(d))
            v = 0.9 * v + 0.1 * d
            s = 0.999 * s + 0.001 * d**2
            net.state["v" + name], net.state["s" + name] = v, s
            step = (v / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + 1e-8)
        setattr(net, name, theta - lr * step)


def train(
    X: F,
    Y: F,
    *,
    n_h: int,
    epochs: int,
    batch_size: int | None,
    lr: float,
    seed: int,
    optimizer: str = "sgd",
    l2: float = 0.0,
    shuffle: bool = True,
    activation: str = "relu",
) -> tuple[Net, list[float]]:
    """Mini-batch gradient descent as docs/design.md states it, He initialisation for
    relu and Xavier for tanh, no validation split and no standardization (so
    the Generator draws W1, W2, then one permutation per epoch)."""
    rng = np.random.default_rng(seed)
    n_x, m = X.shape
    gain = 2 if activation == "relu" else 1
    W1 = rng.standard_normal((n_h, n_x)) * np.sqrt(gain / n_x)
    W2 = rng.standard_normal((1, n_h)) * np.sqrt(gain / n_h)
    net = Net(W1, np.zeros((n_h, 1)), W2, np.zeros((1, 1)), activation)
    B = m if batch_size is None else batch_size
    costs, t = [], 0
    for _ in range(epochs):
        order = rng.permutation(m) if m > B and shuffle else np.arange(m)
        total = 0.0
        for start in range(0, m, B):
            idx = order[start : start + B]
            Xb, Yb = X[:, idx], Y[:, idx]
            total += cost(net, Xb, Yb, l2) * Xb.shape[1]
            t += 1
            update(net, gradients(net, Xb, Yb, l2), optimizer, lr, t)
        costs.append(total / m)
    return net, costs
