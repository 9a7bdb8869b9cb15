"""The Swagger tour, with the examples as they stand, and the documented
response examples held to the responses the tour really gets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key

# what changes from one run of the tour to the next
# (with auth on, a sample dataset's id depends on its owner too)
VARYING = {"id", "run_id", "dataset_id", "created_at", "started_at", "finished_at"}
VARYING |= {"environments"}  # the worker's: versions, BLAS, machine


def component(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return found


def request_example(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    content = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
    value: dict[str, Any] = component(spec, content["schema"])["examples"][0]
    return value


def parameter_example(spec: dict[str, Any], method: str, path: str, name: str) -> Any:
    (parameter,) = [p for p in spec["paths"][path][method]["parameters"] if p["name"] == name]
    (example,) = parameter["examples"].values()  # the one Swagger UI fills in
    return example["value"]


def response_example(spec: dict[str, Any], method: str, path: str, status: str) -> Any:
    content = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    return component(spec, content["schema"])["examples"][0]


def like(example: Any, real: Any, where: str = "") -> None:
    """The example has the real answer's shape and, where a value does not vary
    between runs, its value (floats to the example's rounding)."""
    if isinstance(example, dict):
        assert isinstance(real, dict), where
        assert set(example) == set(real), (where, set(example) ^ set(real))
        for key, value in example.items():
            if key not in VARYING:
                like(value, real[key], f"{where}.{key}")
            else:
                assert type(value) is type(real[key]) or real[key] is None, (where, key)
    elif isinstance(example, list):
        assert isinstance(real, list), where
        assert len(example) == len(real), where
        for i, (a, b) in enumerate(zip(example, real, strict=True)):
            like(a, b, f"{where}[{i}]")
    elif isinstance(example, float) and not isinstance(real, bool):
        assert real == pytest.approx(example, rel=2e-3, abs=2e-4), where
    else:
        assert example == real, (where, example, real)
        assert type(example) is type(real), (where, example, real)


@pytest.fixture(params=["off", "required"])
def tour_client(request: pytest.FixtureRequest, settings: Settings) -> Iterator[TestClient]:
    """The API with real local workers, with auth off and with a key."""
    headers = {}
    if request.param == "required":
        db = Database(settings.database_url)
        headers["Authorization"] = f"Bearer {create_key(db=db, owner='tourist')}"
        db.dispose()
    app = create_app(settings.model_copy(update={"auth": request.param}))
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        yield client
    configure(None)


def test_the_tour_pressed_in_order_with_its_examples(tour_client: TestClient) -> None:
    """POST /datasets/samples → POST /runs → GET /runs?name= until it has ended →
    POST /predict, each with its own example; nothing copied from one to the next."""
    service = tour_client
    spec = service.get("/openapi.json").json()
    created = service.post(
        "/datasets/samples", json=request_example(spec, "post", "/datasets/samples")
    )
    assert created.status_code == 201, created.text
    like(response_example(spec, "post", "/datasets/samples", "201"), created.json())
    again = service.post(
        "/datasets/samples", json=request_example(spec, "post", "/datasets/samples")
    )
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]

    queued = service.post("/runs", json=request_example(spec, "post", "/runs"))
    assert queued.status_code == 202, queued.text
    assert queued.json()["dataset_id"] == created.json()["id"]
    assert queued.headers["location"] == f"/runs/{queued.json()['id']}"

    name = parameter_example(spec, "get", "/runs", "name")
    deadline = time.monotonic() + 60
    while True:
        page = service.get("/runs", params={"name": name})
        assert page.status_code == 200
        (run,) = page.json()["items"]
        if run["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert run["id"] == queued.json()["id"]
    like(response_example(spec, "get", "/runs/{run_id}", "200"), run)

    predicted = service.post("/predict", json=request_example(spec, "post", "/predict"))
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["run_id"] == run["id"]
    like(response_example(spec, "post", "/predict", "200"), predicted.json())

    history = service.get(f"/runs/{run['id']}/history", params={"since": 198})
    like(response_example(spec, "get", "/runs/{run_id}/history", "200"), history.json())


def test_error_examples_are_the_errors_the_api_gives(service: TestClient) -> None:
    spec = service.get("/openapi.json").json()
    missing = service.get("/runs/9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c")
    documented = spec["paths"]["/runs/{run_id}"]["get"]["responses"]["404"]["content"]
    (example,) = documented["application/problem+json"]["examples"].values()
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json() == example["value"]
    bad = service.post("/runs", json={"dataset_id": "x", "hyperparameters": {"learning_rate": 0}})
    documented = spec["paths"]["/runs"]["post"]["responses"]["422"]["content"]
    validation = documented["application/problem+json"]["examples"]["validation"]["value"]
    assert bad.json() == validation
