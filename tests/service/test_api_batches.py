"""POST /runs:batch: many runs in one request and one transaction, all or none,
the owner's caps checked once for the whole batch (issue 16, item 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from app.core.settings import Settings
from app.db.models import Run
from app.db.session import Database
from app.main import create_app
from app.nn import Hyperparameters
from app.nn.checkpoint import stored_bytes
from app.schemas.batches import MAX_BATCH_RUNS
from app.services import runs
from app.services.runs import RunRequest
from tests.service.conftest import RecordingExecutor, problem_of, sample_dataset
from tests.service.test_api_runs import runs_total
from tests.service.test_security import carols_dataset


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with a work limit that a 4 096-unit run is over."""
    return settings.model_copy(update={"max_work": 10**8})


def test_a_batch_queues_every_run_in_its_order(
    api: TestClient, recorder: RecordingExecutor
) -> None:
    dataset = sample_dataset(api)
    other = sample_dataset(api, "circles")
    runs = [
        {"dataset_id": dataset["id"], "name": "lr-0.1", "hyperparameters": {"learning_rate": 0.1}},
        {"dataset_name": other["name"], "name": "lr-0.3", "hyperparameters": {"epochs": 7}},
        {"dataset_id": dataset["id"]},
    ]
    response = api.post("/runs:batch", json={"runs": runs})
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [r["name"] for r in items] == ["lr-0.1", "lr-0.3", None]
    assert [r["dataset_id"] for r in items] == [dataset["id"], other["id"], dataset["id"]]
    assert items[0]["hyperparameters"]["learning_rate"] == 0.1
    assert items[1]["progress"] == {"epoch": 0, "epochs": 7}
    assert {r["status"] for r in items} == {"queued"}
    assert [r["queue_position"] for r in items] == [1, 2, 3]
    ids = [r["id"] for r in items]
    assert recorder.submitted == ids  # each handed to the executor, in order
    for item in items:  # what the batch answered is what a reader sees
        assert api.get(f"/runs/{item['id']}").json() == item
    assert [r["id"] for r in api.get("/runs").json()["items"]] == ids[::-1]  # newest first
    # a single create after them queues behind them
    single = api.post("/runs", json={"dataset_id": dataset["id"]}).json()
    assert single["queue_position"] == 4


def test_one_bad_run_refuses_the_batch_naming_it_and_writes_nothing(
    api: TestClient, recorder: RecordingExecutor
) -> None:
    dataset = sample_dataset(api)
    good = {"dataset_id": dataset["id"]}
    cases = [
        # refused by the schema, before the service
        ([good, {"dataset_id": dataset["id"], "hyperparameters": {"epochs": 0}}], 422, None),
        ([good, {}], 422, None),  # neither dataset_id nor dataset_name
        ([], 422, None),
        ([good] * (MAX_BATCH_RUNS + 1), 422, None),
        # refused by the service, in the transaction
        ([good, {"dataset_id": "no-such-dataset"}], 404, "runs[1]: dataset no-such-dataset"),
        ([good, good, {"dataset_name": "nameless"}], 404, "runs[2]: no dataset is named"),
        (
            [{"dataset_id": dataset["id"], "init_from_run_id": "nope"}],
            404,
            "runs[0]: run nope (init_from_run_id)",
        ),
        (
            [good, {"dataset_id": dataset["id"], "hyperparameters": {"hidden_units": 4096}}],
            422,
            "runs[1]: this run's work",
        ),
    ]
    for batch, status, detail in cases:
        body = problem_of(api.post("/runs:batch", json={"runs": batch}), status)
        if detail is not None:
            assert body["detail"].startswith(detail), body
        else:
            assert body["type"] == "/problems/validation", body
    assert runs_total(api) == 0
    assert recorder.submitted == []


@pytest.fixture
def capped(settings: Settings, recorder: RecordingExecutor) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_active_runs_per_owner": 3})
    with TestClient(
        create_app(limited, executor_factory=lambda _: recorder), raise_server_exceptions=False
    ) as client:
        yield client


def test_the_active_run_cap_counts_the_whole_batch(capped: TestClient) -> None:
    dataset = sample_dataset(capped)
    run = {"dataset_id": dataset["id"]}
    body = problem_of(capped.post("/runs:batch", json={"runs": [run] * 4}), 429)
    assert "4 more were asked for" in body["detail"]
    assert runs_total(capped) == 0
    assert capped.post("/runs:batch", json={"runs": [run] * 2}).status_code == 202
    problem_of(capped.post("/runs:batch", json={"runs": [run] * 2}), 429)
    assert capped.post("/runs:batch", json={"runs": [run]}).status_code == 202
    assert runs_total(capped) == 3


