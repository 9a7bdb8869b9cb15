"""The seed's map (network.py) and its fast form (workspace.py), held to each other."""

from __future__ import annotations

import numpy as np
import pytest

from app.nn import (
    BatchGradient,
    Parameters,
    activation_backward,
    activation_forward,
    backward,
    compute_cost,
    forward,
    initialize,
    sigmoid,
)
from app.nn.lanes import plan
from app.nn.workspace import augment, dW2_from_G
from tests.nn import reference


def random_problem(
    m: int = 7, n_x: int = 4, n_h: int = 3, seed: int = 0
) -> tuple[Parameters, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    P = initialize(n_x, n_h, init="he", rng=rng)
    P.b1[...] = rng.standard_normal((n_h, 1)) * 0.1  # non-zero biases exercise db
    P.b2[...] = 0.3
    X = rng.standard_normal((n_x, m))
    Y = (rng.random((1, m)) > 0.5).astype(np.float64)
    Y[0, :2] = [0, 1]
    return P, X, Y


def as_reference(P: Parameters, activation: str) -> reference.Net:
    a = P.arrays()
    return reference.Net(a["W1"], a["b1"], a["W2"], a["b2"], activation)


def test_seed_worked_example_relu_forward_and_backward() -> None:
    Z = np.array([[5.0, -7.0, 6.0], [2.0, 1.0, -4.0]])
    dA = np.array([[0.5, 0.05, 0.7], [0.1, -0.6, 0.8]])
    A = activation_forward(Z, "relu")
    dZ = activation_backward(dA, Z, A, "relu")
    np.testing.assert_array_equal(A, [[5, 0, 6], [2, 1, 0]])
    np.testing.assert_array_equal(dZ, [[0.5, 0, 0.7], [0.1, -0.6, 0]])


def test_shapes_of_every_array_in_the_backprop_map() -> None:
    m, n_x, n_h = 7, 4, 3
    P, X, Y = random_problem(m, n_x, n_h)
    assert (P.W1.shape, P.b1.shape, P.W2.shape, P.b2.shape) == ((3, 4), (3, 1), (1, 3), (1, 1))
    cache = forward(P, X)
    assert cache.Z1.shape == (n_h, m)
    assert cache.A1.shape == (n_h, m)
    assert cache.Z2.shape == (1, m)
    assert cache.A2.shape == (1, m)
    g = backward(P, X, Y)
    assert g.dZ2.shape == (1, m)
    assert g.dW2.shape == (1, n_h)
    assert g.db2.shape == (1, 1)
    assert g.dA1.shape == (n_h, m)
    assert g.dZ1.shape == (n_h, m)
    assert g.dW1.shape == (n_h, n_x)
    assert g.db1.shape == (n_h, 1)


# (m, n_x, n_h, chunk, lanes, pieces per lane): whole batches narrow and wide (relu's dW2 from G),
# chunked batches wide and narrow (then dZ2·A1ᵀ is summed over the chunks),
# and batches large enough for two lanes (app.nn.lanes), in one piece per lane
# or in several
SHAPES = {
    "whole": (23, 5, 6, None, 1, 1),
    "whole-wide": (2048, 5, 40, None, 1, 1),
    "chunked-wide": (2048, 5, 40, 512, 1, 4),
    "chunked": (1000, 5, 8, 256, 1, 4),
    "lanes": (1100, 63, 64, None, 2, 1),
    "lanes-chunked": (1500, 63, 64, 256, 2, 3),
}


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.7])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("gathered", [False, True])
def test_the_fast_form_gives_the_maps_gradient(
    activation: str, l2: float, shape: str, gathered: bool
) -> None:
    """BatchGradient (diag(W2ᵀ)·G, dW2 from G, chunk and lane sums, the batch's
    rows read in place or gathered through an index) equals backward() to 1e-12."""
    m, n_x, n_h, chunk, n_lanes, n_pieces = SHAPES[shape]
    P, X, Y = random_problem(m=m, n_x=n_x, n_h=n_h)
    fast = BatchGradient(n_x, n_h, np.dtype(np.float64), activation, l2, chunk=chunk)  # type: ignore[arg-type]
    lanes = plan(m, n_x, n_h, fast.chunk, 8)
    assert [len(lane) for lane in lanes] == [n_pieces] * n_lanes
    assert dW2_from_G(n_h, m, "relu") == (shape != "whole" and shape != "chunked")
    beats: list[int] = []
    Z2 = np.empty((1, m))
    XTa = augment(X).T  # rows [x_i, 1]
    if gathered:  # the batch's rows are picked from a larger, shuffled set
        rng = np.random.default_rng(1)
        order = rng.permutation(m + 9)
        rows = np.empty((m + 9, n_x + 1))
        rows[order[:m]] = XTa
        l2_term = fast(P, rows, Y, Z2, lambda: beats.append(1), order[:m])
    else:
        l2_term = fast(P, XTa, Y, Z2, lambda: beats.append(1))
    pieces = n_lanes * n_pieces  # one thread: a beat after every piece, if more than one
    assert len(beats) == (pieces if pieces > 1 else 0)

    g = backward(P, X, Y, activation, l2)  # type: ignore[arg-type]
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(
            getattr(fast.grads, name), getattr(g, "d" + name), rtol=1e-12, atol=1e-14
        )
    np.testing.assert_allclose(Z2, forward(P, X, activation).Z2, rtol=1e-12)  # type: ignore[arg-type]
    expected_l2 = l2 / 2 * (np.sum(P.W1**2) + np.sum(P.W2**2))
    assert l2_term == pytest.approx(expected_l2, rel=1e-12)


