"""Fixtures for the service: a migrated SQLite database per test, the app through
its ASGI interface, and either real local worker processes or a recording executor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings, configure
from app.db.migrate import upgrade
from app.db.session import Database
from app.main import create_app


class RecordingExecutor:
    """Takes run ids and trains nothing: for tests of the API alone."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def start(self) -> None:
        pass

    def submit(self, run_id: str) -> None:
        self.submitted.append(run_id)

    def stop(self) -> None:
        pass

    def problem(self) -> str | None:
        return None


FAST = {
    "lease_seconds": 3.0,
    "heartbeat_seconds": 0.2,
    "sweep_interval_seconds": 0.3,
    "checkpoint_every_seconds": 0.5,
    "history_flush_seconds": 0.2,
}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    url = f"sqlite:///{tmp_path / 'twolayer.db'}"
    return Settings(**{"database_url": url, **FAST, **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = make_settings(tmp_path)
    upgrade(s.database_url)
    yield s
    configure(None)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def api(settings: Settings, recorder: RecordingExecutor) -> Iterator[TestClient]:
    """The API with an executor that trains nothing."""
    app = create_app(settings, executor_factory=lambda _: recorder)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def service(settings: Settings) -> Iterator[TestClient]:
    """The API with real local worker processes."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def wait_for(
    client: TestClient, run_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} did not get there in {timeout}s: {run}")
        time.sleep(0.05)


def ended(run: dict[str, Any]) -> bool:
    return run["status"] in ("succeeded", "failed", "cancelled")


def sample_dataset(client: TestClient, kind: str = "moons", n: int = 200) -> dict[str, Any]:
    response = client.post("/datasets/samples", json={"kind": kind, "n_samples": n, "noise": 0.1})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def problem_of(response: Any, status: int) -> dict[str, Any]:
    """Assert a problem+json response with this status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    assert "Traceback" not in response.text
    return body
