"""The fast form of the map in `network.py`: the same forward and backward pass
in preallocated buffers, for the training loop and prediction.

The tests hold it to `network.forward` and `network.backward` (1e-12 in
float64). Where it departs from the textbook lines, and why:

Augmented matrices. A batch arrives as Xa = [X; 1], shape (n_x + 1, m), and
θ holds [W1 | b1] and [W2 | b2] (see `params.py`), so Z1 = [W1 | b1]·Xa is one
GEMM and so is the gradient's [dW1 | db1] (db1 = Σ dZ1 is the product with
the row of ones). A1 lives in the first n_h rows of A1a = [A1; 1] for the same
reason at the output layer. Xa is usually an F-ordered view of rows
[x_i, 1] (each sample's features contiguous), which BLAS reads directly.

One (n_h, m) buffer. Z1, A1 and S (below) share A1a's first n_h rows, each
overwriting the one before once it is no longer needed: the GEMM writes Z1
there, g is applied in place, and the backward pass writes S over A1. For
relu, [Z1 > 0] is read back from A1 itself (relu keeps exactly the positive
entries), so no mask is kept either.

dA1 and dZ1 are never formed. dA1 = W2ᵀ·dZ2 is an outer product, so
dZ1 = dA1 * g'(Z1) factors as W2ᵀ ∘ S with S = g'(Z1) * dZ2 (a row of dZ2
broadcast over n_h rows), and

    [dW1 | db1]·m = dZ1·Xaᵀ = diag(W2ᵀ)·G,     G = S·Xaᵀ : (n_h, n_x + 1),

which scales the small G instead of making two more passes over (n_h, m).

relu's dW2 from G. relu(z) = [z > 0]·z, so A1 = [Z1 > 0] ∘ ([W1 | b1]·Xa) and

    (dW2·m)_j = (dZ2·A1ᵀ)_j = Σ_i S_ji·Σ_k [W1 | b1]_jk·Xa_ki = Σ_k [W1 | b1]_jk·G_jk,

a pass over the small G instead of a GEMV over (n_h, m); it pays once that
GEMV is large (`dW2_from_G`).

Chunks. A batch wider than `chunk_width` columns (a full batch on large
data) is processed in chunks whose buffers stay in cache. G, Σ dZ2 and
dZ2·A1ᵀ are sums over columns, so the chunks' sums add up to the batch's and
are finished (diag(W2ᵀ)·G, dW2 from G) once. The 1/m of the map is applied
once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.nn.lanes import LANES, Lanes, Ranges, pieces, plan
from app.nn.network import activation_forward, sigmoid
from app.nn.params import Activation, Array, Index, Parameters


def chunk_width(n_h: int, dtype: np.dtype | type) -> int:
    """Columns per chunk when a pass is split to keep (n_h, m) buffers in cache.

    A function of n_h and dtype only, so a run computes identically
    (bit for bit) on every machine and after every resume.
    """
    itemsize = np.dtype(dtype).itemsize
    # ~1 MiB per (n_h, width) buffer: fastest for n_h 128 (1024 columns in
    # float64, 2048 in float32); narrower chunks cost GEMM efficiency.
    width = (1024 * 1024) // (max(n_h, 1) * itemsize)
    return int(min(max(width, 256), 8192))


def augment(X: Array, dtype: np.dtype | type | None = None) -> Array:
    """Xa = [X; 1] (n_x+1, m) from X (n_x, m), F-ordered: each column contiguous."""
    n_x, m = X.shape
    Xa = np.empty((n_x + 1, m), dtype or X.dtype, order="F")
    Xa[:n_x] = X
    Xa[n_x] = 1
    return Xa


class Workspace:
    """Buffers for the forward and backward pass over batches of m columns.

    A1a = [A1; 1] : (n_h + 1, m)    A2, dZ2 : (1, m)
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

    @property
    def nbytes(self) -> int:
        """The memory of its buffers."""
        return int(self.A1a.nbytes + self.A2.nbytes + self.dZ2.nbytes)

    def forward(self, P: Parameters, Xa: Array, Z2: Array, activation: Activation) -> None:
        """Fill A1, A2 and the caller's Z2 (1, m) from Xa = [X; 1] (n_x+1, m)."""
        Z1 = np.matmul(P.W1b1, Xa, out=self.A1)  # Z1 = W1·X + b1, in A1's buffer
        activation_forward(Z1, activation, out=self.A1)  # A1 = g(Z1), in place
        np.matmul(P.W2b2, self.A1a, out=Z2)  # Z2 = W2·A1 + b2
        sigmoid(Z2, out=self.A2)

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
        or 0 when dW2 is to come from G. Requires `forward` on the same Xa
        first; overwrites A1 with S.
        """
        if not self._backward:
            raise ValueError("this workspace was made with backward=False")
        dZ2 = np.subtract(self.A2, Y, out=self.dZ2)  # dZ2 = A2 - Y (σ with cross-entropy)
        if dW2_from_G:
            sums.W2[...] = 0
            sums.b2[0, 0] = dZ2.sum()  # db2·m = Σ dZ2
        else:  # while A1 is still there
            np.matmul(dZ2, self.A1a.T, out=sums.W2b2)  # [dW2 | db2]·m = dZ2·[A1; 1]ᵀ
        if activation == "relu":  # S = [Z1 > 0]·dZ2 = [A1 > 0]·dZ2, as 0/1 floats over A1
            S = np.greater(self.A1, 0, out=self.A1, casting="unsafe")
            S *= dZ2
        else:  # S = dZ2·(1 - A1²) = dZ2 - dZ2·A1², over A1
            S = np.multiply(self.A1, self.A1, out=self.A1)
            S *= dZ2
            np.subtract(dZ2, S, out=S)
        np.matmul(S, Xa.T, out=sums.W1b1)  # G = S·[X; 1]ᵀ  (n_h, n_x+1)


def dW2_from_G(n_h: int, m: int, activation: Activation) -> bool:
    """Whether relu's dW2 comes from G for a batch of m columns (module docstring)."""
    return activation == "relu" and n_h * m >= 1 << 16


