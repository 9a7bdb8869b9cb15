"""What a reader of a run sees while it waits, trains and ends: the events
stream (a live chart's source), queue positions, time left, warnings."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.services import runs
from app.services.keys import revoke_keys
from app.services.model_cache import ModelCache
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


def stream(
    client: TestClient, url: str, *, headers: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[dict[str, Any]]:
    """The stream's events as {"event", "id", "data", "at"}, as they come, until it
    ends; a failure, not a hang, if it has not ended `timeout` seconds on (its worker
    died). Something comes every second or so while a run waits or trains."""
    event: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"{url} still streaming after {timeout} s"
            if line.startswith(":"):
                continue  # keep-alive comment
            if not line:
                if event:
                    yield {**event, "at": time.monotonic()}
                    event = {}
                continue
            key, _, value = line.partition(": ")
            event[key] = json.loads(value) if key == "data" else value


def events(
    client: TestClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """The stream's events until it ends (or `stop_after` events have come)."""
    found: list[dict[str, Any]] = []
    for event in stream(client, url, headers=headers, timeout=timeout):
        found.append(event)
        if stop_after is not None and len(found) >= stop_after:
            break
    return found


def test_a_run_streams_every_epoch_once_then_its_end(service: TestClient) -> None:
    run_id = start_run(service, sample_dataset(service, "moons", 200), epochs=300)
    seen = events(service, f"/runs/{run_id}/events")
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "status"
    assert kinds[-1] == "end"
    assert "epochs" in kinds
    epochs = [n for e in seen if e["event"] == "epochs" for n in e["data"]["epoch"]]
    assert epochs == list(range(1, 301))  # each once, in order
    batches = [e["data"] for e in seen if e["event"] == "epochs"]
    for batch in batches:
        assert len(batch["train_cost"]) == len(batch["epoch"]) == len(batch["validation_cost"])
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids)
    assert ids[-1] == 300
    end = seen[-1]["data"]
    assert end["status"] == "succeeded"
    assert end["metrics"]["train"]["accuracy"] > 0.9
    assert end["warnings"] == []
    history = service.get(f"/runs/{run_id}/history").json()
    streamed = [c for b in batches for c in b["train_cost"]]
    assert streamed == history["train_cost"]


def test_a_reconnecting_client_gets_the_epochs_after_its_last_event_id(
    service: TestClient,
) -> None:
    run_id = start_run(service, sample_dataset(service, "moons", 200), epochs=120)
    wait_for(service, run_id, ended)
    url = f"/runs/{run_id}/events"
    resumed = events(service, url, headers={"Last-Event-ID": "100"})
    epochs = [n for e in resumed if e["event"] == "epochs" for n in e["data"]["epoch"]]
    assert epochs == list(range(101, 121))
    assert resumed[-1]["event"] == "end"
    by_query = events(service, f"{url}?since=117")
    assert [n for e in by_query if e["event"] == "epochs" for n in e["data"]["epoch"]] == [
        118,
        119,
        120,
    ]


def test_while_it_trains_something_comes_every_second(service: TestClient) -> None:
    """Watched for 3 s of a run far too long to end by then, whatever the machine's
    speed; then cancelled, and the stream ends with it."""
    run_id = start_run(service, sample_dataset(service, "spiral", 2000), epochs=5000, batch_size=8)
    seen: list[dict[str, Any]] = []
    for event in stream(service, f"/runs/{run_id}/events"):
        seen.append(event)
        if event["event"] == "end" or event["at"] - seen[0]["at"] > 3.0:
            break
    assert seen[-1]["event"] != "end", "the run ended before 3 s: make it longer"
    training = [e for e in seen if e["event"] in ("epochs", "progress")]
    assert len(training) >= 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(seen)]
    assert max(gaps) < 2.0, gaps  # one a second, give or take a poll and a slow CI
    progress = [e["data"] for e in seen if e["event"] == "progress"]
    assert all(p["status"] == "running" for p in progress)
    assert service.post(f"/runs/{run_id}/cancel").status_code == 202  # cancelling
    rest = events(service, f"/runs/{run_id}/events?since={seen[-1].get('id', 0)}", timeout=30)
    assert rest[-1]["event"] == "end"
    assert rest[-1]["data"]["status"] == "cancelled"


