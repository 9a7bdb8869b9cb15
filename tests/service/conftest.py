"""Fixtures for the service: a migrated SQLite database per test, the app through
its ASGI interface, and either real local worker processes or a recording executor."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.core.settings import Settings, configure
from app.db.migrate import upgrade
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key


class RecordingExecutor:
    """Takes run ids and trains nothing: for tests of the API alone."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def start(self, db: Database) -> None:
        pass

    def submit(self, run_id: str) -> str:
        self.submitted.append(run_id)
        return "recording"

    def queue_id(self) -> str:
        return "recording"

    def stop(self) -> None:
        pass

    def problem(self) -> str | None:
        return None


FAST: dict[str, Any] = {
    "lease_seconds": 3.0,
    "heartbeat_seconds": 0.2,
    "sweep_interval_seconds": 0.3,
    "checkpoint_every_seconds": 0.5,
    "history_flush_seconds": 0.2,
}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    url = f"sqlite:///{tmp_path / 'twolayer.db'}"
    return Settings(**{"database_url": url, **FAST, **overrides})


# Every test of the service runs on SQLite, and on PostgreSQL too when
# TWOLAYER_TEST_POSTGRES_URL is set (CI sets it).
BACKENDS = ["sqlite", *(["postgres"] if os.environ.get("TWOLAYER_TEST_POSTGRES_URL") else [])]


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped after it."""
    admin_url = os.environ["TWOLAYER_TEST_POSTGRES_URL"]
    name = f"twolayer_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'twolayer.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Iterator[Settings]:
    s = Settings(
        **{"database_url": database_url, **FAST, "dataset_cache_dir": tmp_path / "datasets"}
    )
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
    client: TestClient,
    run_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}", headers=headers or {}).json()
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} did not get there in {timeout}s: {run}")
        time.sleep(0.05)


def ended(run: dict[str, Any]) -> bool:
    return run["status"] in ("succeeded", "failed", "cancelled")


def sample_dataset(
    client: TestClient,
    kind: str = "moons",
    n: int = 200,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = client.post(
        "/datasets/samples",
        json={"kind": kind, "n_samples": n, "noise": 0.1},
        headers=headers or {},
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def start_run(
    client: TestClient,
    dataset: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    **hyperparameters: Any,
) -> str:
    """POST /runs on the dataset with these hyperparameters; the run's id."""
    response = client.post(
        "/runs",
        json={"dataset_id": dataset["id"], "hyperparameters": hyperparameters},
        headers=headers or {},
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id


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


def secured_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(**{"database_url": database_url, **FAST, "auth": "required", **overrides})


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    """A live key each for alice and bob."""
    db = Database(settings.database_url)
    try:
        return {who: create_key(db=db, owner=who) for who in ("alice", "bob")}
    finally:
        db.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """Auth required, real local workers."""
    app = create_app(secured_settings(settings.database_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    configure(None)


def wait_for_owner(client: TestClient, run_id: str, headers: dict[str, str]) -> dict[str, Any]:
    return wait_for(client, run_id, ended, headers=headers)
