"""Explanations from the seed's own backprop map: ∂ŷ/∂x, through the standardization.

The backward pass of training ends at dW1; one step further, the map gives the
gradient with respect to the input. With U = (X - mean) / scale,

    Z1 = W1·U + b1,  A1 = g(Z1),  Z2 = W2·A1 + b2,  ŷ = σ(Z2)

    dZ2 = ŷ(1 - ŷ)              (1, m)     ∂ŷ/∂Z2
    dA1 = W2ᵀ·dZ2                (n_h, m)
    dZ1 = dA1 * g'(Z1)           (n_h, m)   relu: 1 where Z1 > 0; tanh: 1 - A1²
    dU  = W1ᵀ·dZ1                (n_x, m)
    dX  = dU / scale             (n_x, m)   in the input's own units

and gradient × input, X * dX, as the simplest attribution: a first-order
share of ŷ for each feature, measured from the origin of the raw units (not
from a baseline such as the mean). All in float64, whatever the model's dtype.

Where ŷ saturates (σ's tail), dZ2 underflows to 0 and so does the gradient:
the answer is exact there, the output does not move. An input so large that
a sum of the forward pass overflows (|x| near 1e308) is scaled first, as
`Model.predict_proba` does (relu is positively homogeneous, so Z1's sign is
unchanged; tanh saturates): ŷ, and with it the gradient, are then those of a
saturated unit, and nothing is NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.nn.params import Array
from app.nn.preprocessing import check_features

if TYPE_CHECKING:
    from app.nn.model import Model


def input_gradient(model: Model, X: Array) -> tuple[Array, Array]:
    """(∂ŷ/∂x, ŷ): the gradient (n_x, m) of ŷ for each column of raw features X
    (n_x, m), in X's units, and ŷ (1, m), as `Model.predict_proba` gives it."""
    X = check_features(X, n_x=model.n_features)
    P, st = model.params, model.standardization
    W1, b1, W2 = (a.astype(np.float64) for a in (P.W1, P.b1, P.W2))
    A2 = model.predict_proba(X).astype(np.float64)
    k = model._scale_exponents(X, np.float64)  # 0 for every column but the extreme
    U = np.ldexp(X, -k)
    if st is not None:
        U -= np.ldexp(st.mean, -k)
        U /= st.scale
    with np.errstate(over="ignore", invalid="ignore"):
        Z1 = W1 @ U + np.ldexp(b1, -k)  # Z1 / 2^k: the same signs
        if model.activation == "relu":
            g_prime = (Z1 > 0).astype(np.float64)
        else:
            A1 = np.tanh(np.ldexp(Z1, k))
            g_prime = 1.0 - A1 * A1
        dZ2 = A2 * (1.0 - A2)  # (1, m)
        dA1 = W2.T @ dZ2  # (n_h, m)
        dZ1 = dA1 * g_prime
        dU = W1.T @ dZ1  # (n_x, m)
    dX = dU if st is None else dU / st.scale
    return np.nan_to_num(dX, nan=0.0, posinf=0.0, neginf=0.0), A2


def attributions(X: Array, dX: Array) -> Array:
    """Gradient × input (n_x, m): x_j · ∂ŷ/∂x_j for each column."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.nan_to_num(np.asarray(X, dtype=np.float64) * dX, nan=0.0)
