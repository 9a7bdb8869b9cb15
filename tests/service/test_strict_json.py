"""Every answer is strict JSON: no NaN or Infinity, which `json.loads` with a
`parse_constant` that raises (as strict parsers do) refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.services import run_history
from app.services.run_history import Event
from tests.service.conftest import ended, sample_dataset, start_run, wait_for


def strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_predictions_on_extreme_inputs_are_finite(service: TestClient) -> None:
    """±1e308 used to answer NaN probabilities (invalid JSON); now σ's limits."""
    dataset = sample_dataset(service, n=100)
    run_id = start_run(service, dataset, epochs=20, seed=0)
    assert wait_for(service, run_id, ended)["status"] == "succeeded"
    rows = [[1e308, 1e308], [-1e308, 1e308], [1e308, -1.7976931348623157e308], [5e-324, 0.0]]
    response = service.post("/predict", json={"run_id": run_id, "instances": rows})
    assert response.status_code == 200, response.text
    probabilities = strict(response.text)["probabilities"]
    assert len(probabilities) == 4
    assert all(0 <= p <= 1 for p in probabilities)
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/history", f"/runs/{run_id}/model", "/runs"):
        strict(service.get(path).text)


def test_events_write_a_non_finite_figure_as_null(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = sample_dataset(api, n=50)
    run_id = start_run(api, dataset, epochs=5)

    async def diverged(**_: Any) -> AsyncIterator[Event]:
        data = {"epoch": [1, 2], "train_cost": [0.5, float("inf")], "validation_cost": [None, 1]}
        yield Event(event="epochs", id=2, data={**data, "nan": float("nan")})

    monkeypatch.setattr(run_history, "follow_run", diverged)
    text = api.get(f"/runs/{run_id}/events").text
    data = [strict(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert data == [
        {"epoch": [1, 2], "train_cost": [0.5, None], "validation_cost": [None, 1], "nan": None}
    ]