def test_backward_is_the_map_on_a_hand_worked_example() -> None:
    """One sample, one hidden unit, values worked out by hand."""
    P = Parameters.from_arrays(
        np.array([[2.0, -1.0]]), np.array([[0.5]]), np.array([[3.0]]), np.array([[-1.0]])
    )
    X = np.array([[1.0], [2.0]])  # Z1 = 2 - 2 + 0.5 = 0.5, A1 = 0.5, Z2 = 1.5 - 1 = 0.5
    Y = np.array([[1.0]])
    g = backward(P, X, Y, "relu", l2=0.0)
    A2 = 1 / (1 + np.exp(-0.5))
    np.testing.assert_allclose(g.dZ2, [[A2 - 1]])
    np.testing.assert_allclose(g.dW2, [[(A2 - 1) * 0.5]])
    np.testing.assert_allclose(g.db2, [[A2 - 1]])
    np.testing.assert_allclose(g.dA1, [[3 * (A2 - 1)]])
    np.testing.assert_allclose(g.dZ1, [[3 * (A2 - 1)]])  # Z1 > 0
    np.testing.assert_allclose(g.dW1, [[3 * (A2 - 1) * 1, 3 * (A2 - 1) * 2]])
    np.testing.assert_allclose(g.db1, [[3 * (A2 - 1)]])
    dead = backward(P, np.array([[-1.0], [1.0]]), Y, "relu")  # Z1 = -2.5: relu passes nothing
    assert not dead.dZ1.any()
    assert not dead.dW1.any()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_gradient_check_finite_differences(activation: str, l2: float) -> None:
    """Central differences on J(θ) agree with backprop to a relative error < 1e-7."""
    P, X, Y = random_problem(m=7, n_x=4, n_h=3, seed=3)
    g = backward(P, X, Y, activation, l2)  # type: ignore[arg-type]
    analytic = Parameters.zeros(P.n_x, P.n_h)
    analytic.W1[...], analytic.b1[...] = g.dW1, g.db1
    analytic.W2[...], analytic.b2[...] = g.dW2, g.db2

    def J(theta: np.ndarray) -> float:
        Q = Parameters(theta, P.n_x, P.n_h)
        return compute_cost(forward(Q, X, activation).Z2, Y, Q, l2)  # type: ignore[arg-type]

    eps = 1e-6
    numeric = np.empty_like(P.theta)
    for i in range(P.theta.size):
        plus, minus = P.theta.copy(), P.theta.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric[i] = (J(plus) - J(minus)) / (2 * eps)
    difference = np.linalg.norm(analytic.theta - numeric) / (
        np.linalg.norm(analytic.theta) + np.linalg.norm(numeric)
    )
    assert difference < 1e-7, difference


