"""Optimizers over the flat parameter vector θ; their state is plain arrays.

    sgd:      θ := θ - α·dθ
    momentum: v := β·v + (1-β)·dθ;  θ := θ - α·v                (the course's form)
    adam:     v := β1·v + (1-β1)·dθ;  s := β2·s + (1-β2)·dθ²;  t := t + 1
              θ := θ - α·(v / (1-β1ᵗ)) / (sqrt(s / (1-β2ᵗ)) + ε)

`step` may overwrite the gradient buffer it is given (it is recomputed for
every batch), which saves a temporary in the hot loop.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from app.nn.params import Array

OptimizerName = Literal["sgd", "momentum", "adam"]


class Optimizer(Protocol):
    def step(self, theta: Array, dtheta: Array) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...


class SGD:
    """Plain gradient descent, the default."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate

    def step(self, theta: Array, dtheta: Array) -> None:
        dtheta *= self.learning_rate
        theta -= dtheta

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


class Momentum:
    """Gradient descent with an exponentially weighted average of past gradients."""

    def __init__(
        self, learning_rate: float, beta: float, size: int, dtype: np.dtype | type
    ) -> None:
        self.learning_rate = learning_rate
        self.beta = beta
        self.v = np.zeros(size, dtype)

    def step(self, theta: Array, dtheta: Array) -> None:
        self.v *= self.beta
        dtheta *= 1 - self.beta
        self.v += dtheta
        np.multiply(self.v, self.learning_rate, out=dtheta)
        theta -= dtheta

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"v": self.v.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.v[...] = state["v"]


class Adam:
    """Adam with bias correction, ε added to sqrt(ŝ) as in the course."""

    def __init__(
        self,
        learning_rate: float,
        beta1: float,
        beta2: float,
        epsilon: float,
        size: int,
        dtype: np.dtype | type,
    ) -> None:
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.v = np.zeros(size, dtype)
        self.s = np.zeros(size, dtype)
        self.t = 0
        self._tmp = np.zeros(size, dtype)

    def step(self, theta: Array, dtheta: Array) -> None:
        b1, b2, tmp = self.beta1, self.beta2, self._tmp
        self.t += 1
        self.v *= b1
        np.multiply(dtheta, 1 - b1, out=tmp)
        self.v += tmp  # v = β1·v + (1-β1)·dθ
        self.s *= b2
        np.multiply(dtheta, dtheta, out=tmp)
        tmp *= 1 - b2
        self.s += tmp  # s = β2·s + (1-β2)·dθ²
        np.multiply(self.s, 1.0 / (1 - b2**self.t), out=tmp)  # ŝ
        np.sqrt(tmp, out=tmp)
        tmp += self.epsilon
        np.divide(self.v, tmp, out=tmp)  # v / (sqrt(ŝ) + ε)
        tmp *= self.learning_rate / (1 - b1**self.t)  # bias-corrected v̂
        theta -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"v": self.v.copy(), "s": self.s.copy(), "t": np.array(self.t, np.int64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.v[...] = state["v"]
        self.s[...] = state["s"]
        self.t = int(state["t"])


def make_optimizer(
    name: OptimizerName,
    *,
    learning_rate: float,
    momentum: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    size: int,
    dtype: np.dtype | type,
) -> Optimizer:
    if name == "sgd":
        return SGD(learning_rate)
    if name == "momentum":
        return Momentum(learning_rate, momentum, size, dtype)
    if name == "adam":
        return Adam(learning_rate, beta1, beta2, epsilon, size, dtype)
    raise ValueError(f"optimizer must be 'sgd', 'momentum' or 'adam', got {name!r}")