def test_concurrent_batches_never_pass_the_cap(capped: TestClient) -> None:
    """Two batches of 2 against a cap of 3, at once: one is written whole, the
    other refused whole (the owner's creations are serialised)."""
    dataset = sample_dataset(capped)
    start = threading.Barrier(2)

    def post(_: int) -> int:
        start.wait()
        runs = [{"dataset_id": dataset["id"]}] * 2
        return capped.post("/runs:batch", json={"runs": runs}).status_code

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(post, range(2))) == [202, 429]
    assert runs_total(capped) == 2


def test_a_batch_over_the_storage_budget_is_413(
    settings: Settings, recorder: RecordingExecutor
) -> None:
    """The bounds of all the batch's runs count against the budget at once: room
    for two such runs (beside the dataset) admits a batch of two, not of three."""
    one = stored_bytes(2, Hyperparameters(hidden_units=512).resolved())
    tight = settings.model_copy(update={"max_stored_bytes_per_owner": 2 * one + 20_000})
    with TestClient(
        create_app(tight, executor_factory=lambda _: recorder), raise_server_exceptions=False
    ) as api:
        dataset = sample_dataset(api)  # 200 × 2 float64 and its labels: < 20 000 bytes
        run = {"dataset_id": dataset["id"], "hyperparameters": {"hidden_units": 512}}
        body = problem_of(api.post("/runs:batch", json={"runs": [run] * 3}), 413)
        assert "budget" in body["detail"]
        assert runs_total(api) == 0
        assert api.post("/runs:batch", json={"runs": [run] * 2}).status_code == 202


# A batch drawn at random from good and bad runs: either every run is written
# and handed over, in order, or none is and the answer is a 4xx problem+json.
RUN_KINDS = st.sampled_from(["good", "by-name", "missing", "epochs-0", "unknown-field", "too-big"])


@given(kinds=st.lists(RUN_KINDS, min_size=1, max_size=6))
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_batch_is_written_whole_or_not_at_all(
    api: TestClient, recorder: RecordingExecutor, kinds: list[str]
) -> None:
    dataset = sample_dataset(api)
    shapes: dict[str, dict[str, Any]] = {
        "good": {"dataset_id": dataset["id"]},
        "by-name": {"dataset_name": dataset["name"]},
        "missing": {"dataset_id": "missing-dataset"},
        "epochs-0": {"dataset_id": dataset["id"], "hyperparameters": {"epochs": 0}},
        "unknown-field": {"dataset_id": dataset["id"], "epoch": 3},
        "too-big": {"dataset_id": dataset["id"], "hyperparameters": {"hidden_units": 4096}},
    }
    before, sent = runs_total(api), len(recorder.submitted)
    response = api.post("/runs:batch", json={"runs": [shapes[k] for k in kinds]})
    if set(kinds) <= {"good", "by-name"}:
        assert response.status_code == 202, response.text
        ids = [r["id"] for r in response.json()["items"]]
        assert len(ids) == len(kinds)
        assert recorder.submitted[sent:] == ids
        assert runs_total(api) == before + len(kinds)
    else:
        problem_of(response, response.status_code)
        assert 400 <= response.status_code < 500
        assert runs_total(api) == before
        assert recorder.submitted[sent:] == []
    for run in api.get("/runs", params={"status": "queued", "limit": 100}).json()["items"]:
        assert api.post(f"/runs/{run['id']}/cancel").status_code == 202  # room for the next


def test_a_creation_is_two_transactions_however_many_runs(settings: Settings) -> None:
    """One write for the runs (reads, caps and rows together), one for their
    delivery: a single run and a batch of 25 cost the same round trips."""
    settings = settings.model_copy(update={"max_active_runs_per_owner": 26})
    db = Database(settings.database_url)
    transactions: list[str] = []
    event.listen(db.engine, "begin", lambda _connection: transactions.append("begin"))
    try:
        dataset = carols_dataset(db, settings)
        recorder = RecordingExecutor()
        transactions.clear()
        request = RunRequest(dataset.id, None, "one", None, {"epochs": 5})
        view = runs.create_runs(
            db=db, settings=settings, executor=recorder, owner="carol", requests=[request]
        )[0]
        assert len(transactions) == 2
        assert view.queue_position == 1
        transactions.clear()
        many = runs.create_runs(
            db=db, settings=settings, executor=recorder, owner="carol", requests=[request] * 25
        )
        assert len(transactions) == 2
        assert [v.queue_position for v in many] == list(range(2, 27))
        assert recorder.submitted == [view.run.id, *(v.run.id for v in many)]
        with db.read() as session:
            delivered = session.scalars(select(Run.delivered_to).where(Run.owner == "carol"))
            assert set(delivered) == {"recording"}  # every delivery recorded
    finally:
        db.dispose()