def test_cost_matches_the_textbook_formula() -> None:
    P, X, Y = random_problem(m=50, n_x=3, n_h=4, seed=5)
    cache = forward(P, X)
    ref = as_reference(P, "relu")
    assert compute_cost(cache.Z2, Y, P, 0.3) == pytest.approx(
        reference.cost(ref, X, Y, 0.3), rel=1e-13
    )
    np.testing.assert_allclose(cache.A2, 1 / (1 + np.exp(-cache.Z2)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cost_is_stable_at_extreme_logits(dtype: type) -> None:
    Z2: np.ndarray = np.array([[1e4, -1e4, 1e4, -1e4, 0.0, 709.0, -745.0]], dtype=dtype)
    Y: np.ndarray = np.array([[1, 0, 0, 1, 1, 1, 0]], dtype=dtype)
    J = compute_cost(Z2, Y)
    # the confident right answers cost ~0; the confident wrong ones cost |z|
    expected = (0 + 0 + 1e4 + 1e4 + np.log(2) + 0 + 0) / 7
    assert np.isfinite(J)
    assert pytest.approx(expected, rel=1e-6) == J
    A2 = sigmoid(Z2)
    assert np.all(np.isfinite(A2))
    assert np.all((A2 >= 0) & (A2 <= 1))
    np.testing.assert_array_equal(A2[0, :4], [1, 0, 1, 0])


def test_sigmoid_with_cross_entropy_has_gradient_a2_minus_y_at_extremes() -> None:
    rng = np.random.default_rng(1)
    P = initialize(2, 3, init="he", rng=rng)
    P.W2[...] = 1e3  # pushes Z2 far into saturation
    X = rng.standard_normal((2, 9)) * 10
    Y = (rng.random((1, 9)) > 0.5).astype(np.float64)
    g = backward(P, X, Y)
    cache = forward(P, X)
    np.testing.assert_array_equal(g.dZ2, cache.A2 - Y)
    assert all(np.all(np.isfinite(getattr(g, k))) for k in ("dW1", "db1", "dW2", "db2"))


def test_parameters_pack_and_unpack() -> None:
    W1 = np.arange(6.0).reshape(3, 2)
    b1 = np.array([[10.0], [11.0], [12.0]])
    W2 = np.array([[20.0, 21.0, 22.0]])
    b2 = np.array([[30.0]])
    P = Parameters.from_arrays(W1, b1, W2, b2)
    for name, value in {"W1": W1, "b1": b1, "W2": W2, "b2": b2}.items():
        np.testing.assert_array_equal(getattr(P, name), value)
    P.theta[...] = 0  # the views see θ
    assert not P.W1.any()
    assert not P.b2.any()
    np.testing.assert_array_equal(P.weight_mask().sum(), 6 + 3)


def test_bad_parameter_shapes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="b1 must have shape"):
        Parameters.from_arrays(
            np.zeros((3, 2)), np.zeros((2, 1)), np.zeros((1, 3)), np.zeros((1, 1))
        )
    with pytest.raises(ValueError, match="theta must be a vector"):
        Parameters(np.zeros(5), 2, 3)
    P, X, _ = random_problem()
    with pytest.raises(ValueError, match="X must have shape"):
        forward(P, X[:2])


@pytest.mark.parametrize("init", ["he", "xavier", "small"])
def test_initialisation_scales_and_zero_biases(init: str) -> None:
    P = initialize(400, 300, init=init, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    expected = {"he": np.sqrt(2 / 400), "xavier": np.sqrt(1 / 400), "small": 0.01}[init]
    assert P.W1.std() == pytest.approx(expected, rel=0.02)
    assert not P.b1.any()
    assert not P.b2.any()
    again = initialize(400, 300, init=init, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    np.testing.assert_array_equal(P.theta, again.theta)
