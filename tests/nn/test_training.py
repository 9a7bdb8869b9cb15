"""The training loop: semantics, determinism, resume, early stopping, divergence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.nn import Hyperparameters, Progress, Trainer, fit, make_samples
from tests.nn import reference

ROOT = Path(__file__).resolve().parents[2]


def hp(**kw: Any) -> Hyperparameters:
    base: dict[str, Any] = {"hidden_units": 6, "epochs": 12, "learning_rate": 0.2, "seed": 3}
    base.update(kw)
    return Hyperparameters(**base)


def data(m: int = 97, n_x: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    Y = ((X[0] * X[1] + 0.3 * X[-1]) > 0).astype(np.float64).reshape(1, -1)
    return X, Y


# ------------------------------------------------------------ semantics


@pytest.mark.parametrize("batch_size", [None, 16, 97, 200])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_loop_matches_the_textbook_mini_batch_loop(batch_size: int | None, optimizer: str) -> None:
    """Weights and per-epoch costs equal a plain loop over the seed's map (docs/design.md)."""
    X, Y = data()
    l2 = 0.3 if optimizer == "momentum" else 0.0
    lr = 0.01 if optimizer == "adam" else 0.2
    result = Trainer(
        X,
        Y,
        hp(
            batch_size=batch_size,
            optimizer=optimizer,
            l2=l2,
            learning_rate=lr,
            validation_fraction=0.0,
            standardize=False,
        ),
    ).run()
    net, costs = reference.train(
        X, Y, n_h=6, epochs=12, batch_size=batch_size, lr=lr, seed=3, optimizer=optimizer, l2=l2
    )
    W = result.model.params
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(getattr(W, name), getattr(net, name), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.history.columns()["train_cost"], costs, rtol=1e-10)


def test_full_batch_records_the_cost_before_each_update() -> None:
    X, Y = data()
    trainer = Trainer(X, Y, hp(batch_size=None, validation_fraction=0.0, standardize=False))
    seen: list[float] = []

    def before(p: Progress) -> None:
        seen.append(p.trainer.params.theta.copy())  # type: ignore[arg-type]

    first = trainer.params.theta.copy()
    result = trainer.run(before)
    from app.nn import Parameters, compute_cost, forward

    P0 = Parameters(first, 3, 6)
    J0 = compute_cost(forward(P0, X).Z2, Y)
    assert result.history.train_cost[0] == pytest.approx(J0, rel=1e-12)
    P1 = Parameters(np.asarray(seen[0]), 3, 6)
    assert result.history.train_cost[1] == pytest.approx(
        compute_cost(forward(P1, X).Z2, Y), rel=1e-12
    )


def test_shuffle_off_visits_columns_in_order() -> None:
    X, Y = data()
    params = hp(batch_size=10, shuffle=False, validation_fraction=0, standardize=False)
    result = Trainer(X, Y, params).run()
    net, costs = reference.train(
        X, Y, n_h=6, epochs=12, batch_size=10, lr=0.2, seed=3, shuffle=False
    )
    np.testing.assert_allclose(result.model.params.W1, net.W1, rtol=1e-10)
    np.testing.assert_allclose(result.history.columns()["train_cost"], costs, rtol=1e-10)
    shuffled = Trainer(X, Y, hp(batch_size=10, validation_fraction=0, standardize=False)).run()
    assert not np.array_equal(shuffled.model.params.theta, result.model.params.theta)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_wide_batches_are_chunked_without_changing_the_gradient(activation: str) -> None:
    """A full batch wider than the cache chunk adds up its chunks' sums and
    finishes them once (relu: dW2 from G; tanh: dZ2·A1ᵀ per chunk): same result."""
    X, Y = data(m=9000, n_x=4)
    settings = hp(
        batch_size=None,
        epochs=3,
        validation_fraction=0,
        standardize=False,
        hidden_units=256,
        hidden_activation=activation,
    )
    result = Trainer(X, Y, settings).run()
    net, costs = reference.train(
        X, Y, n_h=256, epochs=3, batch_size=None, lr=0.2, seed=3, activation=activation
    )
    np.testing.assert_allclose(result.model.params.W1, net.W1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.model.params.W2, net.W2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.model.params.b1, net.b1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.history.train_cost[:3], costs, rtol=1e-10)


