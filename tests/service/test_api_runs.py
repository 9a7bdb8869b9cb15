"""Runs and prediction through the HTTP API, with an executor that trains nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import RecordingExecutor, problem_of, sample_dataset


def runs_total(api: TestClient) -> int:
    n: int = api.get("/runs").json()["total"]
    return n


def test_create_run_is_202_queued_with_location_and_delivered(
    api: TestClient, recorder: RecordingExecutor
) -> None:
    dataset = sample_dataset(api)
    response = api.post(
        "/runs",
        json={"dataset_id": dataset["id"], "name": "first", "hyperparameters": {"epochs": 5}},
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert response.headers["location"] == f"/runs/{run['id']}"
    assert run["status"] == "queued"
    assert run["name"] == "first"
    assert run["progress"] == {"epoch": 0, "epochs": 5}
    assert run["metrics"] is None
    assert run["attempts"] == 0
    hp = run["hyperparameters"]
    assert isinstance(hp["seed"], int)
    assert hp["init"] == "he"
    assert hp["batch_size"] == 64
    assert recorder.submitted == [run["id"]]
    assert api.get(f"/runs/{run['id']}").json() == run


def test_defaults_are_the_designs(api: TestClient) -> None:
    dataset = sample_dataset(api)
    hp = api.post("/runs", json={"dataset_id": dataset["id"]}).json()["hyperparameters"]
    expected = {
        "hidden_units": 16,
        "hidden_activation": "relu",
        "learning_rate": 0.1,
        "epochs": 100,
        "batch_size": 64,
        "optimizer": "sgd",
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
        "l2": 0.0,
        "standardize": True,
        "validation_fraction": 0.2,
        "early_stopping": False,
        "patience": 10,
        "min_delta": 1e-4,
        "shuffle": True,
        "dtype": "float64",
    }
    assert {k: hp[k] for k in expected} == expected
    tanh = api.post(
        "/runs",
        json={"dataset_id": dataset["id"], "hyperparameters": {"hidden_activation": "tanh"}},
    ).json()
    assert tanh["hyperparameters"]["init"] == "xavier"


@pytest.mark.parametrize(
    ("hyperparameters", "fragment"),
    [
        ({"learning_rate": 0}, "greater than 0"),
        ({"learning_rate": "0.1"}, "valid number"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"epochs": 1.5}, "valid integer"),
        ({"epochs": True}, "valid integer"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"hidden_units": 10**6}, "more than the limit"),
        ({"epochs": 10**9}, "more than the limit"),
        ({"momentum": 1.0}, "less than 1"),
        ({"validation_fraction": 0.7}, "less than or equal to 0.5"),
        ({"early_stopping": True, "validation_fraction": 0.0}, "needs a validation set"),
        ({"optimizer": "rmsprop"}, "sgd"),
        ({"dtype": "float16"}, "float64"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"unknown": 1}, "unknown field 'unknown'"),
        ({"learning_rat": 0.1}, "unknown field 'learning_rat'; did you mean 'learning_rate'?"),
    ],
)
def test_bad_hyperparameters_are_422_and_write_nothing(
    api: TestClient, recorder: RecordingExecutor, hyperparameters: dict[str, Any], fragment: str
) -> None:
    dataset = sample_dataset(api)
    body = problem_of(
        api.post("/runs", json={"dataset_id": dataset["id"], "hyperparameters": hyperparameters}),
        422,
    )
    assert fragment in body["detail"] or any(fragment in e["msg"] for e in body["errors"])
    assert runs_total(api) == 0
    assert recorder.submitted == []


def test_work_limit(tmp_path: Any) -> None:
    from app.core.settings import configure
    from app.db.migrate import upgrade
    from app.main import create_app
    from tests.service.conftest import make_settings

    settings = make_settings(tmp_path, max_work=200 * 2 * 16 * 100 - 1)
    upgrade(settings.database_url)
    try:
        with TestClient(
            create_app(settings, executor_factory=lambda _: RecordingExecutor())
        ) as api:
            dataset = sample_dataset(api, n=200)
            body = problem_of(api.post("/runs", json={"dataset_id": dataset["id"]}), 422)
            assert "over the limit" in body["detail"]
            assert runs_total(api) == 0
            ok = api.post(
                "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 99}}
            )
            assert ok.status_code == 202
    finally:
        configure(None)


def test_unknown_ids_are_404(api: TestClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    body = problem_of(api.post("/runs", json={"dataset_id": missing}), 404)
    assert missing in body["detail"]
    for method, path in [
        ("GET", f"/runs/{missing}"),
        ("DELETE", f"/runs/{missing}"),
        ("GET", f"/runs/{missing}/history"),
        ("GET", f"/runs/{missing}/events"),
        ("POST", f"/runs/{missing}/cancel"),
        ("POST", f"/runs/{missing}/rerun"),
        ("GET", f"/runs/{missing}/model"),
        ("GET", f"/runs/{missing}/model.npz"),
    ]:
        problem_of(api.request(method, path), 404)
    problem_of(api.post("/predict", json={"run_id": missing, "instances": [[0, 0]]}), 404)
    problem_of(api.post(f"/runs/{missing}/predict", json={"instances": [[0, 0]]}), 404)
    problem_of(api.get("/no/such/path"), 404)
    assert runs_total(api) == 0


def test_a_run_without_weights_is_409_for_model_and_predict(api: TestClient) -> None:
    dataset = sample_dataset(api)
    run = api.post("/runs", json={"dataset_id": dataset["id"]}).json()
    problem_of(api.get(f"/runs/{run['id']}/model"), 409)
    problem_of(api.get(f"/runs/{run['id']}/model.npz"), 409)
    problem_of(api.post("/predict", json={"run_id": run["id"], "instances": [[0, 0]]}), 409)
    problem_of(api.post(f"/runs/{run['id']}/predict", json={"instances": [[0, 0]]}), 409)
    body = problem_of(
        api.post("/runs", json={"dataset_id": dataset["id"], "init_from_run_id": run["id"]}), 409
    )
    assert "no weights" in body["detail"]


def test_cancel_a_queued_run_at_once_then_409(api: TestClient) -> None:
    dataset = sample_dataset(api)
    run = api.post("/runs", json={"dataset_id": dataset["id"]}).json()
    cancelled = api.post(f"/runs/{run['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    body = problem_of(api.post(f"/runs/{run['id']}/cancel"), 409)
    assert "already ended" in body["detail"]


def test_listing_filters_and_deleting(api: TestClient) -> None:
    a = sample_dataset(api)
    b = sample_dataset(api, "xor")
    r1 = api.post("/runs", json={"dataset_id": a["id"]}).json()
    r2 = api.post("/runs", json={"dataset_id": b["id"]}).json()
    api.post(f"/runs/{r2['id']}/cancel")
    assert {r["id"] for r in api.get("/runs").json()["items"]} == {r1["id"], r2["id"]}
    queued = api.get("/runs", params={"status": "queued"}).json()
    assert [r["id"] for r in queued["items"]] == [r1["id"]]
    assert queued["total"] == 1
    by_dataset = api.get("/runs", params={"dataset_id": b["id"]}).json()
    assert [r["id"] for r in by_dataset["items"]] == [r2["id"]]
    problem_of(api.get("/runs", params={"status": "sleeping"}), 422)
    body = problem_of(api.delete(f"/datasets/{a['id']}"), 409)
    assert "used by 1 run" in body["detail"]
    assert api.delete(f"/runs/{r1['id']}").status_code == 204
    problem_of(api.get(f"/runs/{r1['id']}"), 404)
    assert api.delete(f"/datasets/{a['id']}").status_code == 204


def test_history_of_a_queued_run_is_empty(api: TestClient) -> None:
    dataset = sample_dataset(api)
    run = api.post("/runs", json={"dataset_id": dataset["id"]}).json()
    assert api.get(f"/runs/{run['id']}/history").json() == {
        "epoch": [],
        "train_cost": [],
        "validation_cost": [],
        "train_accuracy": [],
        "validation_accuracy": [],
    }
    problem_of(api.get(f"/runs/{run['id']}/history", params={"since": -1}), 422)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"instances": []}, 422),
        ({"instances": [[0, 0], [1]]}, 422),
        ({"instances": [[0, "a"]]}, 422),
        ({"instances": [[0, 0]], "threshold": 2}, 422),
        ({"instances": [[0, 0]], "extra": True}, 422),
    ],
)
def test_bad_predict_requests_are_422(
    api: TestClient, payload: dict[str, Any], status: int
) -> None:
    problem_of(api.post("/predict", json={"run_id": "x", **payload}), status)


def test_health_and_ready(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "executor": "ok"}


def test_ready_is_503_naming_the_failing_part(api: TestClient, recorder: RecordingExecutor) -> None:
    recorder.problem = lambda: "no local worker process is alive"  # type: ignore[method-assign]
    ready = api.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["executor"] == "error: no local worker process is alive"


def test_openapi_has_examples_for_the_tour(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/datasets/samples", "/runs", "/predict"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].rsplit("/", 1)[-1]
        assert spec["components"]["schemas"][name].get("examples"), path
    assert api.get("/docs").status_code == 200


def test_datasets_and_runs_by_name(api: TestClient, recorder: RecordingExecutor) -> None:
    """POST /runs takes exactly one of dataset_id and dataset_name (the owner's
    newest dataset of that name); POST /predict one of run_id and run_name."""
    dataset = sample_dataset(api)
    by_name = api.post("/runs", json={"dataset_name": dataset["name"], "name": "n"})
    assert by_name.status_code == 202, by_name.text
    assert by_name.json()["dataset_id"] == dataset["id"]
    both = {"dataset_id": dataset["id"], "dataset_name": dataset["name"]}
    for body in (both, {"name": "x"}):
        detail = problem_of(api.post("/runs", json=body), 422)["detail"]
        assert "exactly one of dataset_id and dataset_name" in detail
    assert (
        "no dataset is named"
        in problem_of(api.post("/runs", json={"dataset_name": "nothing"}), 404)["detail"]
    )
    rows = {"instances": [[0.0, 0.0]]}
    for body in ({**rows, "run_id": by_name.json()["id"], "run_name": "n"}, rows):
        detail = problem_of(api.post("/predict", json=body), 422)["detail"]
        assert "exactly one of run_id, run_name and model" in detail
    assert (
        "no run is named"
        in problem_of(api.post("/predict", json={**rows, "run_name": "nothing"}), 404)["detail"]
    )
    # the newest of that name: a queued run has no weights yet
    problem_of(api.post("/predict", json={**rows, "run_name": "n"}), 409)
    assert runs_total(api) == 1
    assert len(recorder.submitted) == 1
