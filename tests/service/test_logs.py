"""Request ids on every answer; logs as JSON lines, each with its request's id and
its run's, never a key: in a `twolayer serve` process, parsed line by line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.logging import REQUEST_ID, JsonFormatter, for_run
from app.core.settings import Settings, configure
from app.db.migrate import upgrade
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key
from tests.helpers import start_serve
from tests.service.conftest import RecordingExecutor, bearer, problem_of, secured_settings

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def gated(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """Auth required, small bodies, and a route that breaks."""
    app = create_app(
        secured_settings(settings.database_url, max_body_bytes=2048),
        executor_factory=lambda _: RecordingExecutor(),
    )

    async def broken() -> None:
        raise RuntimeError("broken on purpose")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    configure(None)


def test_every_answer_carries_the_request_id(gated: TestClient, keys: dict[str, str]) -> None:
    alice = bearer(keys["alice"])
    given = {"X-Request-ID": "req-42.a_b:c"}
    answers = {
        200: gated.get("/datasets", headers={**alice, **given}),
        401: gated.get("/datasets", headers=given),  # AuthGate, before the app
        404: gated.get("/runs/nope", headers={**alice, **given}),
        413: gated.post("/datasets", content=b"x" * 4096, headers={**alice, **given}),
        422: gated.post("/datasets", json={"name": 1}, headers={**alice, **given}),
        500: gated.get("/broken", headers={**alice, **given}),
    }
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] == "req-42.a_b:c", status
    problem_of(answers[500], 500)


@pytest.mark.parametrize("given", ["", "two words", "x" * 129, "caf\u00e9", "a\tb"])
def test_an_insane_request_id_is_replaced(gated: TestClient, given: str) -> None:
    response = gated.get("/health", headers={b"X-Request-ID": given.encode("utf-8")})
    assert HEX_ID.fullmatch(response.headers["x-request-id"])


def test_a_request_without_an_id_is_given_a_new_one(gated: TestClient) -> None:
    ids = {gated.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(HEX_ID.fullmatch(i) for i in ids)


def test_a_json_line_has_its_fields_and_nothing_else_of_the_record() -> None:
    record = logging.LogRecord("twolayer.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.headers = {"authorization": "Bearer tl_secret"}  # an extra no line may carry
    token = REQUEST_ID.set("r1")
    try:
        with for_run("run-1"):
            line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "WARNING",
        "logger": "twolayer.x",
        "process": os.getpid(),
        "message": "a b",
        "request_id": "r1",
        "run_id": "run-1",
    }
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def test_a_server_logs_json_lines_with_ids_and_never_a_key(tmp_path: Path) -> None:
    """`twolayer serve` with TWOLAYER_LOG_FORMAT=json and auth on: every line of its
    stderr (its worker process's too) is JSON; the access lines carry the request
    id the client sent, the worker's the run's id; the key is in none of them.
    Its /metrics count what its worker process trained (its own metrics
    directory, not this test process's)."""
    url = f"sqlite:///{tmp_path / 'twolayer.db'}"
    upgrade(url)
    db = Database(url)
    key = create_key(db=db, owner="alice")
    db.dispose()
    env = {
        "TWOLAYER_DATABASE_URL": url,
        "TWOLAYER_AUTH": "required",
        "TWOLAYER_LOG_FORMAT": "json",
        "TWOLAYER_HEARTBEAT_SECONDS": "0.2",
        "TWOLAYER_HISTORY_FLUSH_SECONDS": "0.2",
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process, base = start_serve(tmp_path, env, stderr=log)
    try:
        with httpx.Client(base_url=base, headers=bearer(key), timeout=30) as client:
            sample = {"kind": "moons", "n_samples": 100, "noise": 0.1, "seed": 0}
            dataset = client.post("/datasets/samples", json=sample).json()
            body = {"dataset_id": dataset["id"], "hyperparameters": {"epochs": 9}}
            run_id = client.post("/runs", json=body, headers={"X-Request-ID": "create-1"}).json()[
                "id"
            ]
            for _ in range(600):
                run = client.get(f"/runs/{run_id}", headers={"X-Request-ID": "poll"}).json()
                if run["status"] not in ("queued", "running"):
                    break
            assert run["status"] == "succeeded"
            scraped = client.get("/metrics").text
            refused = httpx.get(f"{base}/datasets", headers=bearer("tl_" + "B" * 43))
            assert refused.status_code == 401
            assert HEX_ID.fullmatch(refused.headers["x-request-id"])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    epochs = [
        sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "twolayer_epochs_trained_total"
    ]
    assert epochs == [9]

    text = log_path.read_text()
    assert key not in text
    assert "B" * 43 not in text
    lines = json_lines(log_path)
    access = [line for line in lines if line["logger"] == "twolayer.access"]
    created = [line for line in access if line.get("request_id") == "create-1"]
    assert len(created) == 1
    assert (created[0]["method"], created[0]["route"], created[0]["status"]) == (
        "POST",
        "/runs",
        202,
    )
    assert created[0]["duration_ms"] > 0
    polls = [line for line in access if line.get("request_id") == "poll"]
    assert polls
    assert {line["route"] for line in polls} == {"/runs/{run_id}"}
    assert any(line["status"] == 401 for line in access)
    worker = [line for line in lines if line.get("run_id") == run_id]
    assert any(line["message"] == f"run {run_id}: succeeded" for line in worker)
    assert {line["process"] for line in worker} != {process.pid}  # the worker's own
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # its lines too
