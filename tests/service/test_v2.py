"""The Open Inference Protocol (KServe V2 REST): requests written from the
protocol's specification, in process, and tritonclient against a live server."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings
from tests.helpers import start_serve
from tests.service.conftest import problem_of, sample_dataset, wait_for
from tests.service.test_registry import trained

ROWS = [[0.0, 1.0], [1.0, -0.5], [2.0, 0.25]]


def tensor(rows: Any = ROWS, datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    data = np.asarray(rows, dtype=np.float64)
    body = {"name": "input", "shape": list(data.shape), "datatype": datatype}
    return {**body, "data": data.ravel().tolist(), **extra}


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]
    message: str = body["error"]
    return message


@pytest.fixture
def model(api: TestClient, settings: Settings) -> list[str]:
    """Model "m" with versions 1 and 2 (alias champion → 1)."""
    dataset = sample_dataset(api, n=60)
    runs = [trained(api, settings, dataset, seed=s, standardize=True) for s in (1, 2)]
    api.post("/models", json={"name": "m"})
    for run_id in runs:
        api.post("/models/m/versions", json={"run_id": run_id})
    api.put("/models/m/aliases/champion", json={"version": 1})
    return runs


def test_health_and_metadata(api: TestClient, model: list[str]) -> None:
    assert api.get("/v2/health/live").json() == {"live": True}
    assert api.get("/v2/health/ready").json() == {"ready": True}
    server = api.get("/v2").json()
    assert server["name"] == "twolayer"
    assert server["extensions"] == []
    meta = api.get("/v2/models/m").json()
    assert meta["name"] == "m"
    assert meta["versions"] == ["2", "1"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]
    assert [o["name"] for o in meta["outputs"]] == [
        "probability",
        "label",
        "gradient",
        "attribution",
    ]
    assert meta["outputs"][1]["datatype"] == "INT64"
    assert api.get("/v2/models/m/versions/champion").json()["versions"] == ["1"]
    assert api.get("/v2/models/m/ready").json() == {"name": "m", "ready": True}
    assert api.get("/v2/models/m/versions/1/ready").status_code == 200
    error_of(api.get("/v2/models/nope"), 404)
    error_of(api.get("/v2/models/nope/ready"), 404)
    error_of(api.get("/v2/models/m/versions/9/ready"), 404)
    error_of(api.get("/v2/models/m/versions/staging"), 404)
    error_of(api.get("/v2/nothing"), 404)


def test_infer_matches_predict_for_every_way_of_naming_a_version(
    api: TestClient, model: list[str]
) -> None:
    expected = [api.post(f"/runs/{r}/predict", json={"instances": ROWS}).json() for r in model]
    for path, version in [
        ("/v2/models/m/infer", 2),
        ("/v2/models/m/versions/1/infer", 1),
        ("/v2/models/m/versions/champion/infer", 1),
        ("/v2/models/m/versions/latest/infer", 2),
    ]:
        answer = api.post(path, json={"id": "r-1", "inputs": [tensor()]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["model_name"], body["model_version"], body["id"]) == ("m", str(version), "r-1")
        probability, label = body["outputs"]
        assert probability == {
            "name": "probability",
            "datatype": "FP64",
            "shape": [3],
            "data": expected[version - 1]["probabilities"],
        }
        assert label["data"] == expected[version - 1]["labels"]
        assert label["datatype"] == "INT64"

    nested = api.post("/v2/models/m/infer", json={"inputs": [{**tensor(), "data": ROWS}]})
    assert nested.json()["outputs"][0]["data"] == expected[1]["probabilities"]
    assert "id" not in nested.json()

    only_label = api.post(
        "/v2/models/m/infer",
        json={
            "inputs": [tensor()],
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
            "parameters": {"threshold": 0.0, "binary_data_output": False},
        },
    ).json()
    assert [o["name"] for o in only_label["outputs"]] == ["label"]
    assert only_label["outputs"][0]["data"] == [1, 1, 1]


def test_fp32_inputs_are_rounded_to_float32_first(api: TestClient, model: list[str]) -> None:
    rows = np.array([[0.1, 1e-3], [1 / 3, -2 / 3]])
    rounded = rows.astype(np.float32).astype(np.float64).tolist()
    expected = api.post(f"/runs/{model[1]}/predict", json={"instances": rounded}).json()
    body = api.post("/v2/models/m/infer", json={"inputs": [tensor(rows, "FP32")]}).json()
    probability = body["outputs"][0]
    assert probability["datatype"] == "FP32"
    assert np.allclose(probability["data"], expected["probabilities"], rtol=0, atol=1e-7)
    assert body["outputs"][1]["data"] == expected["labels"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"inputs": [tensor(datatype="INT32")]}, 422),
        ({"inputs": [{**tensor(), "name": "x"}]}, 422),
        ({"inputs": [{**tensor(), "shape": [3, 3]}]}, 400),
        ({"inputs": [{**tensor(), "shape": [2, 2]}]}, 400),
        ({"inputs": [{**tensor(), "shape": [6]}]}, 400),
        ({"inputs": [{**tensor(), "data": [[0.0, 1.0], [1.0]]}]}, 400),
        ({"inputs": [{**tensor(), "data": [True, 1, 2, 3, 4, 5]}]}, 422),
        ({"inputs": [{**tensor(), "data": ["1", 1, 2, 3, 4, 5]}]}, 422),
        ({"inputs": [tensor(datatype="FP32", data=[1e39, 0, 0, 0, 0, 0])]}, 400),
        ({"inputs": []}, 422),
        ({"inputs": [tensor(), tensor()]}, 422),
        ({"inputs": [tensor()], "outputs": [{"name": "logits"}]}, 422),
        (
            {
                "inputs": [tensor()],
                "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
            },
            400,
        ),
        ({"inputs": [tensor()], "parameters": {"binary_data_output": True}}, 400),
        ({"inputs": [tensor(parameters={"binary_data_size": 48})]}, 400),
        ({"inputs": [tensor()], "parameters": {"threshold": 2}}, 400),
        ({"inputs": [tensor()], "parameters": {"threshold": "high"}}, 400),
        ({"inputs": [tensor()], "parameters": {"threshold": 10**400}}, 400),
        ({"inputs": [tensor()], "surprise": 1}, 422),
    ],
)
def test_bad_infer_requests_are_protocol_errors(
    api: TestClient, model: list[str], body: dict[str, Any], status: int
) -> None:
    error_of(api.post("/v2/models/m/infer", json=body), status)


def test_malformed_and_unknown_are_protocol_errors_and_the_rest_stays_problem_json(
    api: TestClient, model: list[str]
) -> None:
    error_of(api.post("/v2/models/m/infer", content=b"{not json"), 400)
    error_of(api.post("/v2/models/nope/infer", json={"inputs": [tensor()]}), 404)
    error_of(api.post("/v2/models/m/versions/7/infer", json={"inputs": [tensor()]}), 404)
    error_of(api.post("/v2/models/bad@name/infer", json={"inputs": [tensor()]}), 404)
    error_of(api.post("/v2/models/m/versions/0/infer", json={"inputs": [tensor()]}), 404)
    problem_of(api.get("/models/nope"), 404)  # outside /v2: problem+json as ever


def test_a_key_is_asked_for_under_v2_too(settings: Settings) -> None:
    from app.core.settings import configure
    from app.main import create_app
    from tests.service.conftest import RecordingExecutor, secured_settings

    app = create_app(
        secured_settings(settings.database_url), executor_factory=lambda _: RecordingExecutor()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        message = error_of(client.post("/v2/models/m/infer", json={"inputs": [tensor()]}), 401)
        assert "API key" in message
        error_of(client.get("/v2/models/m"), 401)
    configure(None)


# ------------------------------------------------------------ tritonclient, live


@pytest.fixture
def live(tmp_path: Path) -> Iterator[str]:
    process, base = start_serve(
        tmp_path, {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}"}
    )
    try:
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_tritonclient_speaks_to_a_live_server(live: str) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    with httpx.Client(base_url=live, timeout=30) as http:
        dataset = http.post(
            "/datasets/samples", json={"kind": "moons", "n_samples": 80, "noise": 0.1}
        ).json()
        run = http.post(
            "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 20}}
        ).json()
        wait_for(http, run["id"], lambda r: r["status"] == "succeeded")  # type: ignore[arg-type]
        http.post("/models", json={"name": "moons"})
        http.post("/models/moons/versions", json={"run_id": run["id"]})
        http.put("/models/moons/aliases/champion", json={"version": 1})
        expected = http.post(f"/runs/{run['id']}/predict", json={"instances": ROWS}).json()

    client = triton.InferenceServerClient(url=live.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_server_metadata()["name"] == "twolayer"
        assert client.is_model_ready("moons")
        assert client.is_model_ready("moons", "champion")
        assert client.get_model_metadata("moons")["versions"] == ["1"]
        X = np.asarray(ROWS, dtype=np.float64)
        given = triton.InferInput("input", list(X.shape), "FP64")
        given.set_data_from_numpy(X, binary_data=False)
        wanted = [
            triton.InferRequestedOutput(name, binary_data=False)
            for name in ("probability", "label")
        ]
        result = client.infer("moons", [given], model_version="champion", outputs=wanted)
        assert result.as_numpy("probability").tolist() == expected["probabilities"]
        assert result.as_numpy("label").tolist() == expected["labels"]
        assert result.get_response()["model_version"] == "1"
        with pytest.raises(InferenceServerException, match=r"no model is named|no versions"):
            client.infer("nope", [given], outputs=wanted)
    finally:
        client.close()
