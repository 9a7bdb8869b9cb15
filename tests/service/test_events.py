"""What a reader of a run sees while it waits, trains and ends: the events
stream (a live chart's source), queue positions, time left, warnings."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from fastapi.testclient import TestClient

from tests.service.conftest import ended, sample_dataset, start_run, wait_for


def events(
    client: TestClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """The stream's events as {"event", "id", "data", "at"}, until it ends (or
    `stop_after` events have come)."""
    found: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # keep-alive comment
            if not line:
                if event:
                    found.append({**event, "at": time.monotonic()})
                    event = {}
                    if stop_after is not None and len(found) >= stop_after:
                        break
                continue
            key, _, value = line.partition(": ")
            event[key] = json.loads(value) if key == "data" else value
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
    run_id = start_run(service, sample_dataset(service, "spiral", 2000), epochs=400, batch_size=8)
    seen = events(service, f"/runs/{run_id}/events")
    assert seen[-1]["at"] - seen[0]["at"] > 2.0  # long enough to show the rhythm
    training = [e for e in seen if e["event"] in ("epochs", "progress")]
    assert len(training) >= 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(seen)]
    assert max(gaps) < 2.0, gaps  # one a second, give or take a poll and a slow CI
    progress = [e["data"] for e in seen if e["event"] == "progress"]
    assert all(p["status"] == "running" for p in progress)


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