def test_standardization_is_fit_on_the_training_split_only() -> None:
    X, Y = data(m=200)
    X = X * [[1.0], [10.0], [0.0]] + [[5.0], [-3.0], [7.0]]  # third feature constant
    trainer = Trainer(X, Y, hp(validation_fraction=0.25))
    s = trainer.standardization
    assert s is not None
    val_mask = np.ones(200, bool)
    model = trainer.run().model
    assert model.standardization is s
    # the training split is the complement of the stratified validation indices
    from app.nn import stratified_split

    train_idx, val_idx = stratified_split(Y, 0.25, np.random.default_rng(3))
    val_mask[val_idx] = False
    np.testing.assert_allclose(s.mean.ravel(), X[:, train_idx].mean(axis=1))
    assert s.scale[2, 0] == 1.0  # a constant column is not divided by zero
    assert np.all(np.isfinite(model.predict_proba(X)))


# -------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_seed_and_data_give_identical_weights(dtype: str) -> None:
    X, Y = data()
    a = Trainer(X, Y, hp(dtype=dtype, optimizer="adam", learning_rate=0.01)).run()
    b = Trainer(X, Y, hp(dtype=dtype, optimizer="adam", learning_rate=0.01)).run()
    assert a.model.params.theta.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a.model.params.theta, b.model.params.theta)
    np.testing.assert_array_equal(a.history.train_cost, b.history.train_cost)
    c = Trainer(X, Y, hp(dtype=dtype, optimizer="adam", learning_rate=0.01, seed=4)).run()
    assert not np.array_equal(a.model.params.theta, c.model.params.theta)


def test_a_missing_seed_is_drawn_and_reported() -> None:
    X, Y = data()
    r1 = Trainer(X, Y, hp(seed=None, epochs=2)).run()
    seed = r1.hyperparameters.seed
    assert isinstance(seed, int)
    r2 = Trainer(X, Y, hp(seed=seed, epochs=2)).run()
    np.testing.assert_array_equal(r1.model.params.theta, r2.model.params.theta)
    assert r1.hyperparameters.init == "he"


RESUME_CASES: dict[str, dict[str, Any]] = {
    "sgd-minibatch": {"batch_size": 16},
    "adam": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 8},
    "momentum-l2-float32": {"optimizer": "momentum", "l2": 0.1, "dtype": "float32"},
    "full-batch-tanh": {"batch_size": None, "hidden_activation": "tanh"},
    "early-stopping-midway": {  # stops at epoch 10; epoch 8 is one epoch into its patience
        "early_stopping": True,
        "patience": 3,
        "min_delta": 0.0,
        "learning_rate": 2.0,
        "epochs": 60,
        "optimizer": "adam",
    },
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_in_a_fresh_process_is_bit_for_bit(case: str, tmp_path: Path) -> None:
    X, Y = data(m=150)
    params = hp(**{"epochs": 20, **RESUME_CASES[case]})
    full = Trainer(X, Y, params).run()

    stop_at = 8 if case == "early-stopping-midway" else 5
    checkpoint: list[bytes] = []
    wait_at_stop: list[int] = []

    def stop(p: Progress) -> bool:
        if p.record is not None and p.epoch == stop_at:
            checkpoint.append(p.trainer.checkpoint())
            wait_at_stop.append(p.trainer.wait)
            return True
        return False

    first = Trainer(X, Y, params).run(stop)
    assert first.stop_reason == "stopped"
    assert first.epochs_completed == stop_at
    if case == "early-stopping-midway":
        assert full.stop_reason == "early_stopping"
        assert full.epochs_completed > stop_at
        assert wait_at_stop[0] == 1  # mid-way through its patience

    (tmp_path / "checkpoint.npz").write_bytes(checkpoint[0])
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    subprocess.run(
        [sys.executable, "-m", "tests.nn.resume_child", str(tmp_path)], check=True, cwd=ROOT
    )
    with np.load(tmp_path / "result.npz", allow_pickle=False) as resumed:
        np.testing.assert_array_equal(resumed["theta"], full.model.params.theta)
        assert int(resumed["epochs_completed"]) == full.epochs_completed
        assert str(resumed["stop_reason"]) == full.stop_reason
        for key, column in full.history.columns().items():
            np.testing.assert_array_equal(resumed[f"history.{key}"], column)


