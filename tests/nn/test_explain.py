"""∂ŷ/∂x from the backprop map, against central finite differences of predict_proba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.nn import Model
from app.nn.explain import attributions, input_gradient
from app.nn.params import Parameters
from app.nn.preprocessing import Standardization


def model_of(
    rng: np.random.Generator,
    n_x: int,
    n_h: int,
    activation: Any,
    standardized: bool,
    dtype: Any = np.float64,
) -> Model:
    params = Parameters.from_arrays(
        rng.normal(size=(n_h, n_x)),
        rng.normal(size=(n_h, 1)),
        rng.normal(size=(1, n_h)),
        rng.normal(size=(1, 1)),
        dtype=dtype,
    )
    st_ = None
    if standardized:
        st_ = Standardization(
            mean=rng.normal(size=(n_x, 1)) * 10, scale=rng.uniform(0.5, 20, size=(n_x, 1))
        )
    return Model(params, activation, (0, 1), st_)


def finite_differences(model: Model, X: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central differences (ŷ(x + h e_j) - ŷ(x - h e_j)) / 2h, per feature and column;
    h (n_x, 1) in each feature's units."""
    grad = np.empty_like(X)
    for j in range(X.shape[0]):
        step = np.zeros_like(X)
        step[j] = h[j]
        up = model.predict_proba(X + step).astype(np.float64)
        down = model.predict_proba(X - step).astype(np.float64)
        grad[j] = ((up - down) / (2 * h[j]))[0]
    return grad


def away_from_kinks(model: Model, X: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The columns of X whose hidden pre-activations keep their signs within ±h on
    every feature: there relu is smooth and a central difference is exact to O(h²)."""
    st_ = model.standardization
    scale = np.ones_like(h) if st_ is None else st_.scale
    U = X if st_ is None else st_.transform(X)
    P = model.params
    Z1 = P.W1.astype(np.float64) @ U + P.b1
    reach = np.abs(P.W1.astype(np.float64)) @ (h / scale)  # the most Z1 moves
    keep: np.ndarray = np.all(np.abs(Z1) > 2 * reach, axis=0)
    return keep


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("standardized", [False, True])
def test_the_gradient_is_the_finite_difference(activation: str, standardized: bool) -> None:
    rng = np.random.default_rng(0)
    model = model_of(rng, 3, 6, activation, standardized)
    scale = np.ones((3, 1)) if model.standardization is None else model.standardization.scale
    mean = np.zeros((3, 1)) if model.standardization is None else model.standardization.mean
    X = mean + scale * rng.normal(size=(3, 200))
    # h ~ 1e-5 of each feature's spread: truncation O(h²) ≈ 1e-10 relative, rounding
    # ≈ 1e-16 / 1e-5 = 1e-11 of ŷ's scale
    h = 1e-5 * scale
    dX, A2 = input_gradient(model, X)
    assert dX.shape == (3, 200)
    np.testing.assert_array_equal(A2, model.predict_proba(X))
    keep = away_from_kinks(model, X, h) if activation == "relu" else np.ones(200, bool)
    assert keep.sum() > 100
    expected = finite_differences(model, X, h)
    np.testing.assert_allclose(dX[:, keep], expected[:, keep], rtol=1e-6, atol=1e-9 / scale.min())
    np.testing.assert_array_equal(attributions(X, dX), X * dX)


def test_a_float32_model_is_explained_in_float64() -> None:
    rng = np.random.default_rng(1)
    model = model_of(rng, 2, 4, "tanh", True, dtype=np.float32)
    wide = Model(
        Parameters.from_arrays(model.params.W1, model.params.b1, model.params.W2, model.params.b2),
        "tanh",
        (0, 1),
        model.standardization,
    )
    X = rng.normal(size=(2, 50))
    dX, _ = input_gradient(model, X)
    assert dX.dtype == np.float64
    np.testing.assert_allclose(dX, input_gradient(wide, X)[0], rtol=1e-5, atol=1e-7)


def test_extremes_and_saturation_give_finite_gradients() -> None:
    rng = np.random.default_rng(2)
    for activation in ("relu", "tanh"):
        model = model_of(rng, 2, 5, activation, True)
        X = np.array([[1e308, -1e308, 1e300, 0.0, 5e3], [-1e308, 1e308, -1e300, 1e-300, -5e3]])
        dX, A2 = input_gradient(model, X)
        assert np.isfinite(dX).all()
        assert np.isfinite(attributions(X, dX)).all()
        assert ((A2 >= 0) & (A2 <= 1)).all()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_x=st.integers(1, 5),
    n_h=st.integers(1, 8),
    activation=st.sampled_from(["relu", "tanh"]),
    standardized=st.booleans(),
)
def test_property_the_gradient_is_the_finite_difference(
    seed: int, n_x: int, n_h: int, activation: str, standardized: bool
) -> None:
    rng = np.random.default_rng(seed)
    model = model_of(rng, n_x, n_h, activation, standardized)
    scale = np.ones((n_x, 1)) if model.standardization is None else model.standardization.scale
    mean = np.zeros((n_x, 1)) if model.standardization is None else model.standardization.mean
    X = mean + scale * rng.normal(size=(n_x, 20))
    h = 1e-5 * scale
    dX, _ = input_gradient(model, X)
    keep = away_from_kinks(model, X, h) if activation == "relu" else np.ones(20, bool)
    expected = finite_differences(model, X, h)
    np.testing.assert_allclose(dX[:, keep], expected[:, keep], rtol=1e-5, atol=1e-8 / scale.min())
