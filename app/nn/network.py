"""Forward pass, cost and backward pass: the seed's backprop map.

    Z1 = W1·X + b1          A1 = g(Z1)         g = relu or tanh
    Z2 = W2·A1 + b2         A2 = σ(Z2) = ŷ
    J  = (1/m)·Σ L(ŷ, y)  (+ (λ/2m)·(‖W1‖² + ‖W2‖²))

    dZ2 = A2 - Y                               (1, m)
    dW2 = (1/m)·dZ2·A1ᵀ                        (1, n_h)
    db2 = (1/m)·Σ dZ2           (axis=1)       (1, 1)
    dA1 = W2ᵀ·dZ2                              (n_h, m)
    dZ1 = dA1 * [Z1 > 0]  (relu)  or  dA1 * (1 - A1²)  (tanh)
    dW1 = (1/m)·dZ1·Xᵀ                         (n_h, n_x)
    db1 = (1/m)·Σ dZ1           (axis=1)       (n_h, 1)

`Workspace` does this in preallocated buffers for the training loop; the
functions `forward`, `compute_cost` and `backward` wrap it for callers that
want fresh arrays (tests, prediction). One implementation serves both.

Layout choices, all behind the textbook names:
- the batch arrives as Xa = [X; 1], shape (n_x + 1, m), so that
  [W1 | b1]·Xa is Z1 in one GEMM and dZ1·Xaᵀ is [dW1 | db1] in one GEMM
  (db1 = Σ dZ1 is the product with the row of ones). Xa is usually an
  F-ordered view (each sample's features contiguous), which BLAS reads
  directly.
- A1 lives in the first n_h rows of A1a = [A1; 1] for the same reason at the
  output layer: Z2 = [W2 | b2]·A1a and [dW2 | db2] = dZ2·A1aᵀ.
- the gradient is accumulated unscaled and multiplied by 1/m once at the
  end, which is the same (1/m) factor the map applies to each product.
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
    # softplus(z) = max(z, 0) + log1p(e^-|z|); NumPy's logaddexp is 4x slower
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


def activation_backward(
    dA: Array,
    Z: Array,
    A: Array,
    activation: Activation,
    out: Array | None = None,
) -> Array:
    """dZ = dA * g'(Z): dA * [Z > 0] for relu, dA * (1 - A²) for tanh.

    dA may be a row (1, m) that broadcasts over Z's rows.
    """
    if activation == "relu":
        # the mask's 0/1 bytes read as uint8: NumPy converts those ~8% faster than bool
        return np.multiply(np.greater(Z, 0).view(np.uint8), dA, out=out)
    if activation == "tanh":
        dZ = np.multiply(A, A, out=out)
        dZ *= dA
        return np.subtract(dA, dZ, out=dZ)  # dA - dA·A² = dA * (1 - A²)
    raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")


class Workspace:
    """Buffers for the forward and backward pass over batches of m columns.

    A1a = [A1; 1] : (n_h + 1, m)    A2, dZ2 : (1, m)

    Z1, A1 and S share A1a's first n_h rows, each overwriting the one before
    once it is no longer needed: the GEMM writes Z1 there, g is applied in
    place, and the backward pass writes S = g'(Z1)·dZ2 over A1 (for relu,
    [Z1 > 0] is read back from A1 itself: relu keeps exactly the positive
    entries). One (n_h, m) buffer instead of three (plus a mask) keeps a
    chunk's working set in cache: measured 0.79-0.97x the epoch time on
    configs c and d. `forward` and `backward` (the functions) keep every
    array of the map for callers that want them.
    """

    def __init__(
        self,
        n_x: int,
        n_h: int,
        m: int,
        dtype: np.dtype | type = np.float64,
        *,
        backward: bool = True,
    ) -> None:
        self.n_x, self.n_h, self.m = n_x, n_h, m
        self.A1a = np.empty((n_h + 1, m), dtype)  # [A1; 1]
        self.A1a[n_h] = 1
        self.A1 = self.A1a[:n_h]
        self.A2 = np.empty((1, m), dtype)
        self.dZ2 = np.empty((1, m if backward else 0), dtype)  # none for prediction
        self._backward = backward

    def forward(self, P: Parameters, Xa: Array, Z2: Array, activation: Activation) -> None:
        """Fill A1, A2 and the caller's Z2 (1, m) from Xa = [X; 1] (n_x+1, m)."""
        Z1 = np.matmul(P.W1b1, Xa, out=self.A1)  # Z1 = W1·X + b1, in A1's buffer
        activation_forward(Z1, activation, out=self.A1)  # A1 = g(Z1), in place
        np.matmul(P.W2b2, self.A1a, out=Z2)  # Z2 = W2·A1 + b2
        sigmoid(Z2, out=self.A2)

    def backward(
        self, P: Parameters, Xa: Array, Y: Array, activation: Activation, grads: Parameters
    ) -> None:
        """Write Σ-over-the-batch gradients (not yet scaled by 1/m) into `grads`.

        Requires `forward` on the same Xa first; overwrites A1.

        dA1 = W2ᵀ·dZ2 is an outer product, so dZ1 = dA1 * g'(Z1) factors as
        W2ᵀ ∘ S with S = g'(Z1) * dZ2, and dZ1·Xᵀ = diag(W2ᵀ)·(S·Xᵀ). Forming S
        and scaling the small (n_h, n_x+1) product by W2ᵀ gives the map's dW1
        and db1 without materialising dA1 and dZ1: two passes over (n_h, m)
        saved. `backward` (the function) builds dA1 and dZ1 explicitly, and
        the tests check the two agree.
        """
        from_G = dW2_from_G(self.n_h, self.m, activation)
        self.backward_sums(P, Xa, Y, activation, grads, dW2_from_G=from_G)
        finish_gradients(P, grads, dW2_from_G=from_G)

    def backward_sums(
        self,
        P: Parameters,
        Xa: Array,
        Y: Array,
        activation: Activation,
        sums: Parameters,
        *,
        dW2_from_G: bool,
    ) -> None:
        """The batch's sums that `finish_gradients` turns into its gradient.

        sums.W1b1 = G = S·[X; 1]ᵀ, sums.b2 = Σ dZ2, and sums.W2 = dZ2·A1ᵀ,
        or 0 when dW2 is to come from G. All are linear in the batch's
        columns, so the sums of a wide batch's chunks add up to the batch's
        and are finished once (a dW2_from_G decided for the whole batch).
        """
        if not self._backward:
            raise ValueError("this workspace was made with backward=False")
        dZ2 = np.subtract(self.A2, Y, out=self.dZ2)  # dZ2 = A2 - Y (σ with cross-entropy)
        if dW2_from_G:
            sums.W2[...] = 0
            sums.b2[0, 0] = dZ2.sum()  # db2·m = Σ dZ2
        else:  # while A1 is still there
            np.matmul(dZ2, self.A1a.T, out=sums.W2b2)  # [dW2 | db2]·m = dZ2·[A1; 1]ᵀ
        if activation == "relu":  # S = [Z1 > 0]·dZ2, over A1
            # A1 = max(Z1, 0) is positive exactly where Z1 is, so [Z1 > 0] =
            # [A1 > 0], written as 0/1 floats over A1 and scaled in place: no
            # mask buffer, and no uint8 x float product (measured 0.93-0.96x
            # the epoch time on config d against a bool mask kept from `forward`)
            S = np.greater(self.A1, 0, out=self.A1, casting="unsafe")
            S *= dZ2
        else:  # S = dZ2·(1 - A1²), over A1
            S = activation_backward(dZ2, self.A1, self.A1, activation, out=self.A1)
        np.matmul(S, Xa.T, out=sums.W1b1)  # G = S·[X; 1]ᵀ  (n_h, n_x+1)


