"""What the dashboard draws: the downsampled chart of a run's history (every
bucket's extremes kept), the history as CSV, and the decision boundary the
server computes from the run's own model."""

from __future__ import annotations

import csv
import io
import math
import time

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from app.db.models import RunEpoch
from app.db.session import Database
from app.services.charts import BOUNDARY_POINTS_MAX, _axis, keep_extremes
from tests.service.conftest import (
    bearer,
    ended,
    problem_of,
    sample_dataset,
    start_run,
    wait_for,
)

series_values = st.floats(allow_nan=True, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 400),
    width=st.integers(1, 4),
    points=st.integers(16, 120),
)
def test_downsampling_keeps_every_buckets_extremes_within_the_budget(
    data: st.DataObject, n: int, width: int, points: int
) -> None:
    series = [
        np.array(data.draw(st.lists(series_values, min_size=n, max_size=n)), dtype=np.float64)
        for _ in range(width)
    ]
    kept, bucket = keep_extremes(series, points)
    assert len(kept) <= max(points, 0)
    assert list(kept) == sorted(set(kept.tolist()))  # sorted, unique
    if n <= points:
        assert list(kept) == list(range(n))
        assert bucket == 1
        return
    assert kept[0] == 0
    assert kept[-1] == n - 1
    for start in range(0, n, bucket):
        inside = kept[(kept >= start) & (kept < start + bucket)]
        assert len(inside) > 0  # no bucket goes unseen
        for values in series:
            finite = values[start : start + bucket][np.isfinite(values[start : start + bucket])]
            if len(finite):
                shown = values[inside]
                assert np.nanmin(shown) == finite.min()
                assert np.nanmax(shown) == finite.max()


def test_a_100000_epoch_history_charts_in_a_thousand_points_with_its_spikes(
    api: TestClient, db: Database
) -> None:
    run_id = start_run(api, sample_dataset(api), epochs=100_000, validation_fraction=0.2)
    epochs = np.arange(1, 100_001)
    train_cost = 1 / np.sqrt(epochs)
    validation_cost = train_cost + 0.01
    train_cost[54_320] = 50.0  # one epoch diverged (epoch 54 321)
    validation_cost[77_776] = 0.0  # one dipped (epoch 77 777)
    rows = [
        {
            "run_id": run_id,
            "epoch": int(e),
            "train_cost": float(c),
            "validation_cost": float(v),
            "train_accuracy": 0.9,
            "validation_accuracy": 0.8,
        }
        for e, c, v in zip(epochs, train_cost, validation_cost, strict=True)
    ]
    with db.write() as session:
        session.execute(insert(RunEpoch), rows)
    chart = api.get(f"/runs/{run_id}/chart").json()
    assert chart["epochs"] == 100_000
    assert 1 < len(chart["epoch"]) <= 1000
    assert chart["bucket"] > 100
    assert chart["epoch"][0] == 1
    assert chart["epoch"][-1] == 100_000
    shown = dict(zip(chart["epoch"], chart["train_cost"], strict=True))
    assert shown[54_321] == 50.0
    assert dict(zip(chart["epoch"], chart["validation_cost"], strict=True))[77_777] == 0.0
    # every point is the real epoch's figures
    for epoch, cost in shown.items():
        assert cost == float(train_cost[epoch - 1])
    small = api.get(f"/runs/{run_id}/chart", params={"points": 16}).json()
    assert len(small["epoch"]) <= 16
    assert 54_321 in small["epoch"]