def test_resume_after_the_stopping_epoch_finishes_without_training() -> None:
    """A checkpoint taken at the epoch early stopping fires resumes to the same end."""
    X, Y = data(m=150)
    params = hp(
        early_stopping=True,
        patience=2,
        min_delta=0.0,
        learning_rate=3.0,
        epochs=80,
        optimizer="adam",
    )
    full = Trainer(X, Y, params).run()
    assert full.stop_reason == "early_stopping"
    last: list[bytes] = []
    Trainer(X, Y, params).run(lambda p: last.append(p.trainer.checkpoint()) if p.record else None)
    resumed = Trainer.from_checkpoint(last[-1], X, Y).run()
    assert resumed.stop_reason == "early_stopping"
    np.testing.assert_array_equal(resumed.model.params.theta, full.model.params.theta)


def test_a_checkpoint_without_its_history_keeps_one_size_and_resumes_with_it_given() -> None:
    """history=False: the same size at every epoch (the service keeps the
    history elsewhere); resumed with the history of its epochs, the run and its
    warnings are those of one that never stopped; without it, or with the wrong
    epochs, it is refused."""
    X, Y = data(m=150)
    params = hp(epochs=40, validation_fraction=0.2, learning_rate=0.5)
    full = Trainer(X, Y, params).run()
    sizes: list[int] = []
    at: dict[int, tuple[bytes, dict[str, np.ndarray]]] = {}

    def keep(p: Any) -> None:
        if p.record is not None:
            sizes.append(len(p.trainer.checkpoint(history=False)))
            if p.epoch == 25:
                at[25] = (p.trainer.checkpoint(history=False), p.trainer.history.columns())

    Trainer(X, Y, params).run(keep)
    assert len(sizes) == 40
    assert max(sizes) - min(sizes) <= 128  # the metadata's digits
    data_, history = at[25]
    resumed = Trainer.from_checkpoint(data_, X, Y, history=history).run()
    np.testing.assert_array_equal(resumed.model.params.theta, full.model.params.theta)
    for key, column in full.history.columns().items():
        np.testing.assert_array_equal(resumed.history.columns()[key], column)
    assert resumed.warnings == full.warnings
    with pytest.raises(ValueError, match="holds no history"):
        Trainer.from_checkpoint(data_, X, Y)
    short = {k: v[:-1] for k, v in history.items()}
    with pytest.raises(ValueError, match="not of epochs 1 to 25"):
        Trainer.from_checkpoint(data_, X, Y, history=short)


def test_checkpoint_refuses_other_data() -> None:
    X, Y = data(m=150)
    trainer = Trainer(X, Y, hp(epochs=1))
    trainer.run()
    with pytest.raises(ValueError, match="checkpoint is for 3 features and 150 samples"):
        Trainer.from_checkpoint(trainer.checkpoint(), X[:, :100], Y[:, :100])
    with pytest.raises(ValueError, match=r"not a valid \.npz"):
        Trainer.from_checkpoint(b"garbage", X, Y)


# ------------------------------------------------------ early stopping


def test_early_stopping_restores_the_best_epochs_weights() -> None:
    X, Y = data(m=120, seed=4)
    params = hp(
        early_stopping=True,
        patience=4,
        min_delta=0.0,
        epochs=300,
        learning_rate=1.0,
        hidden_units=32,
        optimizer="adam",
        validation_fraction=0.3,
    )
    snapshots: dict[int, np.ndarray] = {}

    def keep(p: Progress) -> None:
        if p.record is not None:
            snapshots[p.epoch] = p.trainer.params.theta.copy()

    result = Trainer(X, Y, params).run(keep)
    assert result.stop_reason == "early_stopping"
    assert result.best_epoch is not None
    assert result.epochs_completed == result.best_epoch + 4
    np.testing.assert_array_equal(result.model.params.theta, snapshots[result.best_epoch])
    val = result.history.columns()["validation_cost"]
    assert val[result.best_epoch - 1] == val.min()