def dW2_from_G(n_h: int, m: int, activation: Activation) -> bool:
    """Whether relu's dW2 comes from G (see `finish_gradients`) for m columns.

    It replaces a GEMV over (n_h, m) with a pass over the small G, which
    pays once the GEMV is large; below that, a call's overhead rules.
    """
    return activation == "relu" and n_h * m >= 1 << 16


def finish_gradients(P: Parameters, grads: Parameters, *, dW2_from_G: bool) -> None:
    """Turn `Workspace.backward_sums` (or their sum over chunks) into the gradient, ×m.

    [dW1 | db1]·m = dZ1·[X; 1]ᵀ = diag(W2ᵀ)·G, and with dW2_from_G:
    relu(z) = [z > 0]·z, so A1 = [Z1 > 0] ∘ ([W1 | b1]·Xa) and
    (dZ2·A1ᵀ)_j = Σ_i S_ji·Σ_k [W1 | b1]_jk·Xa_ki = Σ_k [W1 | b1]_jk·G_jk:
    dW2 from the small G instead of another pass over (n_h, m).
    """
    G = grads.W1b1
    if dW2_from_G:
        np.einsum("jk,jk->j", P.W1b1, G, out=grads.W2[0])  # dW2·m = dZ2·A1ᵀ
    G *= P.W2.T  # [dW1 | db1]·m = diag(W2ᵀ)·G


