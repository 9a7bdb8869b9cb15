"""Parameters W1, b1, W2, b2 as views into one flat vector, and their initialisation.

Keeping θ in one contiguous vector makes an optimizer step one vectorised
update instead of four, and is what a finite-difference gradient check
perturbs. The views are laid out as the augmented matrices

    [W1 | b1] : (n_h, n_x + 1)        [W2 | b2] : (1, n_h + 1)

so that, with a row of ones appended to X (and to A1), Z1 = W1·X + b1 is a
single matrix product and so is dW1/db1 (see `network.py`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]
Index = NDArray[np.integer]  # positions of columns or rows
Activation = Literal["relu", "tanh"]
Init = Literal["he", "xavier", "small"]


def n_parameters(n_x: int, n_h: int) -> int:
    """Length of θ for a network with n_x inputs and n_h hidden units."""
    return n_h * (n_x + 1) + (n_h + 1)


class Parameters:
    """θ = (W1, b1, W2, b2), or a gradient dθ = (dW1, db1, dW2, db2), over one flat vector.

    W1 : (n_h, n_x)    b1 : (n_h, 1)    W2 : (1, n_h)    b2 : (1, 1)
    """

    __slots__ = ("W1", "W1b1", "W2", "W2b2", "b1", "b2", "n_h", "n_x", "theta")

    def __init__(self, theta: Array, n_x: int, n_h: int) -> None:
        if theta.ndim != 1 or theta.shape[0] != n_parameters(n_x, n_h):
            raise ValueError(
                f"theta must be a vector of {n_parameters(n_x, n_h)} numbers "
                f"for n_x={n_x}, n_h={n_h}, got shape {theta.shape}"
            )
        if not theta.flags.c_contiguous:
            raise ValueError("theta must be contiguous")
        self.theta = theta
        self.n_x = n_x
        self.n_h = n_h
        k = n_h * (n_x + 1)
        self.W1b1 = theta[:k].reshape(n_h, n_x + 1)  # [W1 | b1]
        self.W2b2 = theta[k:].reshape(1, n_h + 1)  # [W2 | b2]
        self.W1 = self.W1b1[:, :n_x]  # (n_h, n_x)
        self.b1 = self.W1b1[:, n_x:]  # (n_h, 1)
        self.W2 = self.W2b2[:, :n_h]  # (1, n_h)
        self.b2 = self.W2b2[:, n_h:]  # (1, 1)

    @classmethod
    def zeros(cls, n_x: int, n_h: int, dtype: np.dtype | type = np.float64) -> Parameters:
        return cls(np.zeros(n_parameters(n_x, n_h), dtype=dtype), n_x, n_h)

    @classmethod
    def from_arrays(
        cls,
        W1: Array,
        b1: Array,
        W2: Array,
        b2: Array,
        dtype: np.dtype | type | None = None,
    ) -> Parameters:
        """Pack separate arrays (shapes as in the class docstring) into one θ."""
        W1 = np.asarray(W1)
        if W1.ndim != 2:
            raise ValueError(f"W1 must be 2-D (n_h, n_x), got shape {W1.shape}")
        n_h, n_x = W1.shape
        expected = {"b1": (n_h, 1), "W2": (1, n_h), "b2": (1, 1)}
        for name, arr in (("b1", b1), ("W2", W2), ("b2", b2)):
            if np.shape(arr) != expected[name]:
                raise ValueError(
                    f"{name} must have shape {expected[name]} for W1 of shape {W1.shape}, "
                    f"got {np.shape(arr)}"
                )
        P = cls.zeros(n_x, n_h, dtype or W1.dtype)
        P.W1[...] = W1
        P.b1[...] = b1
        P.W2[...] = W2
        P.b2[...] = b2
        return P

    def copy(self) -> Parameters:
        return Parameters(self.theta.copy(), self.n_x, self.n_h)

    def arrays(self) -> dict[str, Array]:
        """Independent copies of W1, b1, W2, b2."""
        return {
            "W1": self.W1.copy(),
            "b1": self.b1.copy(),
            "W2": self.W2.copy(),
            "b2": self.b2.copy(),
        }

    def weight_mask(self) -> Array:
        """1 where θ holds a weight (W1, W2), 0 for a bias: L2 penalises weights only."""
        mask = Parameters.zeros(self.n_x, self.n_h, self.theta.dtype)
        mask.W1[...] = 1
        mask.W2[...] = 1
        return mask.theta


def default_init(activation: Activation) -> Init:
    """He for relu, Xavier for tanh."""
    return "he" if activation == "relu" else "xavier"


def initialize(
    n_x: int,
    n_h: int,
    *,
    init: Init,
    rng: np.random.Generator,
    dtype: np.dtype | type = np.float64,
) -> Parameters:
    """Draw W1, W2 from N(0, 1) scaled by the scheme; biases start at zero.

    he:     W ~ N(0,1)·sqrt(2 / fan_in)
    xavier: W ~ N(0,1)·sqrt(1 / fan_in)      (the course's form)
    small:  W ~ N(0,1)·0.01                  (the course's first network)

    Values are drawn in float64 and then cast, so float32 and float64 runs
    of the same seed start from the same weights.
    """
    if n_x < 1 or n_h < 1:
        raise ValueError(f"n_x and n_h must be >= 1, got n_x={n_x}, n_h={n_h}")
    W1 = rng.standard_normal((n_h, n_x))
    W2 = rng.standard_normal((1, n_h))
    if init == "he":
        W1 *= np.sqrt(2.0 / n_x)
        W2 *= np.sqrt(2.0 / n_h)
    elif init == "xavier":
        W1 *= np.sqrt(1.0 / n_x)
        W2 *= np.sqrt(1.0 / n_h)
    elif init == "small":
        W1 *= 0.01
        W2 *= 0.01
    else:
        raise ValueError(f"init must be 'he', 'xavier' or 'small', got {init!r}")
    return Parameters.from_arrays(W1, np.zeros((n_h, 1)), W2, np.zeros((1, 1)), dtype=dtype)