def finish_gradients(P: Parameters, grads: Parameters, *, dW2_from_G: bool) -> None:
    """Turn `Workspace.backward_sums` (or their sum over chunks) into the gradient, ×m."""
    G = grads.W1b1
    if dW2_from_G:
        np.einsum("jk,jk->j", P.W1b1, G, out=grads.W2[0])  # dW2·m = Σ_k [W1 | b1] ∘ G
    G *= P.W2.T  # [dW1 | db1]·m = diag(W2ᵀ)·G


class BatchGradient:
    """dθ of one batch, the gradient `network.backward` gives, computed in reused buffers.

    `grads` receives dθ = (dW1, db1, dW2, db2), L2 included. A batch is
    gathered and computed in pieces of at most `chunk` columns, and a large
    one in two lanes that `lanes` may run on two threads (`app.nn.lanes`);
    the pieces' sums add up to the batch's (module docstring).
    """

    def __init__(
        self,
        n_x: int,
        n_h: int,
        dtype: np.dtype,
        activation: Activation,
        l2: float,
        *,
        chunk: int | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        self.n_x, self.n_h, self.dtype = n_x, n_h, dtype
        self.activation = activation
        self.l2 = l2
        self.chunk = chunk_width(n_h, dtype) if chunk is None else chunk
        self.lanes = Lanes() if lanes is None else lanes
        self.grads = Parameters.zeros(n_x, n_h, dtype)
        # per lane: its sums, a piece's sums, its workspaces and gathered rows
        self._sums = [Parameters.zeros(n_x, n_h, dtype) for _ in range(LANES)]
        self._piece = [Parameters.zeros(n_x, n_h, dtype) for _ in range(LANES)]
        self._workspaces: list[dict[int, Workspace]] = [{} for _ in range(LANES)]
        self._rows = [np.empty((0, n_x + 1), dtype) for _ in range(LANES)]
        # by batch width: its lanes' pieces, whether dW2 comes from G, one piece
        self._plans: dict[int, tuple[tuple[Ranges, ...], bool, bool]] = {}
        size = self.grads.theta.size
        self._l2_W = np.zeros(size, dtype)  # λ·W, 0 on biases
        self._l2_mask = self.grads.weight_mask() * dtype.type(l2)

    def __call__(
        self,
        P: Parameters,
        XTa: Array,
        Y: Array,
        Z2: Array,
        between_chunks: Callable[[], None] | None = None,
        index: Index | None = None,
    ) -> float:
        """Fill `grads` for the batch: the rows [x_i, 1] of XTa (n, n_x+1) picked by
        `index` (b,), or all n of them; Y (1, b); Z2 (1, b) receives the logits.
        Returns (λ/2)·(‖W1‖² + ‖W2‖²), the batch's L2 share of the cost (×b).
        `between_chunks` (the heartbeat) is called after each piece computed on
        the caller's thread, when the batch has more than one; if it raises, lane
        1 stops at its next piece and the batch is abandoned."""
        g, act = self.grads, self.activation
        b = XTa.shape[0] if index is None else index.shape[0]
        known = self._plans.get(b)
        if known is None:
            lanes = plan(b, self.n_x, self.n_h, self.chunk, self.dtype.itemsize)
            from_G = dW2_from_G(self.n_h, b, act)  # decided for the whole batch
            known = self._plans[b] = (lanes, from_G, len(lanes) == 1 and len(lanes[0]) == 1)
        lanes, from_G, one_piece = known
        if one_piece:  # most batches
            Xa = (XTa if index is None else self._gather(0, XTa, index)).T
            ws = self.workspace(b)
            ws.forward(P, Xa, Z2, act)
            ws.backward_sums(P, Xa, Y, act, g, dW2_from_G=from_G)
            return self._finish(P, b, from_G)

        beat = between_chunks if sum(map(len, lanes)) > 1 else None
        abandoned = False  # lane 0 raised (a stop from the heartbeat): lane 1 ends early

        def lane(k: int, sums: Parameters, beat: Callable[[], None] | None) -> None:
            for i, (start, stop) in enumerate(lanes[k]):
                if abandoned:
                    return
                rows = XTa[start:stop] if index is None else self._gather(k, XTa, index[start:stop])
                Xa = rows.T  # [X; 1] of the piece, (n_x+1, w), F-ordered: no copy
                ws = self.workspace(stop - start, k)
                ws.forward(P, Xa, Z2[:, start:stop], act)
                piece = sums if i == 0 else self._piece[k]
                ws.backward_sums(P, Xa, Y[:, start:stop], act, piece, dW2_from_G=from_G)
                if i:
                    sums.theta += piece.theta
                if beat is not None:
                    beat()

        def lane0(sums: Parameters) -> None:
            nonlocal abandoned
            try:
                lane(0, sums, beat)
            except BaseException:
                abandoned = True
                raise

        if len(lanes) == 1:
            lane0(g)
        else:
            s0, s1 = self._sums
            # the heartbeat runs on the caller's thread only: after each of lane
            # 1's pieces too when it is the caller's (one thread)
            beat1 = beat if self.lanes.threads == 1 else None
            self.lanes.run(lambda: lane0(s0), lambda: lane(1, s1, beat1))
            np.add(s0.theta, s1.theta, out=g.theta)
        return self._finish(P, b, from_G)

    def _finish(self, P: Parameters, b: int, from_G: bool) -> float:
        """The batch's sums in `grads` made its gradient; returns its L2 term."""
        g = self.grads
        finish_gradients(P, g, dW2_from_G=from_G)
        l2_term = 0.0
        if self.l2:
            l2_term = self.l2_term(P)
            g.theta += self._l2_W  # λ·W: dW gains (λ/m)·W once scaled below
        g.theta *= 1.0 / b  # the map's (1/m)
        return l2_term

    def l2_term(self, P: Parameters) -> float:
        """(λ/2)·(‖W1‖² + ‖W2‖²) of P."""
        lam_W = np.multiply(P.theta, self._l2_mask, out=self._l2_W)
        return 0.5 * float(np.dot(lam_W, P.theta))

    def workspace(self, width: int, lane: int = 0) -> Workspace:
        spaces = self._workspaces[lane]
        ws = spaces.get(width)
        if ws is None:
            ws = spaces[width] = Workspace(self.n_x, self.n_h, width, self.dtype)
        return ws

    def _gather(self, lane: int, XTa: Array, index: Index) -> Array:
        """XTa's rows that `index` picks, in the lane's reused, cache-sized buffer."""
        width = index.shape[0]
        if self._rows[lane].shape[0] < width:
            self._rows[lane] = np.empty((width, self.n_x + 1), self.dtype)
        return np.take(XTa, index, axis=0, out=self._rows[lane][:width], mode="clip")


def logits(
    P: Parameters,
    Xa: Array,
    activation: Activation,
    A2: Array | None = None,
    lanes: Lanes | None = None,
) -> Array:
    """Z2 (1, m) for Xa = [X; 1] (n_x+1, m), in cache-sized chunks of columns;
    also fills A2 = σ(Z2) (1, m) when given. With `lanes`, the chunks are
    dealt to its two lanes (each column's Z2 is the same either way)."""
    m = Xa.shape[1]
    Z2 = np.empty((1, m), P.theta.dtype)
    ranges = pieces(m, chunk_width(P.n_h, P.theta.dtype))

    def lane(k: int) -> None:
        workspaces: dict[int, Workspace] = {}
        for start, stop in ranges[k::LANES]:
            ws = workspaces.get(stop - start)
            if ws is None:
                ws = workspaces[stop - start] = Workspace(
                    P.n_x, P.n_h, stop - start, P.theta.dtype, backward=False
                )
            ws.forward(P, Xa[:, start:stop], Z2[:, start:stop], activation)
            if A2 is not None:
                A2[:, start:stop] = ws.A2

    if lanes is None or len(ranges) == 1:
        for k in range(LANES):
            lane(k)
    else:
        lanes.run(lambda: lane(0), lambda: lane(1))
    return Z2
