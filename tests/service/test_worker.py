"""Real runs end to end: local worker processes train through the API."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.core.settings import Settings, configure
from app.db.arrays import load_dataset_arrays
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database
from app.main import create_app
from app.nn import Hyperparameters, Model, Trainer
from tests.service.conftest import ended, problem_of, sample_dataset, start_run, wait_for
from tests.service.test_events import events


def engine_result(db: Database, dataset_id: str, hyperparameters: dict[str, Any]) -> Any:
    """The same run on the bare engine, in this process."""
    arrays = load_dataset_arrays(db=db, dataset_id=dataset_id)
    return Trainer(
        arrays.X.T, arrays.Y, Hyperparameters(**hyperparameters), classes=arrays.classes
    ).run()


def test_a_run_trains_end_to_end_like_the_bare_engine(service: TestClient, db: Database) -> None:
    dataset = sample_dataset(service, "moons", 300)
    run = service.post(
        "/runs",
        json={
            "dataset_id": dataset["id"],
            "hyperparameters": {"epochs": 120, "learning_rate": 0.3},
        },
    ).json()
    done = wait_for(service, run["id"], ended)
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"epoch": 120, "epochs": 120}
    assert done["attempts"] == 1
    assert done["started_at"]
    assert done["finished_at"]
    assert done["metrics"]["train"]["accuracy"] > 0.95
    assert set(done["metrics"]["validation"]) == {
        "cost",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
    }

    history = service.get(f"/runs/{run['id']}/history").json()
    assert history["epoch"] == list(range(1, 121))
    assert len(history["validation_cost"]) == 120
    assert service.get(f"/runs/{run['id']}/history", params={"since": 118}).json()["epoch"] == [
        119,
        120,
    ]

    expected = engine_result(db, dataset["id"], done["hyperparameters"])
    model = service.get(f"/runs/{run['id']}/model").json()
    assert model["n_features"] == 2
    assert model["hidden_units"] == 16
    assert model["classes"] == [0, 1]
    assert model["standardization"] is not None
    np.testing.assert_array_equal(np.array(model["W1"]), expected.model.params.W1)
    np.testing.assert_array_equal(np.array(model["b2"]), expected.model.params.b2)
    np.testing.assert_array_equal(history["train_cost"], expected.history.columns()["train_cost"])

    npz = service.get(f"/runs/{run['id']}/model.npz")
    assert npz.headers["content-type"] == "application/octet-stream"
    with np.load(io.BytesIO(npz.content), allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["W2"], expected.model.params.W2)
        assert arrays["W1"].shape == (16, 2)
        assert arrays["b1"].shape == (16, 1)
        assert arrays["mean"].shape == arrays["scale"].shape == (2, 1)
        meta = json.loads(str(arrays["__meta__"][()]))
    assert meta == {"format": "twolayer.model/1", "activation": "relu", "classes": [0, 1]}
    # the downloaded file is the model itself: it loads and predicts as the run does
    downloaded = Model.from_bytes(npz.content)
    assert npz.content == expected.model.to_bytes()

    X = np.array([[0.0, 0.0], [1.0, -0.5], [-1.0, 0.5]])
    predicted = service.post("/predict", json={"run_id": run["id"], "instances": X.tolist()}).json()
    np.testing.assert_allclose(
        predicted["probabilities"], expected.model.predict_proba(X.T).ravel(), rtol=1e-12
    )
    assert predicted["labels"] == expected.model.predict(X.T) == downloaded.predict(X.T)
    np.testing.assert_array_equal(downloaded.predict_proba(X.T), expected.model.predict_proba(X.T))
    again = service.post(
        f"/runs/{run['id']}/predict", json={"instances": X.tolist(), "threshold": 1.0}
    )
    assert again.json()["labels"] == [0, 0, 0]
    body = problem_of(
        service.post("/predict", json={"run_id": run["id"], "instances": [[0, 0, 0]]}), 422
    )
    assert "expects 2" in body["detail"]
    assert service.post(f"/runs/{run['id']}/cancel").status_code == 409


def test_class_values_come_back_from_predict(service: TestClient) -> None:
    features = [[float(i), float(i % 3)] for i in range(40)]
    labels = ["low" if i < 20 else "high" for i in range(40)]
    dataset = service.post(
        "/datasets", json={"name": "t", "features": features, "labels": labels}
    ).json()
    run = service.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 60}}
    ).json()
    assert wait_for(service, run["id"], ended)["status"] == "succeeded"
    predicted = service.post(
        "/predict", json={"run_id": run["id"], "instances": [[1, 1], [38, 2]]}
    ).json()
    assert predicted["labels"] == ["low", "high"]


def test_warm_start_continues_from_another_runs_weights(service: TestClient) -> None:
    dataset = sample_dataset(service, "circles", 200)
    first = service.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 30, "seed": 1}}
    ).json()
    assert wait_for(service, first["id"], ended)["status"] == "succeeded"
    second = service.post(
        "/runs",
        json={
            "dataset_id": dataset["id"],
            "init_from_run_id": first["id"],
            "hyperparameters": {"epochs": 1, "seed": 1},
        },
    ).json()
    assert wait_for(service, second["id"], ended)["status"] == "succeeded"
    cost_first = service.get(f"/runs/{first['id']}/history").json()["train_cost"]
    cost_second = service.get(f"/runs/{second['id']}/history").json()["train_cost"]
    assert cost_second[0] < cost_first[0]  # starts where the first left off
    m1 = service.get(f"/runs/{first['id']}/model").json()
    m2 = service.get(f"/runs/{second['id']}/model").json()
    assert m1["standardization"] == m2["standardization"]
    bad = service.post(
        "/runs",
        json={
            "dataset_id": dataset["id"],
            "init_from_run_id": first["id"],
            "hyperparameters": {"hidden_units": 3},
        },
    )
    assert "hidden units" in problem_of(bad, 422)["detail"]


def test_cancel_during_training_keeps_the_last_epochs_weights(service: TestClient) -> None:
    dataset = sample_dataset(service, "spiral", 2000)
    run = service.post(
        "/runs",
        json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 100000, "batch_size": 8}},
    ).json()
    wait_for(service, run["id"], lambda r: r["progress"]["epoch"] >= 2)
    assert service.post(f"/runs/{run['id']}/cancel").status_code == 202
    done = wait_for(service, run["id"], ended, timeout=10)
    assert done["status"] == "cancelled"
    epochs = done["progress"]["epoch"]
    assert 2 <= epochs < 100000
    assert service.get(f"/runs/{run['id']}/history").json()["epoch"] == list(range(1, epochs + 1))
    assert done["metrics"] is not None
    predicted = service.post("/predict", json={"run_id": run["id"], "instances": [[0.1, 0.2]]})
    assert predicted.status_code == 200
    assert 0 <= predicted.json()["probabilities"][0] <= 1


def test_a_diverging_run_fails_with_the_reason(service: TestClient) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    labels = ((X[:, 0] * X[:, 1] + 0.3 * X[:, 2]) > 0).astype(int).tolist()
    dataset = service.post(
        "/datasets", json={"name": "d", "features": (X * 1e3).tolist(), "labels": labels}
    ).json()
    run = service.post(
        "/runs",
        json={
            "dataset_id": dataset["id"],
            "hyperparameters": {
                "learning_rate": 1e30,
                "standardize": False,
                "epochs": 50,
                "hidden_units": 8,
                "seed": 3,
            },
        },
    ).json()
    done = wait_for(service, run["id"], ended)
    assert done["status"] == "failed"
    assert "diverged" in done["error"]
    assert "learning_rate" in done["error"]
    problem_of(service.get(f"/runs/{run['id']}/model"), 409)


def test_early_stopping_reports_its_best_epoch(service: TestClient) -> None:
    dataset = sample_dataset(service, "blobs", 300)
    run = service.post(
        "/runs",
        json={
            "dataset_id": dataset["id"],
            "hyperparameters": {
                "epochs": 3000,
                "early_stopping": True,
                "patience": 3,
                "optimizer": "adam",
                "learning_rate": 0.05,
            },
        },
    ).json()
    done = wait_for(service, run["id"], ended)
    assert done["status"] == "succeeded"
    assert done["best_epoch"] is not None
    assert done["progress"]["epoch"] == done["best_epoch"] + 3 < 3000


def test_events_stream_progress_until_the_end(service: TestClient) -> None:
    dataset = sample_dataset(service, "moons", 200)
    run = service.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 50}}
    ).json()
    seen = events(service, f"/runs/{run['id']}/events")
    assert seen[-1]["event"] == "end"
    assert seen[-1]["data"]["status"] == "succeeded"


def test_settings_reach_the_workers(settings: Settings, db: Database) -> None:
    """The lease is taken in the worker process, for its own settings' lease_seconds:
    the API's unusual value, seen in the database, reached it."""
    app = create_app(settings.model_copy(update={"lease_seconds": 987.0}))
    with TestClient(app) as client:
        run_id = start_run(client, sample_dataset(client, "spiral", 2000), epochs=100000)
        wait_for(client, run_id, lambda r: r["status"] == "running")
        with db.read() as session:
            run = session.get(Run, run_id)
            assert run is not None
            assert run.lease_expires_at is not None
            left = (run.lease_expires_at - utcnow()).total_seconds()
        assert 900 < left <= 987, left  # the default is 30 s
        client.post(f"/runs/{run_id}/cancel")
        assert wait_for(client, run_id, ended)["status"] == "cancelled"
    configure(None)