def test_early_stopping_needs_validation() -> None:
    with pytest.raises(ValueError, match="early_stopping needs a validation set"):
        Hyperparameters(early_stopping=True, validation_fraction=0.0)


# --------------------------------------------------- callbacks, stops


def test_heartbeat_inside_an_epoch_and_stop_keeps_the_last_epochs_weights() -> None:
    X, Y = data(m=400)
    params = hp(batch_size=4, epochs=5)
    after_epoch: dict[int, np.ndarray] = {}
    calls: list[tuple[int, bool]] = []

    def cb(p: Progress) -> bool:
        calls.append((p.epoch, p.record is None))
        if p.record is not None:
            after_epoch[p.epoch] = p.trainer.params.theta.copy()
        # stop in the middle of the third epoch
        return p.record is None and p.epoch == 2 and sum(1 for e, h in calls if e == 2 and h) == 10

    trainer = Trainer(X, Y, params, heartbeat_seconds=0.0)
    result = trainer.run(cb)
    assert result.stop_reason == "stopped"
    assert result.epochs_completed == 2
    assert any(heartbeat for _, heartbeat in calls)
    np.testing.assert_array_equal(result.model.params.theta, after_epoch[2])
    # the stopped trainer's checkpoint is the epoch-2 boundary: resuming matches a full run
    full = Trainer(X, Y, params).run()
    resumed = Trainer.from_checkpoint(trainer.checkpoint(), X, Y).run()
    np.testing.assert_array_equal(resumed.model.params.theta, full.model.params.theta)


def test_heartbeat_inside_one_wide_full_batch_step() -> None:
    """A full batch on large data is one step, but its chunks still beat, so a
    caller can renew a lease or cancel while it runs."""
    X, Y = data(m=3000)
    params = hp(batch_size=None, hidden_units=4096, epochs=3, validation_fraction=0)
    trainer = Trainer(X, Y, params, heartbeat_seconds=0.0)
    initial = trainer.params.theta.copy()
    beats: list[Progress] = []

    def cb(p: Progress) -> bool:
        beats.append(p)
        return p.record is None and p.epoch == 1  # stop inside the second epoch's step

    result = trainer.run(cb)
    assert [p.record is None for p in beats[:3]] == [True, True, True]  # inside epoch 1
    assert result.stop_reason == "stopped"
    assert result.epochs_completed == 1
    assert not np.array_equal(result.model.params.theta, initial)
    one = Trainer(X, Y, hp(batch_size=None, hidden_units=4096, epochs=1, validation_fraction=0))
    np.testing.assert_array_equal(result.model.params.theta, one.run().model.params.theta)


def test_progress_reports_every_epoch_with_its_figures(
    moons: tuple[np.ndarray, np.ndarray],
) -> None:
    X, Y = moons
    records = []
    result = Trainer(X, Y, hp(epochs=7)).run(
        lambda p: records.append(p.record) if p.record else None
    )
    assert [r.epoch for r in records] == list(range(1, 8))
    assert records == result.history.records()
    assert all(r.validation_cost is not None for r in records)


# ---------------------------------------------------------- divergence


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_huge_learning_rate_is_reported_as_diverged_never_nan(dtype: str) -> None:
    X, Y = data(m=200)
    X = X * 1e3
    result = Trainer(
        X, Y, hp(learning_rate=1e30, epochs=50, standardize=False, dtype=dtype, hidden_units=8)
    ).run()
    assert result.stop_reason == "diverged"
    assert np.all(np.isfinite(result.model.params.theta))
    cols = result.history.columns()
    for column in cols.values():
        assert np.all(np.isfinite(column))
    assert result.epochs_completed < 50
    assert np.isfinite(result.train_metrics.cost)


