"""Fitted models: prediction, serialisation, and never unpickling."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from app.nn import Hyperparameters, Model, Trainer, fit, forward
from app.nn.serialization import load_npz


def trained(X: np.ndarray, Y: np.ndarray) -> Model:
    return Trainer(X, Y, Hyperparameters(hidden_units=5, epochs=20, seed=1)).run().model


def test_predict_proba_applies_standardization(moons: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = moons
    X = X * 100 + 7
    model = trained(X, Y)
    assert model.standardization is not None
    expected = forward(model.params, model.standardization.transform(X)).A2
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
    assert model.predict_proba(X).shape == (1, X.shape[1])


def test_predict_returns_the_datasets_own_classes(moons: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = moons
    labels = [bool(y) for y in Y.ravel()]
    result = fit(
        X,
        labels,
        Hyperparameters(
            hidden_units=8, epochs=60, learning_rate=0.5, seed=0, validation_fraction=0
        ),
    )
    predictions = result.model.predict(X)
    assert all(isinstance(p, bool) for p in predictions)
    assert np.mean(np.array(predictions) == np.array(labels)) == result.train_metrics.accuracy
    assert set(result.model.predict(X, threshold=1.0)) == {False}
    with pytest.raises(ValueError, match="threshold must be in"):
        result.model.predict(X, threshold=1.5)


def test_predict_rejects_wrong_width_and_non_finite(moons: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = moons
    model = trained(X, Y)
    with pytest.raises(ValueError, match="must have 2 features"):
        model.predict_proba(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="must be finite"):
        model.predict_proba(np.array([[np.nan], [0.0]]))


def test_large_inputs_are_predicted_in_chunks_identically() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 20000))
    Y = (X[0] > 0).astype(float).reshape(1, -1)
    model = trained(X, Y)
    whole = model.predict_proba(X)
    pieces = np.concatenate(
        [model.predict_proba(X[:, i : i + 777]) for i in range(0, 20000, 777)], axis=1
    )
    np.testing.assert_allclose(whole, pieces, rtol=1e-14)


def test_small_predictions_from_many_threads_never_share_buffers(
    moons: tuple[np.ndarray, np.ndarray],
) -> None:
    """Small batches reuse buffers; concurrent callers each borrow their own."""
    X, Y = moons
    model = trained(X, Y)
    columns = [X[:, i : i + 1 + i % 5] for i in range(60)]
    expected = [forward(model.params, model.standardization.transform(x)).A2 for x in columns]  # type: ignore[union-attr]

    def predict_all(_: int) -> list[np.ndarray]:
        return [model.predict_proba(x) for x in columns * 20]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(predict_all, range(8)))
    for got in results:
        for k, proba in enumerate(got):
            np.testing.assert_allclose(proba, expected[k % len(columns)], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_round_trips_through_npz_bytes(
    moons: tuple[np.ndarray, np.ndarray], dtype: Literal["float64", "float32"]
) -> None:
    X, Y = moons
    labels = ["no" if y == 0 else "yes" for y in Y.ravel()]
    result = fit(X, labels, Hyperparameters(epochs=3, dtype=dtype))
    data = result.model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {"W1.npy", "b1.npy", "W2.npy", "b2.npy", "mean.npy", "scale.npy"} <= set(
            z.namelist()
        )
    loaded = Model.from_bytes(data)
    assert loaded.classes == ("no", "yes")
    assert loaded.params.theta.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.params.theta, result.model.params.theta)
    np.testing.assert_array_equal(loaded.predict_proba(X), result.model.predict_proba(X))


@pytest.mark.parametrize("classes", [(False, True), (0, 1), (-1.5, 2.5), ("no", "yes")])
def test_the_model_file_keeps_the_classes_types_and_the_activation(
    moons: tuple[np.ndarray, np.ndarray], classes: tuple[Any, Any]
) -> None:
    X, Y = moons
    labels = [classes[int(y)] for y in Y.ravel()]
    result = fit(X, labels, Hyperparameters(epochs=2, hidden_activation="tanh"))
    loaded = Model.from_bytes(result.model.to_bytes())
    assert loaded.classes == classes
    assert [type(c) for c in loaded.classes] == [type(c) for c in classes]
    assert loaded.activation == "tanh"
    assert loaded.predict(X) == result.model.predict(X)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_bearing_npz_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = np.array([_Exploit(marker)], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, W1=payload, __meta__=np.array('{"format": "twolayer.model/1"}'))
    with pytest.raises(ValueError, match="allow_pickle"):
        Model.from_bytes(buf.getvalue())
    assert not marker.exists()
    # a bare pickle is refused before NumPy is even asked
    with pytest.raises(ValueError, match=r"not a valid \.npz"):
        load_npz(pickle.dumps(_Exploit(marker)))
    assert not marker.exists()


def test_object_arrays_are_never_written() -> None:
    from app.nn.serialization import dump_npz

    with pytest.raises(ValueError, match="dtype object"):
        dump_npz({"x": np.array([1, "a"], dtype=object)}, {})
