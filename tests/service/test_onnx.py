"""The ONNX export, run by onnxruntime as a user would, against /predict."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.settings import Settings
from app.nn import Model
from app.nn.params import Parameters
from app.nn.preprocessing import Standardization
from app.services.onnx_export import IR_VERSION, OPSET, to_onnx
from tests.service.conftest import problem_of, sample_dataset
from tests.service.test_registry import trained


def session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the "initializer in inputs" notice: it is the default
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def rows(rng: np.random.Generator, dtype: str) -> np.ndarray:
    plain = rng.normal(size=(40, 2)) * 3
    extreme = (
        [[1e300, -1e300], [1e150, 3.0], [-1e200, -1e200], [0.0, 5e-324]]
        if dtype == "float64"
        else [[3e38, -3e38], [1e30, 2.0], [-1e-38, 0.0]]
    )
    return np.vstack([plain, extreme]).astype(dtype)


@pytest.mark.parametrize(
    ("activation", "standardize", "train_dtype"),
    [("relu", True, "float64"), ("tanh", False, "float64"), ("relu", True, "float32")],
)
def test_the_graph_answers_what_predict_does(
    api: TestClient, settings: Settings, activation: str, standardize: bool, train_dtype: str
) -> None:
    dataset = sample_dataset(api, n=60)
    run_id = trained(
        api,
        settings,
        dataset,
        hidden_activation=activation,
        standardize=standardize,
        dtype=train_dtype,
        seed=3,
    )
    rng = np.random.default_rng(0)
    for dtype, tolerance in (("float64", 1e-12), ("float32", 1e-6)):
        response = api.get(f"/runs/{run_id}/model.onnx", params={"dtype": dtype})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/onnx"
        assert f'filename="{run_id}.onnx"' in response.headers["content-disposition"]
        graph = onnx.load_from_string(response.content)
        onnx.checker.check_model(graph, full_check=True)
        assert (graph.ir_version, graph.opset_import[0].version) == (IR_VERSION, OPSET)
        assert {p.key: p.value for p in graph.metadata_props}["feature_names"] == '["x0", "x1"]'
        assert all(n.doc_string for n in graph.graph.node)
        X = rows(rng, dtype)
        given_rows = X.astype(np.float64).tolist()  # the float32 values, exactly
        for threshold in (None, 0.0, 0.3, 1.0):
            feeds: dict[str, Any] = {"X": X}
            body: dict[str, Any] = {"instances": given_rows}
            if threshold is not None:
                feeds["threshold"] = np.array(threshold, dtype=dtype)
                body["threshold"] = threshold
            probability, label = session(response.content).run(None, feeds)
            expected = api.post(f"/runs/{run_id}/predict", json=body).json()
            assert probability.dtype == np.dtype(dtype)
            tol = 1e-6 if train_dtype == "float32" else tolerance
            np.testing.assert_allclose(probability, expected["probabilities"], rtol=0, atol=tol)
            # a label is the same wherever ŷ is not within the tolerance of the
            # threshold (at ŷ = 1 - 1 ulp against 1.0, the order of a sum decides)
            cut = 0.5 if threshold is None else threshold
            clear = np.abs(np.asarray(expected["probabilities"]) - cut) > tol
            if 0 < cut < 1:  # (at 0 or 1, every saturated row is at the threshold)
                assert clear.sum() >= len(X) - 3
            assert label[clear].tolist() == np.asarray(expected["labels"])[clear].tolist()


def test_a_registered_version_downloads_and_bad_requests_are_problems(
    api: TestClient, settings: Settings
) -> None:
    dataset = sample_dataset(api, n=60)
    run_id = trained(api, settings, dataset)
    api.post("/models", json={"name": "m"})
    api.post("/models/m/versions", json={"run_id": run_id})
    by_version = api.get("/models/m/versions/1/model.onnx")
    assert by_version.status_code == 200
    assert 'filename="m-1.onnx"' in by_version.headers["content-disposition"]
    by_run = api.get(f"/runs/{run_id}/model.onnx")
    X = np.array([[0.0, 1.0], [1.0, -0.5]])
    assert (
        session(by_version.content).run(None, {"X": X})[0].tolist()
        == session(by_run.content).run(None, {"X": X})[0].tolist()
    )
    problem_of(api.get(f"/runs/{run_id}/model.onnx?dtype=int8"), 422)
    problem_of(api.get("/models/m/versions/2/model.onnx"), 404)
    problem_of(api.get("/models/nope/versions/1/model.onnx"), 404)
    problem_of(api.get("/runs/00000000-0000-4000-8000-000000000000/model.onnx"), 404)
    queued = api.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 1}}
    ).json()
    problem_of(api.get(f"/runs/{queued['id']}/model.onnx"), 409)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_x=st.integers(1, 6),
    n_h=st.integers(1, 8),
    activation=st.sampled_from(["relu", "tanh"]),
    standardized=st.booleans(),
    classes=st.sampled_from([(0, 1), (False, True), ("no", "yes"), (-3, 7)]),
)
def test_property_any_model_exports_to_what_predict_proba_says(
    seed: int,
    n_x: int,
    n_h: int,
    activation: Any,
    standardized: bool,
    classes: tuple[Any, Any],
) -> None:
    rng = np.random.default_rng(seed)
    params = Parameters.from_arrays(
        rng.normal(size=(n_h, n_x)) * 3,
        rng.normal(size=(n_h, 1)),
        rng.normal(size=(1, n_h)) * 3,
        rng.normal(size=(1, 1)),
    )
    standardization = None
    if standardized:
        standardization = Standardization(
            mean=rng.normal(size=(n_x, 1)), scale=rng.uniform(0.1, 10, size=(n_x, 1))
        )
    model = Model(params, activation, classes, standardization)
    X = rng.normal(size=(30, n_x)) * 10.0 ** rng.integers(-3, 200, size=(30, 1))
    probability, label = session(to_onnx(model, name="p", doc="p")).run(None, {"X": X})
    expected = model.predict_proba(X.T).ravel()
    np.testing.assert_allclose(probability, expected, rtol=0, atol=1e-12)
    want = model.labels(expected)
    got = [v.decode() if isinstance(v, bytes) else v for v in label.tolist()]
    assert got == [str(w) if isinstance(classes[0], str) else w for w in want]
