"""Explanations through the API: ∂ŷ/∂x and x·∂ŷ/∂x per row, checked against
finite differences of /predict's own probabilities."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.schemas.predict import LARGE_BODY_BYTES
from tests.service.conftest import problem_of, sample_dataset
from tests.service.test_registry import trained


@pytest.fixture
def run_id(api: TestClient, settings: Settings) -> str:
    dataset = sample_dataset(api, n=100)
    return trained(api, settings, dataset, hidden_activation="tanh", standardize=True)


def predict(api: TestClient, run_id: str, rows: Any, **extra: Any) -> dict[str, Any]:
    response = api.post(f"/runs/{run_id}/predict", json={"instances": rows, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_gradients_are_the_finite_differences_of_predict(api: TestClient, run_id: str) -> None:
    X = np.random.default_rng(0).normal(size=(5, 2))
    body = predict(api, run_id, X.tolist(), explain=True)
    assert list(body) == ["run_id", "probabilities", "labels", "gradients", "attributions"]
    G = np.array(body["gradients"])
    assert G.shape == (5, 2)
    h = 1e-6
    for j in range(2):
        step = np.zeros_like(X)
        step[:, j] = h
        up = np.array(predict(api, run_id, (X + step).tolist())["probabilities"])
        down = np.array(predict(api, run_id, (X - step).tolist())["probabilities"])
        np.testing.assert_allclose(G[:, j], (up - down) / (2 * h), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(np.array(body["attributions"]), X * G)

    plain = predict(api, run_id, X.tolist())
    assert list(plain) == ["run_id", "probabilities", "labels"]  # as before explain existed
    assert plain["probabilities"] == body["probabilities"]


def test_explain_through_predict_v2_and_a_large_body(api: TestClient, run_id: str) -> None:
    api.post("/models", json={"name": "explained"})
    api.post("/models/explained/versions", json={"run_id": run_id})
    rows = np.random.default_rng(1).normal(size=(9000, 2))
    body = json.dumps({"model": "explained", "instances": rows.tolist(), "explain": True})
    assert len(body) > LARGE_BODY_BYTES  # the streaming decoder's path
    large = api.post("/predict", content=body, headers={"content-type": "application/json"})
    assert large.status_code == 200, large.text
    small = predict(api, run_id, rows[:3].tolist(), explain=True)
    np.testing.assert_allclose(large.json()["gradients"][:3], small["gradients"], rtol=1e-12)

    infer = api.post(
        "/v2/models/explained/infer",
        json={
            "inputs": [
                {"name": "input", "shape": [3, 2], "datatype": "FP64", "data": rows[:3].tolist()}
            ],
            "outputs": [{"name": "gradient"}, {"name": "attribution"}],
        },
    ).json()
    gradient, attribution = infer["outputs"]
    assert (gradient["shape"], gradient["datatype"]) == ([3, 2], "FP64")
    np.testing.assert_allclose(np.reshape(gradient["data"], (3, 2)), small["gradients"], rtol=1e-12)
    np.testing.assert_allclose(
        np.reshape(attribution["data"], (3, 2)), small["attributions"], rtol=1e-12
    )


@pytest.mark.parametrize("explain", ["yes", 1, None, [True]])
def test_a_bad_explain_is_422(api: TestClient, run_id: str, explain: Any) -> None:
    response = api.post(f"/runs/{run_id}/predict", json={"instances": [[0, 0]], "explain": explain})
    problem_of(response, 422)
