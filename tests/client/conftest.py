"""Fixtures for the client: the app through its ASGI interface (on SQLite, and on
PostgreSQL when TWOLAYER_TEST_POSTGRES_URL is set), and one live `twolayer serve`
process for the session."""

from __future__ import annotations

import csv
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.client import Client
from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key
from tests.helpers import start_serve
from tests.service.conftest import database_url, secured_settings, settings

__all__ = ["database_url", "settings"]  # the service's fixtures, shared

LIVE_ENV = {
    "TWOLAYER_LEASE_SECONDS": "3",
    "TWOLAYER_HEARTBEAT_SECONDS": "0.2",
    "TWOLAYER_SWEEP_INTERVAL_SECONDS": "0.3",
    "TWOLAYER_HISTORY_FLUSH_SECONDS": "0.2",
    "TWOLAYER_LOCAL_WORKERS": "2",
    "TWOLAYER_SWEEP_POLL_SECONDS": "0.2",
}


def xor_arrays(m: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """m points of two features; the label is whether their signs agree."""
    X = np.random.default_rng(seed).normal(size=(m, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def write_csv(path: Path, m: int = 80) -> Path:
    X, y = xor_arrays(m)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "y"])
        writer.writerows([*row, int(label)] for row, label in zip(X, y, strict=True))
    return path


@pytest.fixture
def asgi(settings: Settings) -> Iterator[Client]:
    """A Client talking to the app through Starlette's TestClient, real local workers."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as http, Client(http=http) as client:
        yield client


@pytest.fixture
def secured_asgi(settings: Settings) -> Iterator[tuple[TestClient, str]]:
    """The app with auth required, and a live key of alice's."""
    db = Database(settings.database_url)
    try:
        key = create_key(db=db, owner="alice")
    finally:
        db.dispose()
    app = create_app(secured_settings(settings.database_url))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, key
    configure(None)


@pytest.fixture(scope="session")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of one `twolayer serve` for the client's tests."""
    workdir = tmp_path_factory.mktemp("live")
    env = {"TWOLAYER_DATABASE_URL": f"sqlite:///{workdir / 't.db'}", **LIVE_ENV}
    with (workdir / "serve.log").open("w") as log:
        process, base = start_serve(workdir, env, stderr=log)
    yield base
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except Exception:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def live(live_url: str) -> Iterator[Client]:
    with Client(live_url) as client:
        yield client
