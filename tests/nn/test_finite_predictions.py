"""ŷ is finite and in [0, 1] for every finite input, and unchanged where the plain
forward pass is finite (Hypothesis: ±1e308, subnormals, 0, ...)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.nn import Model
from app.nn.network import forward
from app.nn.params import Parameters
from app.nn.preprocessing import Standardization

finite = st.floats(allow_nan=False, allow_infinity=False)
weights = st.floats(-10, 10, allow_nan=False)


@st.composite
def models_and_inputs(draw: st.DrawFn) -> tuple[Model, np.ndarray]:
    n_x = draw(st.integers(1, 3))
    n_h = draw(st.integers(1, 4))
    m = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float64, np.float32]))

    def array(shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> np.ndarray:
        return draw(hnp.arrays(np.float64, shape, elements=elements))

    params = Parameters.from_arrays(
        array((n_h, n_x), weights),
        array((n_h, 1), weights),
        array((1, n_h), weights),
        array((1, 1), weights),
        dtype=dtype,
    )
    standardization = None
    if draw(st.booleans()):
        standardization = Standardization(
            mean=array((n_x, 1), st.floats(-1e6, 1e6)),
            scale=array((n_x, 1), st.floats(1e-6, 1e6)),
        )
    model = Model(
        params=params,
        activation=draw(st.sampled_from(["relu", "tanh"])),
        classes=(0, 1),
        standardization=standardization,
    )
    extreme = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 0.0])
    X = array((n_x, m), st.one_of(finite, extreme))
    return model, X


@settings(max_examples=400, deadline=None)
@given(models_and_inputs())
def test_probabilities_are_finite_and_plain_where_the_plain_pass_is(
    case: tuple[Model, np.ndarray],
) -> None:
    model, X = case
    A2 = model.predict_proba(X)
    assert A2.shape == (1, X.shape[1])
    assert np.isfinite(A2).all(), (A2, X)
    assert ((A2 >= 0) & (A2 <= 1)).all(), A2
    P, s = model.params, model.standardization
    with np.errstate(all="ignore"):
        Xs = X if s is None else s.transform(X)
        plain = forward(P, Xs.astype(P.theta.dtype), model.activation)
    # where no sum of the plain pass overflowed: ±inf never turns finite again, so
    # finite Z1 and Z2 mean every partial sum was in range
    finite_plain = np.isfinite(plain.Z1).all(axis=0) & np.isfinite(plain.Z2[0])
    tolerance = 1e-12 if P.theta.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(
        A2[0, finite_plain], plain.A2[0, finite_plain], rtol=tolerance, atol=tolerance
    )


def test_a_sum_that_overflows_in_some_order_is_not_taken_for_an_answer() -> None:
    """Z1 = (-2^1023) + (-2^1023) + 2^1023 + 2^1023 + 5 is 5, but summed in some
    orders it is -inf, which relu makes 0 and σ a finite 0.5: every arrangement
    of the four features, whatever order the GEMM sums in, answers σ(5)."""
    big = 2.0**1023
    arrangements = [
        [-big if i in negatives else big for i in range(4)]
        for negatives in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    ]
    params = Parameters.from_arrays(
        np.ones((1, 4)), np.array([[5.0]]), np.array([[1.0]]), np.array([[0.0]])
    )
    model = Model(params=params, activation="relu", classes=(0, 1), standardization=None)
    expected = 1 / (1 + np.exp(-5.0))
    for m in (6, 120):  # a small batch's buffers, and the large batch's path
        X = np.array(arrangements * (m // 6)).T  # (4, m)
        np.testing.assert_allclose(model.predict_proba(X)[0], expected, rtol=1e-15)


def test_extreme_rows_have_the_limits_of_the_ordinary_ones() -> None:
    """relu is positively homogeneous: ŷ(s·x) tends to σ(±inf) as s grows, and at
    ±1e308 the answer is that limit, 0 or 1, not NaN."""
    params = Parameters.from_arrays(
        np.array([[1.0], [-1.0]]),
        np.array([[0.5], [0.5]]),
        np.array([[2.0, -3.0]]),
        np.array([[0.1]]),
    )
    model = Model(params=params, activation="relu", classes=(0, 1), standardization=None)
    A2 = model.predict_proba(np.array([[1e308, -1e308, 1e300, -1e300, 0.0]]))
    assert A2.tolist() == [[1.0, 0.0, 1.0, 0.0, model.predict_proba(np.zeros((1, 1)))[0, 0]]]


def test_a_float32_models_bias_survives_the_scaled_pass() -> None:
    """x = 1e300 is past float32's range: the scaled pass (in float64) keeps b2,
    which 2^-k would have made 0 in float32 (ŷ 0.5 instead of σ(-5))."""
    params = Parameters.from_arrays(
        np.array([[-1.0]]), np.array([[0.0]]), np.array([[1.0]]), np.array([[-5.0]]),
        dtype=np.float32,
    )  # fmt: skip
    model = Model(params=params, activation="relu", classes=(0, 1), standardization=None)
    A2 = model.predict_proba(np.array([[1e300, 1e39, 1.0]]))
    assert A2.dtype == np.float32
    np.testing.assert_allclose(A2[0], 1 / (1 + np.exp(5.0)), rtol=1e-6)


@settings(max_examples=300, deadline=None)
@given(models_and_inputs(), st.one_of(finite, st.sampled_from([0.0, 2.0**1023, 1e38, 1e300])))
def test_the_once_worked_out_limit_is_the_columns_own_rule(
    case: tuple[Model, np.ndarray], x: float
) -> None:
    """max|x| past the model's limit exactly when a column of it would be scaled."""
    model, _ = case
    column = np.full((model.n_features, 1), abs(x))
    past = math.frexp(abs(x))[1] > model._limits()[1]
    assert past == bool(model._scale_exponents(column)[0] > 0)