def augment(X: Array, dtype: np.dtype | type | None = None) -> Array:
    """[X; 1] (n_x+1, m) from X (n_x, m), F-ordered: each column contiguous."""
    n_x, m = X.shape
    Xa = np.empty((n_x + 1, m), dtype or X.dtype, order="F")
    Xa[:n_x] = X
    Xa[n_x] = 1
    return Xa


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
    m = X.shape[1]
    ws = Workspace(P.n_x, P.n_h, m, P.theta.dtype, backward=False)
    Z2 = np.empty((1, m), P.theta.dtype)
    Xa = augment(X, P.theta.dtype)
    Z1 = P.W1b1 @ Xa  # the workspace overwrites its Z1 with A1
    ws.forward(P, Xa, Z2, activation)
    return Cache(Z1=Z1, A1=ws.A1, Z2=Z2, A2=ws.A2)


def compute_cost(Z2: Array, Y: Array, P: Parameters | None = None, l2: float = 0.0) -> float:
    """J = (1/m)·Σ L + (λ/2m)·(‖W1‖² + ‖W2‖²), from the logits Z2 (1, m)."""
    if Z2.shape != Y.shape:
        raise ValueError(f"Z2 and Y must have the same shape, got {Z2.shape} and {Y.shape}")
    m = Z2.shape[-1]
    J = cross_entropy_sum(Z2, Y) / m
    if l2 and P is not None:
        J += (
            l2
            / (2 * m)
            * (
                float(np.sum(P.W1.astype(np.float64) ** 2))
                + float(np.sum(P.W2.astype(np.float64) ** 2))
            )
        )
    return float(J)


def backward(
    P: Parameters,
    X: Array,
    Y: Array,
    activation: Activation = "relu",
    l2: float = 0.0,
) -> Gradients:
    """Gradients of J with respect to every array of the map, for X (n_x, m), Y (1, m)."""
    _check_X(P, X)
    m = X.shape[1]
    if Y.shape != (1, m):
        raise ValueError(f"Y must have shape (1, {m}), got {Y.shape}")
    ws = Workspace(P.n_x, P.n_h, m, P.theta.dtype)
    Xa = augment(X, P.theta.dtype)
    ws.forward(P, Xa, np.empty((1, m), P.theta.dtype), activation)
    Z1, A1 = P.W1b1 @ Xa, ws.A1.copy()  # the workspace overwrites both
    g = Parameters.zeros(P.n_x, P.n_h, P.theta.dtype)
    ws.backward(P, Xa, Y.astype(P.theta.dtype), activation, g)
    if l2:
        g.theta += l2 * P.weight_mask() * P.theta  # dW += (λ/m)·W after the 1/m below
    g.theta *= 1.0 / m
    dA1 = P.W2.T @ ws.dZ2  # (n_h, m); the workspace never forms it (see Workspace.backward)
    dZ1 = activation_backward(dA1, Z1, A1, activation)
    return Gradients(
        dZ2=ws.dZ2,
        dW2=g.W2.copy(),
        db2=g.b2.copy(),
        dA1=dA1,
        dZ1=dZ1,
        dW1=g.W1.copy(),
        db1=g.b1.copy(),
    )
