"""Time one training epoch of twolayer's engine against scikit-learn and PyTorch.

    python bench/engine.py [--configs abcd] [--dtypes float64,float32] [--rounds 5]

Each peer trains the same network (n_x → n_h relu → 1 sigmoid, cross-entropy,
plain SGD: scikit-learn's MLPClassifier with solver='sgd', momentum=0,
alpha=0; a PyTorch CPU model with torch.optim.SGD) with the same batch size
on the same data, in this one process. An epoch's time is the marginal cost
of an epoch: (t(E₂ epochs) - t(E₁ epochs)) / (E₂ - E₁), so set-up and
end-of-fit work (input checks, copies, final metrics) cancel out for every
peer alike.

GFLOP/s counts the epoch's matrix products, 4·m·n_h·(n_x+1) + 4·m·(n_h+1)
flops. It is compared with two GEMM rates:
- "GEMM": the epoch's two large products alone, [W1|b1]·[X;1] and
  dZ1·[X;1]ᵀ, each batch (the whole set for full batch) as one np.matmul —
  what the epoch would cost if it were nothing but its GEMMs;
- "chunked": the same products in the engine's chunks of columns
  (`chunk_width`), which is how the engine calls them on wide batches;
- "square": a 2048² np.matmul, the machine's peak.

The machines this runs on are shared and noisy (±30% between runs), so the
measurements are interleaved: each of --rounds rounds times every peer and
both GEMMs once, back to back, and every ratio is the median over rounds of
that round's ratio. Times are medians over rounds too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.nn import Hyperparameters, Trainer
from app.nn.workspace import chunk_width


@dataclass(frozen=True)
class Config:
    name: str
    m: int
    n_x: int
    n_h: int
    batch: int | None  # None: full batch
    epochs: tuple[int, int]  # E1, E2 for the marginal epoch time


CONFIGS = {
    "a": Config("a", 400, 2, 4, None, (200, 2200)),
    "b": Config("b", 100_000, 30, 32, 256, (1, 4)),
    "c": Config("c", 200_000, 100, 128, 1024, (1, 5)),
    "d": Config("d", 200_000, 100, 128, None, (1, 6)),
}
LEARNING_RATE = 0.01
TRAINING_THREADS = 2


def make_data(cfg: Config, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Rows (m, n_x) and labels (m,): a nonlinear boundary, both classes present."""
    rng = np.random.default_rng(42)
    X = rng.standard_normal((cfg.m, cfg.n_x))
    y = ((X[:, 0] * X[:, -1] + 0.5 * X[:, 0]) > 0).astype(np.int64)
    return X.astype(dtype), y


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def marginal_epoch(run: Callable[[int], None], cfg: Config) -> float:
    """One measurement of an epoch's marginal cost, in seconds.

    A first, untimed run(E₁) leaves the allocator as the timed runs find it:
    without it the first run pays the page faults of fresh memory that later
    runs get recycled, which biases the difference by up to half a second.
    """
    e1, e2 = cfg.epochs
    run(e1)
    t1 = timed(lambda: run(e1))
    t2 = timed(lambda: run(e2))
    return max(t2 - t1, 1e-12) / (e2 - e1)


def run_twolayer(
    cfg: Config, X: np.ndarray, y: np.ndarray, dtype: str, threads: int = TRAINING_THREADS
) -> Callable[[int], None]:
    """twolayer as its worker runs it: a large batch's two lanes on `threads`
    threads, BLAS on one thread (app/worker/threads.py); the peers keep theirs."""
    XT = X.T  # the engine's layout: (n_x, m)
    Y = y.reshape(1, -1)

    def run(epochs: int) -> None:
        hp = Hyperparameters(
            hidden_units=cfg.n_h,
            learning_rate=LEARNING_RATE,
            epochs=epochs,
            batch_size=cfg.batch,
            validation_fraction=0.0,
            standardize=False,
            dtype=dtype,  # type: ignore[arg-type]
            seed=0,
        )
        with threadpool_limits(1, user_api="blas"):
            Trainer(XT, Y, hp, threads=threads).run()

    return run


def run_sklearn(cfg: Config, X: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def run(epochs: int) -> None:
        clf = MLPClassifier(
            hidden_layer_sizes=(cfg.n_h,),
            activation="relu",
            solver="sgd",
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            batch_size=cfg.batch or cfg.m,
            learning_rate_init=LEARNING_RATE,
            max_iter=epochs,
            n_iter_no_change=10**9,
            tol=0.0,
            shuffle=True,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)

    return run


def run_torch(cfg: Config, X: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    import torch

    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(X.dtype)).reshape(-1, 1)
    batch = cfg.batch or cfg.m

    def run(epochs: int) -> None:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(cfg.n_x, cfg.n_h), torch.nn.ReLU(), torch.nn.Linear(cfg.n_h, 1)
        ).to(Xt.dtype)
        opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="mean")
        for _ in range(epochs):
            if batch < cfg.m:  # one permutation per epoch, contiguous batches
                perm = torch.randperm(cfg.m)
                Xe, ye = Xt.index_select(0, perm), yt.index_select(0, perm)
            else:
                Xe, ye = Xt, yt
            total = torch.zeros((), dtype=Xt.dtype)
            for start in range(0, cfg.m, batch):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(Xe[start : start + batch]), ye[start : start + batch])
                loss.backward()
                opt.step()
                total += loss.detach() * min(batch, cfg.m - start)
            float(total)  # the epoch's cost, as the other two record it

    return run


