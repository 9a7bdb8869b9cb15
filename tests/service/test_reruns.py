"""Reproducibility: every run's record (dataset sha256, seed, warm-start source,
the environments its weights were computed in), and POST /runs/{id}/rerun,
whose weights equal the original's on the same machine."""

from __future__ import annotations

import platform
from datetime import timedelta
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import Run, StoredModel
from app.db.session import Database
from app.nn import Model
from app.worker.environment import environment, recorded
from app.worker.job import execute_run
from app.worker.lease import claim_run
from tests.service.conftest import ended, problem_of, sample_dataset, start_run, wait_for
from tests.service.test_job import new_run


def weights(db: Database, run_id: str) -> Model:
    with db.read() as session:
        stored = session.get(StoredModel, run_id)
        assert stored is not None
        return Model.from_bytes(stored.data)


def assert_same_weights(a: Model, b: Model) -> None:
    for name in ("W1", "b1", "W2", "b2"):
        assert np.array_equal(getattr(a.params, name), getattr(b.params, name)), name
    assert a.standardization is not None
    assert b.standardization is not None
    assert np.array_equal(a.standardization.mean, b.standardization.mean)


def rerun(client: TestClient, run_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(f"/runs/{run_id}/rerun", json=body)
    assert response.status_code == 202, response.text
    read: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/runs/{read['id']}"
    return read


def test_a_rerun_trains_to_the_same_weights_and_the_record_says_where(
    service: TestClient, db: Database
) -> None:
    dataset = sample_dataset(service, n=300)
    hp: dict[str, Any] = {"epochs": 30, "hidden_units": 8, "batch_size": 32, "optimizer": "adam"}
    first = wait_for(service, start_run(service, dataset, **hp), ended)  # seed drawn
    assert first["status"] == "succeeded", first
    record = first["reproducibility"]
    assert record["dataset_sha256"] == dataset["sha256"]
    assert record["seed"] == first["hyperparameters"]["seed"] is not None
    assert record["init_from_run_id"] is None
    [where] = record["environments"]
    assert where["attempts"] == [1]
    assert (where["numpy"], where["machine"]) == (np.__version__, platform.machine())
    assert where["python"] == platform.python_version()
    built = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    assert where["blas"]["name"] == built["name"]
    loaded = where["blas"]["runtime"]
    assert loaded
    assert all(lib["threads"] == 1 for lib in loaded)

    again = rerun(service, first["id"])
    assert again["status"] == "queued"
    assert again["reproducibility"]["environments"] == []  # not started yet
    assert (again["dataset_id"], again["hyperparameters"]) == (
        first["dataset_id"],
        first["hyperparameters"],
    )
    again = wait_for(service, again["id"], ended)
    assert again["status"] == "succeeded"
    assert_same_weights(weights(db, again["id"]), weights(db, first["id"]))
    assert again["metrics"] == first["metrics"]
    assert [{**e, "attempts": []} for e in again["reproducibility"]["environments"]] == [
        {**where, "attempts": []}
    ]

    # a warm-started run reruns from the same source, to the same weights
    body = {"dataset_id": dataset["id"], "init_from_run_id": first["id"], "name": "warm"}
    warm = service.post("/runs", json={**body, "hyperparameters": hp}).json()
    renamed = rerun(service, warm["id"], {"name": "warm-again"})  # rerun while it is active
    assert (renamed["name"], renamed["init_from_run_id"]) == ("warm-again", first["id"])
    assert renamed["reproducibility"]["init_from_run_id"] == first["id"]
    warm, renamed = wait_for(service, warm["id"], ended), wait_for(service, renamed["id"], ended)
    assert warm["status"] == renamed["status"] == "succeeded"
    assert_same_weights(weights(db, renamed["id"]), weights(db, warm["id"]))

    # its source deleted, it cannot be reproduced: 409, and the record still names it
    assert service.delete(f"/runs/{first['id']}").status_code == 204
    problem = problem_of(service.post(f"/runs/{warm['id']}/rerun"), 409)
    assert problem["type"] == "/problems/warm-start-gone"
    assert first["id"] in problem["detail"]
    read = service.get(f"/runs/{warm['id']}").json()
    assert read["init_from_run_id"] is None
    assert read["reproducibility"]["init_from_run_id"] == first["id"]


def test_a_rerun_keeps_the_name_goes_through_the_caps_and_404s(api: TestClient) -> None:
    dataset = sample_dataset(api)
    run_id = start_run(api, dataset, epochs=5, seed=3)
    api.post(f"/runs/{run_id}/cancel")  # any status may be rerun
    named = api.post("/runs", json={"dataset_id": dataset["id"], "name": "n"}).json()
    again = rerun(api, named["id"])  # no body
    assert again["name"] == "n"
    assert again["hyperparameters"] == named["hyperparameters"]
    assert rerun(api, run_id, {})["hyperparameters"]["seed"] == 3
    problem = problem_of(api.post(f"/runs/{'0' * 8}-0000-4000-8000-{'0' * 12}/rerun"), 404)
    assert problem["detail"].endswith("does not exist")
    problem_of(api.post(f"/runs/{run_id}/rerun", json={"name": ""}), 422)
    problem_of(api.post(f"/runs/{run_id}/rerun", json={"seed": 1}), 422)  # nothing else


def test_a_run_resumed_elsewhere_records_both_environments(
    settings: Settings, db: Database
) -> None:
    run_id, _ = new_run(db, settings, epochs=5)
    assert claim_run(db=db, run_id=run_id, owner="gone", lease_seconds=60)
    elsewhere = {**environment(), "attempts": [1], "machine": "aarch64"}  # a worker since lost
    with db.write() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(environments=[elsewhere], lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="next") == "succeeded"
    with db.read() as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert run.environments == [elsewhere, {"attempts": [2], **environment()}]


def test_an_environment_is_one_entry_with_the_attempts_trained_in_it() -> None:
    mine = environment()
    assert set(mine) >= {"twolayer", "python", "numpy", "blas", "machine", "cpu"}
    once = recorded(None, 1)  # null: queued before the records existed
    assert once == [{"attempts": [1], **mine}]
    assert recorded(recorded(once, 2), 2) == [{"attempts": [1, 2], **mine}]  # a release
    elsewhere = {**mine, "attempts": [1], "machine": "aarch64"}
    assert recorded([elsewhere], 2) == [elsewhere, {"attempts": [2], **mine}]
    assert len(platform.node()) < 4 or platform.node() not in repr(mine)  # nor the host
    assert "/" not in repr(mine)  # nor a path