# ------------------------------------------------------------ learning


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("moons", {"hidden_units": 16, "learning_rate": 0.5, "epochs": 200, "batch_size": 32}),
        ("circles", {"hidden_units": 16, "learning_rate": 0.5, "epochs": 200, "batch_size": 32}),
        ("xor", {"hidden_units": 16, "learning_rate": 0.5, "epochs": 300, "batch_size": 32}),
        ("blobs", {"hidden_units": 4, "learning_rate": 0.5, "epochs": 50, "batch_size": 32}),
    ],
)
def test_learns_classic_shapes(kind: str, params: dict[str, Any]) -> None:
    X, Y = make_samples(kind, 400, noise=0.05, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    result = Trainer(X, Y, hp(**params)).run()
    assert result.train_metrics.accuracy >= 0.95, result.train_metrics
    assert result.validation_metrics is not None
    assert result.validation_metrics.accuracy >= 0.9


def test_adam_and_tanh_learn_the_spiral() -> None:
    X, Y = make_samples("spiral", 600, noise=0.0, rng=np.random.default_rng(0))
    result = Trainer(
        X,
        Y,
        hp(
            hidden_units=64,
            hidden_activation="tanh",
            optimizer="adam",
            learning_rate=0.02,
            epochs=400,
            batch_size=64,
        ),
    ).run()
    assert result.train_metrics.accuracy >= 0.95


def test_course_flower_sized_job_full_batch_small_init(
    moons: tuple[np.ndarray, np.ndarray],
) -> None:
    X, Y = moons
    result = Trainer(
        X,
        Y,
        hp(
            hidden_units=4,
            init="small",
            batch_size=None,
            learning_rate=1.2,
            epochs=2000,
            hidden_activation="tanh",
            standardize=False,
            validation_fraction=0,
        ),
    ).run()
    assert result.train_metrics.accuracy >= 0.95
    assert result.history.train_cost[0] == pytest.approx(np.log(2), abs=1e-3)  # ŷ ≈ 0.5 at start


# ---------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("X", "Y", "message"),
    [
        (np.zeros(5), np.zeros((1, 5)), "X must be 2-D"),
        (np.zeros((2, 5)), np.zeros((1, 4)), r"Y must have shape \(1, 5\)"),
        (np.ones((2, 4)), np.zeros((1, 4)), "Y must hold both classes"),
        (np.array([[0.0, np.nan, 1, 2]]), np.array([[0, 1, 0, 1]]), "X must be finite"),
        (np.array([[0.0, np.inf, 1, 2]]), np.array([[0, 1, 0, 1]]), "X must be finite"),
        (np.array([[0.0, 1, 1, 2]]), np.array([[0, 1, 2, 1]]), "Y must hold only 0 and 1"),
        ([[1, 2], [3]], [[0, 1]], "rectangular array of numbers"),
        (np.array([["a", "b"]]), [[0, 1]], "X must hold numbers"),
        (np.zeros((2, 0)), np.zeros((1, 0)), "at least one feature and one sample"),
    ],
)
def test_bad_data_raise_a_clear_value_error(X: Any, Y: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trainer(X, Y, hp())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be a number > 0"),
        ({"learning_rate": -1.0}, "learning_rate must be a number > 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a number > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"hidden_units": 0}, "hidden_units must be an integer >= 1"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"l2": -0.1}, "l2 must be a number >= 0"),
        ({"validation_fraction": 0.6}, r"validation_fraction must be in \[0, 0.5\]"),
        ({"hidden_activation": "sigmoid"}, "hidden_activation must be"),
        ({"optimizer": "rmsprop"}, "optimizer must be"),
        ({"dtype": "float16"}, "dtype must be"),
        ({"seed": -1}, "seed must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
    ],
)
def test_bad_hyperparameters_raise_a_clear_value_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Hyperparameters(**kwargs)


def test_validation_split_needs_two_samples_per_class() -> None:
    X = np.arange(6.0).reshape(1, 6)
    Y = np.array([[0, 0, 0, 0, 0, 1]])
    with pytest.raises(ValueError, match="at least 2 samples of each class"):
        Trainer(X, Y, hp())
    assert Trainer(X, Y, hp(validation_fraction=0)).run().epochs_completed == 12


def test_fit_encodes_any_two_labels() -> None:
    X, Y = data()
    labels = ["spam" if y else "ham" for y in Y.ravel()]
    result = fit(X, labels, hp(epochs=3))
    assert result.model.classes == ("ham", "spam")
    predictions = result.model.predict(X)
    assert set(predictions) <= {"ham", "spam"}
