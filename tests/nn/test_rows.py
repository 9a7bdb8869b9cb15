"""Training from a `Rows` source (samples as rows, in blocks): the same split,
standardization and weights as from the array, bit for bit, whatever the
blocks; the streaming fit's accuracy; shape checks; the memory it holds."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from app.nn import Hyperparameters, Progress, Standardization, Trainer, stratified_split
from app.nn.data import ROW_GROUP, ArrayRows, Rows, training_data
from app.nn.params import Array


class StoredRows:
    """A source like the database's: C-ordered float64 copies of X.T (m, n_x) in
    blocks of `block_rows` (the last one shorter), made as they are read."""

    def __init__(self, X: Array, block_rows: int) -> None:
        self.X, self.block_rows = X, block_rows
        self.passes = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape[1], self.X.shape[0]

    def blocks(self) -> Iterator[tuple[int, Array]]:
        self.passes += 1
        for start in range(0, self.X.shape[1], self.block_rows):
            yield start, np.ascontiguousarray(self.X[:, start : start + self.block_rows].T)


class BadRows:
    """A source whose blocks break the `Rows` contract."""

    def __init__(self, shape: tuple[int, int], blocks: list[tuple[int, Array]]) -> None:
        self._shape, self._blocks = shape, blocks

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def blocks(self) -> Iterator[tuple[int, Array]]:
        yield from self._blocks


def data(m: int = 5 * ROW_GROUP + 37, n_x: int = 4, seed: int = 0) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m)) * [[1.0], [30.0], [0.01], [2.0]][:n_x] + 5.0
    Y = ((X[0] - 5) * (X[1] - 5) + 20 * (X[-1] - 5) > 0).astype(np.float64).reshape(1, -1)
    return X, Y


def sources(X: Array) -> dict[str, Any]:
    m = X.shape[1]
    single = -(-m // ROW_GROUP) * ROW_GROUP
    return {
        "array": X,
        "F-ordered array": np.asfortranarray(X),
        "rows of 1024": ArrayRows(X, ROW_GROUP),
        "rows of 5x1024": ArrayRows(X, 5 * ROW_GROUP),
        "one block": ArrayRows(X, single),
        "stored rows of 2048": StoredRows(X, 2 * ROW_GROUP),
        "stored, one block": StoredRows(X, single),
    }


def hp(**kw: Any) -> Hyperparameters:
    base: dict[str, Any] = {
        "hidden_units": 5,
        "epochs": 3,
        "batch_size": 512,
        "learning_rate": 0.1,
        "optimizer": "adam",
        "seed": 11,
    }
    base.update(kw)
    return Hyperparameters(**base)


def test_array_rows_are_views_of_X_transposed_in_blocks() -> None:
    X, _ = data()
    rows = ArrayRows(X, 2 * ROW_GROUP)
    assert isinstance(rows, Rows)
    assert not isinstance(X, Rows)
    assert rows.shape == (X.shape[1], X.shape[0])
    for _ in range(2):  # every call is a new pass
        blocks = list(rows.blocks())
        assert [start for start, _ in blocks] == [0, 2048, 4096]
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), X.T)
        assert all(np.shares_memory(b, X) for _, b in blocks)
    as32 = list(ArrayRows(X.astype(np.float32)).blocks())
    assert all(b.dtype == np.float64 for _, b in as32)


# ------------------------------------------------------- the streaming fit


def test_streaming_fit_agrees_with_mean_and_std() -> None:
    rng = np.random.default_rng(1)
    m = 20 * ROW_GROUP + 5
    X = np.vstack(
        [
            3 * rng.standard_normal(m) + 2,
            1e8 + rng.standard_normal(m),  # a large offset
            np.full(m, 0.1),  # constant (its sums round: std ≈ eps, not 0)
            1e8 + 1e-3 * rng.standard_normal(m),  # noise in the last 5 digits
            rng.standard_normal(m) ** 3 * 1e-5 - 7,
        ]
    )
    s = Standardization.fit(X)
    assert s.mean.shape == s.scale.shape == (5, 1)
    assert s.scale[2, 0] == 1.0
    np.testing.assert_allclose(s.mean.ravel(), X.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(s.scale[[0, 1, 4], 0], X.std(axis=1)[[0, 1, 4]], rtol=1e-12)
    for j in (0, 1, 3, 4):  # an accurate reference: exact sums; x - mean is exact near 1e8
        mean = math.fsum(X[j]) / m
        std = math.sqrt(math.fsum((X[j] - mean) ** 2) / m)
        assert s.mean[j, 0] == pytest.approx(mean, rel=1e-15, abs=1e-15)
        assert s.scale[j, 0] == pytest.approx(std, rel=1e-13)


@pytest.mark.parametrize("validation_fraction", [0.0, 0.2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_is_bit_identical_whatever_the_blocks(validation_fraction: float, dtype: str) -> None:
    X, Y = data()
    fits = {}
    for name, source in sources(X).items():
        d = training_data(
            source,
            Y,
            validation_fraction=validation_fraction,
            rng=np.random.default_rng(4),
            standardization=None,
            standardize=True,
            dtype=np.dtype(dtype),
        )
        assert d.standardization is not None
        fits[name] = d.standardization
    if validation_fraction == 0:  # (groups are of absolute sample indices, not of X[:, train])
        fits["fit(X)"] = Standardization.fit(X)
    first = fits["array"]
    for name, s in fits.items():
        assert np.array_equal(s.mean, first.mean), name
        assert np.array_equal(s.scale, first.scale), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_arrays_are_the_split_standardized_in_float64_then_cast(dtype: str) -> None:
    X, Y = data()
    d = training_data(
        StoredRows(X, ROW_GROUP),
        Y,
        validation_fraction=0.2,
        rng=np.random.default_rng(4),
        standardization=None,
        standardize=True,
        dtype=np.dtype(dtype),
    )
    s = d.standardization
    assert s is not None
    assert d.Xa_val is not None
    assert d.Y_val is not None
    train_idx, val_idx = stratified_split(Y, 0.2, np.random.default_rng(4))
    for idx, XTa, Yd in ((train_idx, d.XTa, d.Y), (val_idx, d.Xa_val.T, d.Y_val)):
        expected = ((X[:, idx] - s.mean) / s.scale).T.astype(dtype)
        assert XTa.dtype == np.dtype(dtype)
        assert XTa.flags.c_contiguous
        np.testing.assert_array_equal(XTa[:, :-1], expected)
        np.testing.assert_array_equal(XTa[:, -1], 1)
        np.testing.assert_array_equal(Yd, Y[:, idx])


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("validation_fraction", [0.0, 0.2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("standardize", [True, False])
def test_trained_weights_are_bit_identical_for_every_source(
    standardize: bool, dtype: str, validation_fraction: float
) -> None:
    X, Y = data()
    params = hp(standardize=standardize, dtype=dtype, validation_fraction=validation_fraction)
    results = {name: Trainer(source, Y, params).run() for name, source in sources(X).items()}
    first = results["array"]
    assert first.model.params.theta.dtype == np.dtype(dtype)
    assert first.epochs_completed == 3
    for name, result in results.items():
        assert np.array_equal(result.model.params.theta, first.model.params.theta), name
        assert np.array_equal(result.history.train_cost, first.history.train_cost), name
        assert result.train_metrics == first.train_metrics, name


def test_resume_from_a_checkpoint_with_rows_is_bit_for_bit() -> None:
    X, Y = data()
    params = hp(epochs=6, validation_fraction=0.2, early_stopping=True, patience=10)
    full = Trainer(X, Y, params).run()
    saved: list[bytes] = []

    def stop_after_epoch_2(p: Progress) -> bool:
        if p.record is not None and p.epoch == 2:
            saved.append(p.trainer.checkpoint())
            return True
        return False

    stopped = Trainer(StoredRows(X, 3 * ROW_GROUP), Y, params).run(stop_after_epoch_2)
    assert stopped.stop_reason == "stopped"
    assert len(saved) == 1
    source = StoredRows(X, ROW_GROUP)
    resumed = Trainer.from_checkpoint(saved[0], source, Y).run()
    assert resumed.epochs_completed == 6
    assert source.passes == 1  # the checkpoint's standardization: no fit pass
    assert np.array_equal(resumed.model.params.theta, full.model.params.theta)
    assert resumed.history.validation_cost is not None
    assert full.history.validation_cost is not None
    assert np.array_equal(resumed.history.validation_cost, full.history.validation_cost)


def test_a_fit_reads_a_float32_run_s_source_twice_and_a_float64_run_s_once() -> None:
    X, Y = data()
    for dtype, standardize, passes in (("float32", True, 2), ("float64", True, 1)):
        source = StoredRows(X, ROW_GROUP)
        Trainer(source, Y, hp(epochs=1, dtype=dtype, standardize=standardize))
        assert source.passes == passes, dtype
    source = StoredRows(X, ROW_GROUP)
    Trainer(source, Y, hp(epochs=1, dtype="float32", standardize=False))
    assert source.passes == 1


# ------------------------------------------------------------------ shapes


def test_wrong_shapes_raise_a_value_error() -> None:
    X, Y = data()
    rows = ArrayRows(X)
    with pytest.raises(ValueError, match=r"Y must have shape \(1, 5157\)"):
        Trainer(rows, Y[:, :-1], hp())
    trainer = Trainer(rows, Y, hp(epochs=1))
    trainer.run()
    with pytest.raises(ValueError, match="checkpoint is for 4 features and 5157 samples"):
        Trainer.from_checkpoint(trainer.checkpoint(), ArrayRows(X[:, :-1]), Y[:, :-1])
    with pytest.raises(ValueError, match="checkpoint is for 4 features"):
        Trainer.from_checkpoint(trainer.checkpoint(), ArrayRows(X[:3]), Y)
    with pytest.raises(ValueError, match="one feature and one sample"):
        Trainer(BadRows((0, 4), []), Y[:, :0], hp())
    with pytest.raises(ValueError, match="multiple of 1024"):
        ArrayRows(X, 1000)
    with pytest.raises(ValueError, match="2-D"):
        ArrayRows(X[0])


def block(k: int, n_x: int = 4, dtype: str = "float64") -> Array:
    return np.zeros((k, n_x), dtype)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([(0, block(2048, 3))], "4 features"),  # too few columns
        ([(0, block(2048, dtype="float32"))], "float64"),
        ([(1024, block(1024)), (0, block(1024))], "from 0"),  # out of order
        ([(0, block(1000)), (1000, block(1048))], "multiple of 1024"),
        ([(0, block(1024))], "cover 1024 samples, not 2048"),
        ([(0, block(3072))], "within 2048"),
    ],
)
def test_a_source_breaking_the_contract_raises_a_value_error(
    blocks: list[tuple[int, Array]], message: str
) -> None:
    Y = np.tile([0.0, 1.0], 1024).reshape(1, -1)
    with pytest.raises(ValueError, match=message):
        Trainer(BadRows((2048, 4), blocks), Y, hp(standardize=False))


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_data_holds_no_copy_of_X_beyond_its_arrays(dtype: str) -> None:
    m, n_x, block_rows = 200_000, 20, 8 * ROW_GROUP
    X = np.random.default_rng(2).standard_normal((n_x, m))
    Y = (X[0] > 0).astype(np.float64).reshape(1, -1)
    source = StoredRows(X, block_rows)
    tracemalloc.start()
    try:
        d = training_data(
            source,
            Y,
            validation_fraction=0.2,
            rng=np.random.default_rng(0),
            standardization=None,
            standardize=True,
            dtype=np.dtype(dtype),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.Xa_val is not None
    assert d.Y_val is not None
    arrays = d.XTa.nbytes + d.Xa_val.nbytes + d.Y.nbytes + d.Y_val.nbytes
    indices = 8 * m  # the split's sorted indices, train and validation
    one_block = block_rows * n_x * 8
    assert peak <= arrays + indices + 2 * one_block + 2**20, (peak, arrays)