def test_a_short_history_charts_whole_and_downloads_as_csv(service: TestClient) -> None:
    dataset = sample_dataset(service, "moons", 200)
    run_id = start_run(service, dataset, epochs=120, validation_fraction=0.25)
    wait_for(service, run_id, ended)
    history = service.get(f"/runs/{run_id}/history").json()
    chart = service.get(f"/runs/{run_id}/chart").json()
    assert chart["bucket"] == 1
    assert {k: chart[k] for k in history} == history
    few = service.get(f"/runs/{run_id}/chart", params={"points": 20}).json()
    assert len(few["epoch"]) <= 20
    best = int(np.argmin(history["validation_cost"]))
    assert history["epoch"][best] in few["epoch"]  # the best epoch is always drawn

    response = service.get(f"/runs/{run_id}/history.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["epoch"]) for r in rows] == history["epoch"]
    for name in ("train_cost", "validation_cost", "train_accuracy", "validation_accuracy"):
        assert [float(r[name]) for r in rows] == history[name]  # exact: repr round-trips


def test_a_history_without_validation_has_empty_cells_and_null_series(
    service: TestClient,
) -> None:
    run_id = start_run(service, sample_dataset(service), epochs=30, validation_fraction=0)
    wait_for(service, run_id, ended)
    rows = list(csv.DictReader(io.StringIO(service.get(f"/runs/{run_id}/history.csv").text)))
    assert len(rows) == 30
    assert {r["validation_cost"] for r in rows} == {""}
    chart = service.get(f"/runs/{run_id}/chart").json()
    assert chart["validation_cost"] is None
    assert chart["validation_accuracy"] is None


def test_a_queued_run_has_an_empty_chart_and_a_header_only_csv(api: TestClient) -> None:
    run_id = start_run(api, sample_dataset(api))
    chart = api.get(f"/runs/{run_id}/chart").json()
    assert chart["epochs"] == 0
    assert chart["epoch"] == []
    text = api.get(f"/runs/{run_id}/history.csv").text
    assert text == "epoch,train_cost,validation_cost,train_accuracy,validation_accuracy\n"
    problem = problem_of(api.get(f"/runs/{run_id}/boundary"), 409)
    assert problem["type"] == "/problems/run-has-no-model"


def test_the_boundary_is_the_runs_own_model_over_the_plane(service: TestClient) -> None:
    dataset = sample_dataset(service, "moons", 300)
    run_id = start_run(service, dataset, epochs=300, learning_rate=0.5, hidden_units=16)
    assert wait_for(service, run_id, ended)["status"] == "succeeded"
    boundary = service.get(f"/runs/{run_id}/boundary", params={"resolution": 25}).json()
    assert boundary["features"] == dataset["feature_names"]
    assert boundary["epoch"] == 300
    assert len(boundary["x"]) == len(boundary["y"]) == 25
    P = np.array(boundary["probability"])
    assert P.shape == (25, 25)
    assert P.min() >= 0
    assert P.max() <= 1
    assert P.min() < 0.1 < 0.9 < P.max()  # both classes' regions are on the plane
    # the grid covers the points, with a margin
    points = boundary["points"]
    assert boundary["points_total"] == 300
    assert len(points["x"]) == len(points["label"]) == 300
    assert min(boundary["x"]) < min(points["x"])
    assert max(boundary["y"]) > max(points["y"])
    # ŷ on the grid is what /predict answers for those points
    i, j = 7, 19
    answer = service.post(
        "/predict",
        json={"run_id": run_id, "instances": [[boundary["x"][j], boundary["y"][i]]]},
    ).json()
    assert math.isclose(answer["probabilities"][0], P[i, j], abs_tol=1e-5)
    # the points sit on the side of the boundary of their label, mostly
    labels = np.array(points["label"])
    on_grid = P[
        np.searchsorted(boundary["y"], points["y"]).clip(0, 24),
        np.searchsorted(boundary["x"], points["x"]).clip(0, 24),
    ]
    assert np.mean((on_grid > 0.5) == (labels == 1)) > 0.85


def test_boundary_needs_two_features_and_a_sane_resolution(service: TestClient) -> None:
    three = service.post(
        "/datasets",
        json={
            "name": "three",
            "features": [[0, 1, 2], [1, 2, 3], [2, 3, 1], [3, 1, 0]],
            "labels": [0, 1, 0, 1],
        },
    ).json()
    run_id = start_run(service, three, epochs=5)
    wait_for(service, run_id, ended)
    problem = problem_of(service.get(f"/runs/{run_id}/boundary"), 409)
    assert problem["type"] == "/problems/not-two-features"
    assert "3 features" in problem["detail"]
    for bad in ({"resolution": 9}, {"resolution": 301}, {"resolution": "x"}):
        problem_of(service.get(f"/runs/{run_id}/boundary", params=bad), 422)
    for bad_points in ({"points": 15}, {"points": 10_001}, {"points": "many"}):
        problem_of(service.get(f"/runs/{run_id}/chart", params=bad_points), 422)
    for path in ("chart", "boundary", "history.csv"):
        missing = problem_of(service.get(f"/runs/{'0' * 8}-0000-4000-8000-{'0' * 12}/{path}"), 404)
        assert missing["type"] == "/problems/not-found"


def test_a_big_dataset_boundary_samples_its_points(service: TestClient) -> None:
    dataset = sample_dataset(service, "circles", 5000)
    run_id = start_run(service, dataset, epochs=3, batch_size=1024)
    wait_for(service, run_id, ended)
    first = service.get(f"/runs/{run_id}/boundary", params={"resolution": 10}).json()
    assert first["points_total"] == 5000
    assert len(first["points"]["x"]) == BOUNDARY_POINTS_MAX
    again = service.get(f"/runs/{run_id}/boundary", params={"resolution": 10}).json()
    assert again["points"] == first["points"]  # the same sample each time


def test_another_owners_run_has_no_chart_csv_or_boundary(
    secured: TestClient, keys: dict[str, str]
) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    run_id = start_run(secured, sample_dataset(secured, headers=alice), headers=alice, epochs=10)
    wait_for(secured, run_id, ended, headers=alice)
    for path in ("chart", "boundary", "history.csv"):
        assert secured.get(f"/runs/{run_id}/{path}", headers=alice).status_code == 200
        problem_of(secured.get(f"/runs/{run_id}/{path}", headers=bob), 404)
        problem_of(secured.get(f"/runs/{run_id}/{path}"), 401)


def test_while_it_trains_the_boundary_is_its_latest_checkpoints(service: TestClient) -> None:
    run_id = start_run(service, sample_dataset(service, "moons", 200), epochs=100_000)
    wait_for(service, run_id, lambda r: r["status"] == "running" and r["progress"]["epoch"] > 0)
    deadline = time.monotonic() + 30
    while (response := service.get(f"/runs/{run_id}/boundary")).status_code == 409:
        assert time.monotonic() < deadline, "no checkpoint after 30 s"
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    first = response.json()["epoch"]
    assert 0 < first < 100_000
    wait_for(service, run_id, lambda r: r["progress"]["epoch"] > first + 1000)
    deadline = time.monotonic() + 30
    while service.get(f"/runs/{run_id}/boundary").json()["epoch"] == first:
        assert time.monotonic() < deadline, "the boundary did not follow the checkpoints"
        time.sleep(0.1)
    assert service.post(f"/runs/{run_id}/cancel").status_code == 202
    cancelled = wait_for(service, run_id, ended)
    assert cancelled["status"] == "cancelled"
    final = service.get(f"/runs/{run_id}/boundary").json()
    assert final["epoch"] == cancelled["progress"]["epoch"]  # the model it kept


def test_a_feature_spanning_all_floats_still_has_a_finite_grid() -> None:
    """high - low overflows for ±1.7e308: the grid stays finite and covers them
    (it was NaN, and /boundary answered 500)."""
    big = 1.7e308
    axis = _axis(np.array([-big, 0.0, big]), 10)
    assert np.isfinite(axis).all()
    assert axis[0] < -big
    assert axis[-1] > big
    assert list(axis) == sorted(axis)
    np.testing.assert_allclose(_axis(np.array([0.0, 1.0]), 3), [-0.05, 0.5, 1.05])
    np.testing.assert_allclose(_axis(np.array([2.0, 2.0]), 3), [1.0, 2.0, 3.0])
