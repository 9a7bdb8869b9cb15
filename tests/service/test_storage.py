"""Storage limits: the bytes one run may store, and each owner's budget for
datasets, models and checkpoints. Past either: a 4xx problem+json, nothing written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.errors import StorageFull
from app.core.settings import Settings
from app.db.models import Dataset, Run
from app.db.session import Database
from app.main import create_app
from app.nn import Hyperparameters
from app.nn.checkpoint import stored_bytes
from app.services import datasets
from app.services.storage import owner_stored_bytes
from tests.service.conftest import RecordingExecutor, problem_of, sample_dataset

MOONS = {"kind": "moons", "n_samples": 200, "noise": 0.1}


@contextmanager
def client(settings: Settings, **limits: Any) -> Iterator[TestClient]:
    app = create_app(
        Settings(**{**settings.model_dump(), **limits}),
        executor_factory=lambda _: RecordingExecutor(),
    )
    with TestClient(app, raise_server_exceptions=False) as api:
        yield api


def totals(api: TestClient) -> tuple[int, int]:
    return api.get("/datasets").json()["total"], api.get("/runs").json()["total"]


def used(db: Database, owner: str = "local") -> int:
    with db.read() as session:
        return owner_stored_bytes(session, owner)


def test_a_run_that_would_store_too_much_is_422(settings: Settings) -> None:
    hp = Hyperparameters(hidden_units=64, epochs=10, optimizer="adam").resolved()
    bound = stored_bytes(2, hp)
    with client(settings, max_run_stored_bytes=bound - 1) as api:
        dataset = sample_dataset(api, n=200)
        body = {"dataset_id": dataset["id"], "hyperparameters": hp.as_dict()}
        detail = problem_of(api.post("/runs", json=body), 422)["detail"]
        assert "this run would store" in detail
        assert totals(api) == (1, 0)
        sgd = {**hp.as_dict(), "optimizer": "sgd"}  # one copy of θ fewer: it fits
        assert api.post("/runs", json={**body, "hyperparameters": sgd}).status_code == 202


def test_the_owner_budget_counts_datasets_and_runs_and_frees_on_delete(
    settings: Settings, db: Database
) -> None:
    hp = Hyperparameters(hidden_units=8, epochs=10).resolved()
    with client(settings) as api:  # one dataset's size, measured
        sample_dataset(api, n=200)
        blob = used(db)
        api.delete(f"/datasets/{api.get('/datasets').json()['items'][0]['id']}")
        assert used(db) == 0
    run = stored_bytes(2, hp)
    with client(settings, max_stored_bytes_per_owner=2 * blob + run) as api:
        first = api.post("/datasets/samples", json={**MOONS, "seed": 1}).json()
        second = api.post("/datasets/samples", json={**MOONS, "seed": 2}).json()
        body = {"dataset_id": first["id"], "hyperparameters": hp.as_dict()}
        queued = api.post("/runs", json=body)
        assert queued.status_code == 202, queued.text
        assert used(db) == 2 * blob + run  # the run's bound is reserved while it is queued
        refused = problem_of(api.post("/runs", json=body), 413)
        assert refused["type"] == "/problems/storage-full"
        assert "delete datasets or runs" in refused["detail"]
        problem_of(api.post("/datasets/samples", json={**MOONS, "seed": 3}), 413)
        inline = {"name": "x", "features": [[0.0], [1.0]], "labels": [0, 1]}
        problem_of(api.post("/datasets", json=inline), 413)
        csv = {"file": ("d.csv", b"a,label\n1,x\n2,y\n", "text/csv")}
        problem_of(api.post("/datasets/csv", files=csv, data={"name": "c"}), 413)
        assert totals(api) == (2, 1)
        assert api.delete(f"/datasets/{second['id']}").status_code == 204
        assert api.post("/datasets", json=inline).status_code == 201  # room again
    with client(settings, max_stored_bytes_per_owner=10**12) as api:
        assert api.post("/runs", json=body).status_code == 202  # a larger budget: room


def test_concurrent_creations_never_pass_the_budget(settings: Settings) -> None:
    """The budget is counted in the writing transaction, creations serialised per
    owner: eight simultaneous datasets against room for three make exactly three."""
    db = Database(settings.database_url)
    try:

        def sample(seed: int, limits: Settings) -> None:
            datasets.create_sample_dataset(
                db=db, settings=limits, owner="dave", name=None, kind="xor", n_samples=50,
                noise=0.1, seed=seed,
            )  # fmt: skip

        sample(0, settings)
        blob = used(db, "dave")
        capped = settings.model_copy(update={"max_stored_bytes_per_owner": 4 * blob})
        start = threading.Barrier(8)

        def create(seed: int) -> str:
            start.wait()
            try:
                sample(seed + 1, capped)
            except StorageFull:
                return "refused"
            return "created"

        with ThreadPoolExecutor(8) as pool:
            outcomes = sorted(pool.map(create, range(8)))
        assert outcomes == ["created"] * 3 + ["refused"] * 5
        with db.read() as session:
            count = select(func.count()).select_from(Dataset).where(Dataset.owner == "dave")
            assert session.scalar(count) == 4
            assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert used(db, "dave") == 4 * blob
    finally:
        db.dispose()


def test_the_same_sample_asked_for_at_once_is_made_once(settings: Settings) -> None:
    """Concurrent identical POST /datasets/samples: one creates it, the others
    are given it (no primary-key clash, no 500)."""
    db = Database(settings.database_url)
    try:
        start = threading.Barrier(4)

        def create(_: int) -> tuple[str, bool]:
            start.wait()
            dataset, created = datasets.create_sample_dataset(
                db=db, settings=settings, owner="erin", name=None, kind="moons",
                n_samples=100, noise=0.1, seed=0,
            )  # fmt: skip
            return dataset.id, created

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(create, range(4)))
        assert len({dataset_id for dataset_id, _ in outcomes}) == 1
        assert sorted(created for _, created in outcomes) == [False, False, False, True]
        with db.read() as session:
            count = select(func.count()).select_from(Dataset).where(Dataset.owner == "erin")
            assert session.scalar(count) == 1
    finally:
        db.dispose()
