"""The Python client against the app (ASGI) and a live server: typed answers,
paged lists, runs followed to their end, predictions, models, errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient

from app.client import (
    AuthenticationError,
    Client,
    ConflictError,
    EndEvent,
    EpochsEvent,
    NotFoundError,
    Prediction,
    Run,
    StateEvent,
    ValidationError,
    WaitTimeoutError,
)
from app.schemas.datasets import DatasetRead
from app.schemas.runs import ModelRead, RunHistory, RunRead
from tests.client.conftest import write_csv, xor_arrays


def test_arrays_to_a_run_to_predictions(asgi: Client, tmp_path: Path) -> None:
    X, y = xor_arrays()
    dataset = asgi.datasets.create(X, y, name="xor", feature_names=["a", "b"])
    assert isinstance(dataset, DatasetRead)
    assert (dataset.n_samples, dataset.n_features, dataset.classes) == (80, 2, [0, 1])
    assert dataset.feature_names == ["a", "b"]
    assert asgi.datasets.get(dataset.id) == dataset

    run = asgi.runs.create(dataset, "xor-run", hidden_units=8, epochs=60, learning_rate=0.5)
    assert isinstance(run, Run)
    assert isinstance(run, RunRead)
    assert run.hyperparameters["hidden_units"] == 8
    final = run.wait()
    assert isinstance(final, RunRead)
    assert final.status == "succeeded"
    assert final.metrics is not None
    assert run.status == "succeeded"  # the handle is refreshed too

    history = run.history()
    assert isinstance(history, RunHistory)
    assert history.epoch == list(range(1, 61))
    assert history.validation_cost is not None

    prediction = run.predict(X[:5])
    assert isinstance(prediction, Prediction)
    assert prediction.probabilities.dtype == np.float64
    assert prediction.probabilities.shape == (5,)
    assert set(prediction.labels.tolist()) <= {0, 1}
    by_name = asgi.predict(X[:5].tolist(), run_name="xor-run")
    assert np.array_equal(by_name.probabilities, prediction.probabilities)
    by_id = asgi.predict(X[:5], run_id=run.id, threshold=0.0)
    assert by_id.labels.tolist() == [1] * 5  # every ŷ ≥ 0

    model = run.model()
    assert isinstance(model, ModelRead)
    assert (model.n_features, model.hidden_units) == (2, 8)
    path = run.download_model(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert np.allclose(npz["W1"], np.asarray(model.W1))


def test_lists_iterate_across_pages(asgi: Client) -> None:
    X, y = xor_arrays(20)
    made = [asgi.datasets.create(X, y, name=f"d{i}").id for i in range(3)]
    found = [d.id for d in asgi.datasets.list(page_size=2)]
    assert found == made[::-1]  # newest first, all of them across two pages

    runs = [asgi.runs.create(made[0], "paged", epochs=1) for _ in range(3)]
    listed = list(asgi.runs.list(dataset_id=made[0], page_size=1))
    assert [r.id for r in listed] == [r.id for r in runs][::-1]
    assert all(isinstance(r, Run) for r in listed)
    assert len(list(asgi.runs.list(name="paged", page_size=2))) == 3
    assert list(asgi.runs.list(name="no-such-run")) == []
    for run in runs:
        run.wait()
    assert len(list(asgi.runs.list(status="succeeded", page_size=2))) == 3

    asgi.datasets.delete(made[2])
    with pytest.raises(NotFoundError):
        asgi.datasets.get(made[2])


def test_a_sweep_is_queued_in_one_request(asgi: Client) -> None:
    dataset = asgi.datasets.sample("moons", n_samples=40)
    trials = [{"learning_rate": lr, "epochs": 3} for lr in (0.1, 0.3)]
    runs = asgi.runs.create_many(dataset, trials, name="sweep")
    assert all(isinstance(r, Run) for r in runs)
    assert [r.hyperparameters["learning_rate"] for r in runs] == [0.1, 0.3]
    assert [r.queue_position for r in runs] == [1, 2]
    assert [r.wait().status for r in runs] == ["succeeded", "succeeded"]
    assert len(list(asgi.runs.list(name="sweep"))) == 2
    with pytest.raises(ValueError, match="1 to 1000 runs"):
        asgi.runs.create_many(dataset, [])
    with pytest.raises(NotFoundError) as missing:
        asgi.runs.create_many("no-such-dataset", [{}, {}])
    assert missing.value.detail.startswith("runs[0]: dataset no-such-dataset")


def test_a_rerun_trains_to_the_same_weights(asgi: Client) -> None:
    dataset = asgi.datasets.sample("moons", n_samples=60)
    run = asgi.runs.create(dataset, "original", epochs=10, hidden_units=4)
    run.wait()
    again = run.rerun()  # queued, named as the run
    assert isinstance(again, Run)
    assert (again.name, again.hyperparameters) == ("original", run.hyperparameters)
    renamed = asgi.runs.rerun(run.id, "renamed")
    assert renamed.name == "renamed"
    assert again.wait().status == renamed.wait().status == "succeeded"
    record = run.reproducibility
    assert (record.dataset_sha256, record.seed) == (dataset.sha256, run.hyperparameters["seed"])
    assert record.environments is not None
    assert record.environments[0].numpy == np.__version__
    assert again.model().W1 == renamed.model().W1 == run.model().W1  # the same floats
    with pytest.raises(NotFoundError):
        asgi.runs.rerun("no-such-run")


def test_errors_carry_the_problem_fields(asgi: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        asgi.runs.get("no-such-run")
    assert missing.value.status == 404
    assert missing.value.title
    assert "no-such-run" in missing.value.detail
    assert missing.value.body

    dataset = asgi.datasets.sample("moons", n_samples=40)
    with pytest.raises(ValidationError) as invalid:
        asgi.runs.create(dataset, epochs=0, hidden_units="many")
    problem = invalid.value
    assert problem.status == 422
    assert problem.type == "/problems/validation"
    assert problem.errors is not None
    assert {tuple(e["loc"]) for e in problem.errors} == {
        ("body", "hyperparameters", "epochs"),
        ("body", "hyperparameters", "hidden_units"),
    }

    run = asgi.runs.create(dataset, epochs=2)
    run.wait()
    with pytest.raises(ConflictError) as ended:
        run.cancel()
    assert ended.value.status == 409
    run.delete()
    with pytest.raises(NotFoundError):
        run.refresh()


def test_auth_errors_and_the_bearer_key(secured_asgi: tuple[TestClient, str]) -> None:
    http, key = secured_asgi
    with pytest.raises(AuthenticationError) as denied:
        list(Client(http=http, api_key="").datasets.list())
    assert denied.value.status == 401
    assert denied.value.detail
    with pytest.raises(AuthenticationError):
        Client(http=http, api_key="tl_not-a-real-key").datasets.sample("xor", n_samples=20)
    dataset = Client(http=http, api_key=key).datasets.sample("xor", n_samples=20)
    assert dataset.n_samples == 20


def test_wait_times_out_and_a_running_run_is_cancelled(asgi: Client) -> None:
    dataset = asgi.datasets.sample("moons", n_samples=60)
    run = asgi.runs.create(dataset, epochs=100_000, batch_size=None)
    with pytest.raises(WaitTimeoutError):
        run.wait(timeout=0.5)
    assert run.cancel().status in ("running", "cancelled", "queued")
    final = run.wait()
    assert final.status == "cancelled"
    assert final.progress.epoch < 100_000


def test_events_are_typed_and_end_the_stream(asgi: Client) -> None:
    dataset = asgi.datasets.sample("circles", n_samples=60)
    run = asgi.runs.create(dataset, epochs=40)
    events = list(run.events())
    assert isinstance(events[0], StateEvent)
    assert isinstance(events[-1], EndEvent)
    assert events[-1].status == "succeeded"
    assert events[-1].reason == "ended"
    epochs = [e for ev in events if isinstance(ev, EpochsEvent) for e in ev.history.epoch]
    assert epochs == list(range(1, 41))


class Frame:
    """A frame as pandas and polars both are to the client: columns, and
    frame[column].to_numpy()."""

    def __init__(self, data: dict[str, list[Any]]) -> None:
        self.data = data
        self.columns = list(data)

    def __getitem__(self, column: str) -> Any:
        values = np.asarray(self.data[column])
        return type("Series", (), {"to_numpy": lambda _: values})()


def test_against_a_live_server(live: Client, tmp_path: Path) -> None:
    uploaded = live.datasets.create(write_csv(tmp_path / "xor.csv"), label_column="y")
    assert (uploaded.name, uploaded.feature_names, uploaded.n_samples) == (
        "xor.csv",
        ["a", "b"],
        80,
    )
    X, _ = xor_arrays(30)
    framed = live.datasets.create(
        Frame({"a": X[:, 0].tolist(), "label": ["no", "yes"] * 15, "b": X[:, 1].tolist()}),
        label_column="label",
        name="framed",
    )
    assert framed.feature_names == ["a", "b"]
    assert framed.classes == ["no", "yes"]

    run = live.runs.create(uploaded.id, epochs=150, hidden_units=6)
    lines = io.StringIO()
    final = run.wait(progress=True, stream=lines)
    assert final.status == "succeeded"
    out = lines.getvalue()
    assert f"{run.id} succeeded epoch 150/150 cost " in out
    assert "\x1b" not in out
    assert "\r" not in out
    assert live.predict(X, run_id=run.id).probabilities.shape == (30,)


def test_a_parquet_file_is_uploaded_as_it_is(asgi: Client, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    table = pa.table(
        {"a": [1.0, 2.0, 3.0], "b": pa.array([1, 0, 1], pa.int8()), "y": ["n", "p", "n"]}
    )
    pq.write_table(table, path)
    dataset = asgi.datasets.create(path, label_column="y")
    assert (dataset.n_samples, dataset.feature_names, dataset.classes) == (
        3,
        ["a", "b"],
        ["n", "p"],
    )
    chosen = asgi.datasets.upload(path, label_column="y", feature_columns=["b"])
    assert chosen.feature_names == ["b"]


def test_the_client_needs_no_server_settings() -> None:
    """A client on a machine whose TWOLAYER_* settings are the server's, and wrong."""
    code = (
        "from app.client import Client, TwolayerConnectionError\n"
        "c = Client('http://127.0.0.1:9', max_retries=0)\n"
        "try:\n    c.runs.get('x')\nexcept TwolayerConnectionError as e:\n    print('unreachable')"
    )
    env = {"TWOLAYER_DATABASE_URL": "nonsense://", "TWOLAYER_LOCAL_WORKERS": "many"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unreachable"


def test_the_readmes_client_example_runs_as_written(live_url: str, tmp_path: Path) -> None:
    """The README's notebook-style example, against a live server, unchanged."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The Python client and the CLI", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env={**os.environ, "TWOLAYER_URL": live_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, accuracy = done.stdout.split()[:2]
    assert status == "succeeded"
    assert float(accuracy) > 0.8
    arrays = np.load(tmp_path / "xor.npz", allow_pickle=False)
    assert "W1" in arrays


def test_the_registry_and_predict_by_model(asgi: Client, tmp_path: Path) -> None:
    X, y = xor_arrays()
    dataset = asgi.datasets.create(X, y, name="xor")
    runs = [asgi.runs.create(dataset, hidden_units=4, epochs=5, seed=s) for s in (1, 2)]
    for run in runs:
        run.wait()
    made = asgi.models.create("xor", description="exclusive or")
    assert (made.name, made.versions) == ("xor", [])
    with pytest.raises(ConflictError):
        asgi.models.create("xor")
    assert [asgi.models.register("xor", run).version for run in runs] == [1, 2]
    assert asgi.models.set_alias("xor", "champion", 1).version == 1
    assert asgi.models.get("xor").aliases == {"champion": 1}
    assert [m.name for m in asgi.models.list()] == ["xor"]
    assert asgi.models.version("xor", 1).aliases == ["champion"]
    graphs = [
        onnx.load(asgi.models.download_onnx("xor", 1, tmp_path / "xor.onnx")),
        onnx.load(runs[0].download_onnx(tmp_path / "run.onnx", dtype="float32")),
    ]
    assert graphs[0].graph.name == "xor_v1"
    assert graphs[1].graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [{t.name: t.raw_data for t in g.graph.initializer}["W1"] for g in graphs]
    assert weights[0] == weights[1]  # the same run's

    by_alias = asgi.predict(X[:4], model="xor@champion")
    assert by_alias.model == "xor@1"
    assert by_alias.probabilities.tolist() == runs[0].predict(X[:4]).probabilities.tolist()
    assert asgi.predict(X[:4], model="xor").model == "xor@2"
    with pytest.raises(ValueError, match="exactly one"):
        asgi.predict(X[:4], model="xor", run_id=runs[0].id)
    with pytest.raises(ConflictError, match="champion"):
        asgi.models.delete_version("xor", 1)
    asgi.models.delete_alias("xor", "champion")
    asgi.models.delete_version("xor", 1)
    assert asgi.models.ensure("xor", description="changed").description == "changed"
    asgi.models.delete("xor")
    with pytest.raises(NotFoundError):
        asgi.models.get("xor")
