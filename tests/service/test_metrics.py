"""GET /metrics, read with prometheus-client's own parser after known traffic:
requests by route template, the database's gauges, and the counters of the
local executor's worker processes (another process each) in the API's scrape.

Counters are process-wide (the test process's metrics directory), so each test
compares two scrapes: the traffic's difference, not absolute values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.settings import Settings, configure
from app.db.base import utcnow
from app.db.session import Database
from app.main import create_app
from app.worker.job import execute_run
from app.worker.lease import LeaseLost, claim_run, fence
from app.worker.sweeper import sweep_once
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    ended,
    problem_of,
    sample_dataset,
    secured_settings,
    start_run,
    wait_for,
)
from tests.service.test_job import new_run
from tests.service.test_sweeper import set_run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, f"{key} twice in one scrape"
            found[key] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_requests_are_counted_by_route_template_method_and_status(api: TestClient) -> None:
    before = scrape(api)
    for run_id in ("a", "b", "c"):  # three ids, one series
        problem_of(api.get(f"/runs/{run_id}"), 404)
    for path in ("/nope", "/runs/a/b/c/d"):
        problem_of(api.get(path), 404)
    api.post("/datasets/samples", json={"kind": "moons", "n_samples": 100, "noise": 0.1})
    problem_of(api.patch("/runs"), 405)
    after = scrape(api)

    requests = "twolayer_http_requests_total"
    assert grew(before, after, requests, route="/runs/{run_id}", method="GET", status="404") == 3
    assert grew(before, after, requests, route="unmatched", method="GET", status="404") == 2
    assert grew(before, after, requests, route="/datasets/samples", method="POST", status="201")
    assert grew(before, after, requests, route="/runs", method="PATCH", status="405") == 1
    # the scrape before this one is counted too, and no raw id ever is a label
    assert grew(before, after, requests, route="/metrics", method="GET", status="200") == 1
    assert not [key for key in after if any(v in ("a", "/runs/a") for _, v in key[1])]
    latency = "twolayer_http_request_duration_seconds"
    count = grew(before, after, f"{latency}_count", route="/runs/{run_id}", method="GET")
    assert count == 3
    assert grew(before, after, f"{latency}_bucket", route="/runs/{run_id}", method="GET", le="+Inf")
    assert value(after, f"{latency}_sum", route="/runs/{run_id}", method="GET") > 0


def test_runs_by_status_and_the_queue_come_from_the_database(api: TestClient) -> None:
    empty = scrape(api)
    assert value(empty, "twolayer_database_up") == 1
    assert value(empty, "twolayer_queue_depth") == 0
    assert value(empty, "twolayer_queue_oldest_age_seconds") == 0
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert ("twolayer_runs", frozenset({("status", status)})) in empty
    dataset = sample_dataset(api)
    first = start_run(api, dataset)
    start_run(api, dataset)
    cancelled = start_run(api, dataset)
    assert api.post(f"/runs/{cancelled}/cancel").status_code == 202
    samples = scrape(api)
    assert value(samples, "twolayer_runs", status="queued") == 2
    assert value(samples, "twolayer_runs", status="cancelled") == 1
    assert value(samples, "twolayer_queue_depth") == 2
    assert 0 < value(samples, "twolayer_queue_oldest_age_seconds") < 60
    api.delete(f"/runs/{first}")
    assert value(scrape(api), "twolayer_queue_depth") == 1


def test_the_local_workers_counters_reach_the_apis_scrape(settings: Settings) -> None:
    """Two worker processes train; their epochs and outcomes are in the API's
    /metrics, and so are the model cache's hits and misses of the API's own."""
    app = create_app(settings.model_copy(update={"local_workers": 2}))
    with TestClient(app, raise_server_exceptions=False) as client:
        before = scrape(client)
        dataset = sample_dataset(client)
        runs = [start_run(client, dataset, epochs=epochs, seed=0) for epochs in (7, 11)]
        for run_id in runs:
            assert wait_for(client, run_id, ended)["status"] == "succeeded"
        predict = {"run_id": runs[0], "instances": [[0.0, 0.0]]}
        for _ in range(3):
            assert client.post("/predict", json=predict).status_code == 200
        after = scrape(client)
    configure(None)
    assert grew(before, after, "twolayer_epochs_trained_total") == 18
    assert grew(before, after, "twolayer_run_attempts_total", outcome="succeeded") == 2
    assert grew(before, after, "twolayer_model_cache_misses_total") == 1
    assert grew(before, after, "twolayer_model_cache_hits_total") == 2
    assert value(after, "twolayer_model_cache_models") >= 1
    assert value(after, "twolayer_model_cache_bytes") > 0
    assert value(after, "twolayer_runs", status="succeeded") == 2


def test_a_lost_worker_counts_a_requeue_and_its_lease_loss(
    api: TestClient, settings: Settings, db: Database
) -> None:
    """A worker whose lease expired: the sweeper re-queues the run, and the
    worker, back, finds its lease gone; a late delivery is dropped."""
    run_id, _ = new_run(db, settings, epochs=3)
    assert claim_run(db=db, run_id=run_id, owner="paused", lease_seconds=60)
    set_run(db, run_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    before = scrape(api)
    sweep_once(db=db, settings=settings, submit=lambda _: "q")
    assert claim_run(db=db, run_id=run_id, owner="next", lease_seconds=60)
    # the paused worker's next write is fenced off (its claim is long gone)
    with pytest.raises(LeaseLost), db.write() as session:
        fence(session, run_id, "paused", epoch=1)
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="late") == "dropped"
    after = scrape(api)
    assert grew(before, after, "twolayer_requeues_total") == 1
    assert grew(before, after, "twolayer_lease_losses_total") == 1
    assert grew(before, after, "twolayer_run_attempts_total", outcome="dropped") == 1


@pytest.fixture
def secured_api(settings: Settings, keys: dict[str, str]) -> Iterator[Any]:
    def make(**overrides: Any) -> TestClient:
        app = create_app(
            secured_settings(settings.database_url, **overrides),
            executor_factory=lambda _: RecordingExecutor(),
        )
        return TestClient(app, raise_server_exceptions=False)

    yield make
    configure(None)


def test_metrics_ask_for_a_key_as_every_endpoint_or_none_when_told(
    secured_api: Any, keys: dict[str, str]
) -> None:
    with secured_api() as client:
        problem_of(client.get("/metrics"), 401)
        scrape(client, bearer(keys["alice"]))
    with secured_api(metrics_auth="off") as client:
        scrape(client)  # open: a scraper on a private network
        problem_of(client.get("/datasets"), 401)  # nothing else is
    with secured_api(metrics_enabled=False) as client:
        problem_of(client.get("/metrics", headers=bearer(keys["alice"])), 404)


def test_metrics_are_not_in_the_openapi_document(api: TestClient) -> None:
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]