def square_product(dtype: np.dtype, n: int = 2048) -> Callable[[], float]:
    """A probe that times one n² np.matmul and returns its GFLOP/s."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype)
    np.matmul(A, B, out=C)  # warm up

    def product() -> None:
        np.matmul(A, B, out=C)

    return lambda: 2 * n**3 / timed(product) / 1e9


def epoch_products(cfg: Config, dtype: np.dtype, width: int | None = None) -> Callable[[], float]:
    """A probe that times the epoch's two large products alone, as plain np.matmul
    calls, and returns their GFLOP/s: each batch as one product, or, with
    `width`, in products of at most `width` columns (as the engine chunks them)."""
    rng = np.random.default_rng(0)
    B = cfg.batch or cfg.m
    W = min(width or B, B)
    XTa = rng.standard_normal((cfg.m, cfg.n_x + 1)).astype(dtype)
    Wa = rng.standard_normal((cfg.n_h, cfg.n_x + 1)).astype(dtype)
    Z = np.empty((cfg.n_h, W), dtype)
    S = rng.standard_normal((cfg.n_h, W)).astype(dtype)
    G = np.empty((cfg.n_h, cfg.n_x + 1), dtype)

    def epoch() -> None:
        for start in range(0, cfg.m, W):
            b = min(W, cfg.m - start)
            Xa = XTa[start : start + b].T
            np.matmul(Wa, Xa, out=Z[:, :b] if b == W else np.empty((cfg.n_h, b), dtype))
            np.matmul(S[:, :b], Xa.T, out=G)

    epoch()  # warm up
    return lambda: 4.0 * cfg.m * cfg.n_h * (cfg.n_x + 1) / timed(epoch) / 1e9


def epoch_flops(cfg: Config) -> float:
    return 4.0 * cfg.m * cfg.n_h * (cfg.n_x + 1) + 4.0 * cfg.m * (cfg.n_h + 1)


def describe_machine() -> str:
    lines = [f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        import sklearn

        lines.append(f"scikit-learn {sklearn.__version__}")
    except ImportError:
        pass
    try:
        import torch

        lines.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                lines.append(
                    f"{info['internal_api']} {info.get('version')} "
                    f"{info.get('architecture')} ({info['num_threads']} threads)"
                )
    except ImportError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines.append(f"{cpu}, {os.cpu_count()} cpus")
    return "; ".join(lines)


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        default="abcd",
        help="config letters, run together or separated by commas: abcd, c,d",
    )
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peers", default="sklearn,torch")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    configs = [k for k in args.configs if k not in ", "]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {''.join(CONFIGS)}")

    print(describe_machine())
    print(f"medians over {args.rounds} interleaved rounds")
    dtypes = [np.dtype(d) for d in args.dtypes.split(",")]
    header = (
        "| config | dtype | twolayer ms/epoch | sklearn ms/epoch | torch ms/epoch "
        "| × sklearn | × torch | GFLOP/s | GEMM GFLOP/s | % of GEMM | % of chunked | % of square |"
    )
    print()
    print(header)
    print("|" + "---|" * 12)
    nan = float("nan")
    for key in configs:
        cfg = CONFIGS[key]
        for dt in dtypes:
            X, y = make_data(cfg, dt)
            runners: dict[str, Callable[[int], None]] = {
                "twolayer": run_twolayer(cfg, X, y, dt.name)
            }
            if "sklearn" in peers:
                runners["sklearn"] = run_sklearn(cfg, X, y)
            if "torch" in peers:
                runners["torch"] = run_torch(cfg, X, y)
            products, square = epoch_products(cfg, dt), square_product(dt)
            chunked = epoch_products(cfg, dt, chunk_width(cfg.n_h, dt))
            t: dict[str, list[float]] = {name: [] for name in runners}
            ratio: dict[str, list[float]] = {
                "sklearn": [],
                "torch": [],
                "gemm": [],
                "chunked": [],
                "sq": [],
            }
            rates: dict[str, list[float]] = {"ours": [], "gemm": []}
            for _ in range(args.rounds):
                round_t = {name: marginal_epoch(run, cfg) for name, run in runners.items()}
                gemm, chunks, sq = products(), chunked(), square()
                ours = epoch_flops(cfg) / round_t["twolayer"] / 1e9
                for name, value in round_t.items():
                    t[name].append(value)
                    if name != "twolayer":
                        ratio[name].append(value / round_t["twolayer"])
                rates["ours"].append(ours)
                rates["gemm"].append(gemm)
                ratio["gemm"].append(ours / gemm)
                ratio["chunked"].append(ours / chunks)
                ratio["sq"].append(ours / sq)
            batch = "full" if cfg.batch is None else cfg.batch
            ms = {name: 1e3 * median(t.get(name, [])) for name in ("twolayer", "sklearn", "torch")}
            print(
                f"| {key} {cfg.m}×{cfg.n_x} n_h {cfg.n_h} batch {batch} | {dt.name} "
                f"| {ms['twolayer']:.3f} | {ms['sklearn']:.3f} | {ms['torch']:.3f} "
                f"| {median(ratio['sklearn']) if ratio['sklearn'] else nan:.2f} "
                f"| {median(ratio['torch']) if ratio['torch'] else nan:.2f} "
                f"| {median(rates['ours']):.1f} | {median(rates['gemm']):.1f} "
                f"| {100 * median(ratio['gemm']):.0f}% | {100 * median(ratio['chunked']):.0f}% "
                f"| {100 * median(ratio['sq']):.0f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