def test_a_queued_run_says_where_it_stands(api: TestClient) -> None:
    """The API alone (nothing trains): positions in the queue, and a stream that
    keeps saying so."""
    dataset = sample_dataset(api)
    ids = [
        api.post("/runs", json={"dataset_id": dataset["id"], "name": f"q{i}"}).json()["id"]
        for i in range(3)
    ]
    assert [api.get(f"/runs/{i}").json()["queue_position"] for i in ids] == [1, 2, 3]
    assert api.post(f"/runs/{ids[0]}/cancel").json()["queue_position"] is None
    listed = {r["id"]: r["queue_position"] for r in api.get("/runs").json()["items"]}
    assert listed == {ids[0]: None, ids[1]: 1, ids[2]: 2}
    seen = events(api, f"/runs/{ids[2]}/events", stop_after=3)
    assert seen[0]["event"] == "status"
    assert seen[0]["data"]["queue_position"] == 2
    assert [e["event"] for e in seen[1:]] == ["queued", "queued"]
    assert seen[2]["at"] - seen[1]["at"] < 2.0
    assert seen[2]["data"]["status"] == "queued"


def test_a_run_that_trains_shows_the_time_left(service: TestClient) -> None:
    dataset = sample_dataset(service, "spiral", 2000)
    run_id = start_run(service, dataset, epochs=100000, batch_size=8)
    running = wait_for(
        service, run_id, lambda r: r["status"] == "running" and r["eta_seconds"] is not None
    )
    assert running["eta_seconds"] > 0
    assert running["queue_position"] is None
    service.post(f"/runs/{run_id}/cancel")
    assert wait_for(service, run_id, ended)["eta_seconds"] is None


def test_a_run_that_learned_nothing_says_so(service: TestClient) -> None:
    dataset = sample_dataset(service, "moons", 200)
    run_id = start_run(service, dataset, epochs=3, learning_rate=1e-6, init="small")
    done = wait_for(service, run_id, ended)
    assert done["status"] == "succeeded"
    assert any(w.startswith("learned nothing") for w in done["warnings"]), done["warnings"]
    end = events(service, f"/runs/{run_id}/events")[-1]
    assert end["data"]["warnings"] == done["warnings"]
    assert wait_for(service, start_run(service, dataset, epochs=60), ended)["warnings"] == []


def events_after(
    client: TestClient,
    url: str,
    act: Callable[[], object],
    *,
    headers: dict[str, str] | None = None,
    within: float = 10.0,
) -> tuple[list[dict[str, Any]], float]:
    """Open the stream, `act` once its first event has come, then read on until
    the stream closes (a failure if it is still open `within` seconds later);
    the events after the act, and when the act was."""
    after: list[dict[str, Any]] = []
    acted_at = None
    for event in stream(client, url, headers=headers):
        if acted_at is None:
            act()
            acted_at = time.monotonic()
            continue
        after.append(event)
        assert event["at"] - acted_at < within, f"the stream is still open: {after}"
    assert acted_at is not None
    return after, acted_at


def test_a_revoked_keys_stream_ends(settings: Settings, keys: dict[str, str]) -> None:
    """The key is checked again while the stream is open (trusted for
    key_cache_seconds): once it is revoked the stream sends `end`, then closes."""
    app = create_app(
        secured_settings(settings.database_url, key_cache_seconds=1.0),
        executor_factory=lambda _: RecordingExecutor(),
    )
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    with TestClient(app, raise_server_exceptions=False) as client:
        run_id = start_run(client, sample_dataset(client, headers=alice), headers=alice)
        db = Database(settings.database_url)
        try:
            after, revoked_at = events_after(
                client,
                f"/runs/{run_id}/events",
                lambda: revoke_keys(db=db, owner="alice"),
                headers=alice,
            )
        finally:
            db.dispose()
        end = after[-1]
        assert (end["event"], end["id"]) == ("end", "0")  # the last epoch sent: none
        assert end["data"]["reason"] == "unauthorized"
        assert end["data"]["status"] is None
        assert "revoked" in end["data"]["detail"]
        assert [e["event"] for e in after[:-1]] == ["queued"] * (len(after) - 1)
        # within the cache's second, the check's second and a poll, give or take
        assert end["at"] - revoked_at < 4.0
        problem_of(client.get(f"/runs/{run_id}", headers=alice), 401)
        # another owner's stream goes on
        bobs = start_run(client, sample_dataset(client, headers=bob), headers=bob)
        seen = events(client, f"/runs/{bobs}/events", headers=bob, stop_after=4)
        assert [e["event"] for e in seen] == ["status", "queued", "queued", "queued"]
    configure(None)


def test_a_run_deleted_while_it_is_followed_ends_its_stream_cleanly(
    api: TestClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_id = start_run(api, sample_dataset(api))
    after, _ = events_after(
        api,
        f"/runs/{run_id}/events",
        lambda: runs.delete_run(
            db=db, cache=ModelCache(1, max_bytes=2**30), owner="local", run_id=run_id
        ),
    )
    assert [(e["event"], e["id"]) for e in after][-1:] == [("end", "0")]
    end = after[-1]["data"]
    assert end == {"status": None, "reason": "deleted", "detail": f"run {run_id} was deleted"}
    problem_of(api.get(f"/runs/{run_id}/events"), 404)
    assert "Traceback" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
