"""GET /runs/{id}/model.onnx: one ONNX graph that onnx's checker accepts and
onnxruntime runs to the same probabilities and labels as /predict, extreme
inputs included; and the answers to bad requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

import app
from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.nn import Model
from app.nn.params import Parameters
from app.nn.preprocessing import Label, Standardization
from app.services.onnx_export import IR_VERSION, OPSET, OnnxDtype, to_onnx
from app.worker.job import execute_run
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    problem_of,
    sample_dataset,
    secured_settings,
    start_run,
)
from tests.service.test_registry import trained as registered_trained

ort.set_default_logger_severity(3)  # not the warning that `threshold` is overridable


def tolerance(weights: str, dtype: str) -> float:
    """float64 throughout: 1e-12; a float32 model (its /predict pass rounds) or X: 1e-6."""
    return 1e-12 if weights == dtype == "float64" else 1e-6


def session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def trained(api: TestClient, db: Database, config: Settings, **hyperparameters: Any) -> str:
    """A run trained in this process (the api fixture's executor trains nothing)."""
    run_id = start_run(api, sample_dataset(api, n=100), epochs=3, seed=1, **hyperparameters)
    assert execute_run(db=db, settings=config, run_id=run_id, owner="test") == "succeeded"
    return run_id


def inputs(dtype: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ordinary rows, and extreme ones: magnitudes to the type's largest, signs mixed."""
    biggest, top = float(np.finfo(dtype).max), 300 if dtype == "float64" else 38
    extreme = rng.choice([-1.0, 1.0], (40, 2)) * 10.0 ** rng.uniform(-top, top, (40, 2))
    extreme[:4] = [[biggest, biggest], [-biggest, biggest], [10.0**top, 0], [0, -biggest]]
    return {
        "random": (rng.normal(size=(60, 2)) * 3).astype(dtype),
        "extreme": extreme.astype(dtype),
    }


@pytest.mark.parametrize("weights", ["float64", "float32"])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_onnxruntime_answers_what_predict_answers(
    api: TestClient,
    db: Database,
    settings: Settings,
    activation: str,
    standardize: bool,
    weights: str,
) -> None:
    run_id = trained(
        api, db, settings, hidden_activation=activation, standardize=standardize, dtype=weights
    )
    rng = np.random.default_rng(7)
    for dtype in ("float64", "float32"):
        response = api.get(f"/runs/{run_id}/model.onnx", params={"dtype": dtype})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/onnx"
        disposition = response.headers["content-disposition"]
        assert disposition == f'attachment; filename="{run_id}.onnx"'
        onnx.checker.check_model(onnx.load_from_string(response.content), full_check=True)
        graph = session(response.content)
        for kind, X in inputs(dtype, rng).items():
            rows = X.astype(np.float64).tolist()  # the same float32-rounded values
            for threshold in (None, 0.0, 0.3, 1.0):
                body: dict[str, Any] = {"instances": rows}
                feed = {"X": X}
                if threshold is not None:
                    body["threshold"] = threshold
                    feed["threshold"] = np.array(threshold, dtype)
                expected = api.post(f"/runs/{run_id}/predict", json=body).json()
                probability, label = graph.run(None, feed)
                assert probability.dtype == np.dtype(dtype)
                assert not np.isnan(probability).any()
                gap = np.abs(probability.astype(np.float64) - expected["probabilities"]).max()
                assert gap <= tolerance(weights, dtype), (dtype, kind, threshold, gap)
                assert label.tolist() == expected["labels"], (dtype, kind, threshold)


def test_the_graph_says_what_it_is(api: TestClient, db: Database, settings: Settings) -> None:
    run_id = trained(api, db, settings, hidden_activation="tanh")
    proto = onnx.load_from_string(api.get(f"/runs/{run_id}/model.onnx").content)
    assert (proto.ir_version, proto.opset_import[0].version) == (IR_VERSION, OPSET)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["activation"] == "tanh"
    assert json.loads(meta["classes"]) == [0, 1]
    assert json.loads(meta["feature_names"]) == ["x0", "x1"]
    assert meta["twolayer_version"] == app.__version__
    assert meta["format"] == "twolayer.onnx/1"
    assert run_id in proto.doc_string
    g = proto.graph
    things = [*g.node, *g.input, *g.output, *g.initializer]
    assert all(t.name and t.doc_string for t in things), [
        t.name for t in things if not t.doc_string
    ]
    assert len({n.name for n in g.node}) == len(g.node)
    assert [i.name for i in g.input] == ["X", "threshold"]
    assert [o.name for o in g.output] == ["probability", "label"]
    assert "x0, x1" in g.input[0].doc_string
    assert {"Gemm", "Tanh", "Sigmoid", "Sub", "Div"} <= {n.op_type for n in g.node}
    graph = session(proto.SerializeToString())
    assert [i.name for i in graph.get_overridable_initializers()] == ["threshold"]
    _, label = graph.run(None, {"X": np.zeros((3, 2))})
    assert label.dtype == np.int64


def test_text_classes_come_out_as_strings(
    api: TestClient, db: Database, settings: Settings
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    labels = ["no" if a > 0 else "yes" for a in X[:, 0]]
    data = {"name": "text", "features": X.tolist(), "labels": labels, "feature_names": ["a", "b"]}
    dataset = api.post("/datasets", json=data).json()
    run_id = start_run(api, dataset, epochs=3, seed=1)
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="test") == "succeeded"
    graph = session(api.get(f"/runs/{run_id}/model.onnx").content)
    expected = api.post(f"/runs/{run_id}/predict", json={"instances": X.tolist()}).json()
    assert graph.run(["label"], {"X": X})[0].tolist() == expected["labels"]


def test_the_readmes_example_runs_as_written(
    api: TestClient,
    db: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("## ONNX\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    run_id = trained(api, db, settings)
    (tmp_path / "model.onnx").write_bytes(api.get(f"/runs/{run_id}/model.onnx").content)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    expected = api.post(
        f"/runs/{run_id}/predict", json={"instances": [[0.0, 1.0], [1.0, -0.5]]}
    ).json()
    labels = " ".join(map(str, expected["labels"]))
    assert f"[{labels}]" in printed
    assert "[0, 1]" in printed


@pytest.mark.parametrize(
    ("classes", "element"),
    [
        ((False, True), np.bool_),
        ((-3, 2**62), np.int64),
        ((0.5, 2.5), np.float64),
        (("a", "b"), object),
        ((0, 2**64), object),  # past int64: strings
        ((1, "b"), object),  # mixed: strings, the others in JSON
    ],
)
def test_the_classes_keep_their_types(classes: tuple[Label, Label], element: type) -> None:
    P = Parameters.from_arrays(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), -np.ones((1, 1)))
    proto = onnx.load_from_string(to_onnx(Model(P, "relu", classes, None), name="t", doc="d"))
    onnx.checker.check_model(proto, full_check=True)
    assert all(n.doc_string for n in [*proto.graph.node, *proto.graph.initializer])
    graph = session(proto.SerializeToString())
    (label,) = graph.run(["label"], {"X": np.array([[-10.0], [10.0]])})
    assert label.dtype == element
    strings = [c if isinstance(c, str) else json.dumps(c) for c in classes]
    assert label.tolist() == (list(classes) if element is not object else strings)


@pytest.mark.parametrize(("weights", "low", "high"), [("float64", 35, 39), ("float32", 16, 18)])
def test_probability_is_one_exactly_where_predicts_is(
    weights: str, low: float, high: float
) -> None:
    """Near the z where σ rounds to 1 (onnxruntime's σ gets there sooner than the
    engine's): ŷ, and so the label at threshold 1.0, are /predict's."""
    one = np.ones((1, 1))
    P = Parameters.from_arrays(one, 0 * one, one, 0 * one, np.dtype(weights))
    model = Model(P, "relu", (0, 1), None)  # Z2 = x for x ≥ 0
    X = np.linspace(low, high, 20_001)[:, None]
    graph = session(to_onnx(model, name="t", doc="d"))
    probability, label = graph.run(None, {"X": X, "threshold": np.array(1.0)})
    expected = model.predict_proba(X.T).ravel()
    assert (probability == 1).tolist() == (expected == 1).tolist()
    assert label.tolist() == model.labels(expected, 1.0)
    assert 0 < (expected == 1).sum() < len(X)


def extreme_rows(dtype: str) -> st.SearchStrategy[float]:
    big = float(np.finfo(dtype).max)
    return st.one_of(
        st.floats(-10, 10),
        st.floats(-big, big, width=32 if dtype == "float32" else 64),
        st.sampled_from([0.0, big, -big, 2.0**100, -(2.0**-100)]),
    )


@examples(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_model_on_any_finite_input_is_predict_proba(data: st.DataObject) -> None:
    """Random parameters (weights up to 1e3, scales down to 1e-300), random rows up to
    the type's largest: the graph's ŷ is Model.predict_proba's."""
    n_x, n_h = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    weights: OnnxDtype = data.draw(st.sampled_from(["float64", "float32"]))
    dtype: OnnxDtype = data.draw(st.sampled_from(["float64", "float32"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    size = 10.0 ** data.draw(st.integers(-2, 3))
    W1, W2 = rng.normal(size=(n_h, n_x)) * size, rng.normal(size=(1, n_h)) * size
    b1, b2 = rng.normal(size=(n_h, 1)), rng.normal(size=(1, 1))
    P = Parameters.from_arrays(W1, b1, W2, b2, np.dtype(weights))
    standardization = None
    if data.draw(st.booleans()):
        scale = 10.0 ** rng.uniform(-300 if dtype == "float64" else -30, 3, (n_x, 1))
        standardization = Standardization(mean=rng.normal(size=(n_x, 1)) * 1e3, scale=scale)
    model = Model(P, data.draw(st.sampled_from(["relu", "tanh"])), (0, 1), standardization)
    X = np.array(data.draw(st.lists(st.lists(extreme_rows(dtype), min_size=n_x, max_size=n_x))))
    X = X.reshape(-1, n_x).astype(dtype)
    if not len(X):
        return
    probability, label = session(to_onnx(model, dtype=dtype, name="t", doc="d")).run(None, {"X": X})
    expected = model.predict_proba(X.astype(np.float64).T).ravel()
    assert np.isfinite(probability).all()
    np.testing.assert_allclose(probability, expected, rtol=0, atol=tolerance(weights, dtype))
    assert label.tolist() == model.labels(expected)


# ------------------------------------------------------------ bad requests


def test_a_bad_dtype_is_422(api: TestClient) -> None:
    run_id = start_run(api, sample_dataset(api), epochs=3)
    body = problem_of(api.get(f"/runs/{run_id}/model.onnx", params={"dtype": "float16"}), 422)
    assert body["errors"][0]["loc"] == ["query", "dtype"]


def test_a_queued_run_is_409_and_an_unknown_one_404(api: TestClient) -> None:
    run_id = start_run(api, sample_dataset(api), epochs=3)
    problem_of(api.get(f"/runs/{run_id}/model.onnx"), 409)
    missing = "00000000-0000-0000-0000-000000000000"
    assert missing in problem_of(api.get(f"/runs/{missing}/model.onnx"), 404)["detail"]
    problem_of(api.get("/runs/not an id/model.onnx"), 404)


@pytest.fixture
def secured_api(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """Auth required, nothing trains."""
    app = create_app(
        secured_settings(settings.database_url), executor_factory=lambda _: RecordingExecutor()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    configure(None)


def test_another_owners_run_is_404(
    secured_api: TestClient, db: Database, settings: Settings, keys: dict[str, str]
) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    dataset = sample_dataset(secured_api, n=100, headers=alice)
    run_id = start_run(secured_api, dataset, headers=alice, epochs=3)
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="test") == "succeeded"
    assert secured_api.get(f"/runs/{run_id}/model.onnx", headers=alice).status_code == 200
    theirs = problem_of(secured_api.get(f"/runs/{run_id}/model.onnx", headers=bob), 404)
    assert theirs["detail"] == f"run {run_id} does not exist"
    problem_of(secured_api.get(f"/runs/{run_id}/model.onnx"), 401)


def ort_session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the "initializer in inputs" notice
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def test_a_registered_version_downloads_and_bad_requests_are_problems(
    api: TestClient, settings: Settings
) -> None:
    dataset = sample_dataset(api, n=60)
    run_id = registered_trained(api, settings, dataset)
    api.post("/models", json={"name": "m"})
    api.post("/models/m/versions", json={"run_id": run_id})
    by_version = api.get("/models/m/versions/1/model.onnx")
    assert by_version.status_code == 200
    assert 'filename="m-1.onnx"' in by_version.headers["content-disposition"]
    by_run = api.get(f"/runs/{run_id}/model.onnx")
    X = np.array([[0.0, 1.0], [1.0, -0.5]])
    assert (
        ort_session(by_version.content).run(None, {"X": X})[0].tolist()
        == ort_session(by_run.content).run(None, {"X": X})[0].tolist()
    )
    problem_of(api.get(f"/runs/{run_id}/model.onnx?dtype=int8"), 422)
    problem_of(api.get("/models/m/versions/2/model.onnx"), 404)
    problem_of(api.get("/models/nope/versions/1/model.onnx"), 404)
    problem_of(api.get("/runs/00000000-0000-4000-8000-000000000000/model.onnx"), 404)
    queued = api.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 1}}
    ).json()
    problem_of(api.get(f"/runs/{queued['id']}/model.onnx"), 409)
