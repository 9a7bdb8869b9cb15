"""The app's lifespan stops what it started. One app may run two lifespans at
once (test_fuzz does: its TestClient's, and the one schemathesis starts for
its calls); each must dispose its own database. The first one's was never
disposed: the pooled psycopg connection it held was garbage-collected while
open, a ResourceWarning wherever the collector happened to run."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.pool import QueuePool

import app.main as main_module
from app.core.settings import Settings
from app.db.session import Database, connect
from app.main import create_app
from tests.service.conftest import RecordingExecutor


def pooled(db: Database) -> int:
    """The connections waiting in the database's pool (none once it is disposed)."""
    pool = db.engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedin()


def test_two_lifespans_of_one_app_each_dispose_their_database(
    settings: Settings, recorder: RecordingExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.collect()  # what earlier tests left is not this test's
    made: list[Database] = []

    def recorded(*args: Any, **kwargs: Any) -> Database:
        made.append(connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(main_module, "connect", recorded)
    application = create_app(settings, executor_factory=lambda _: recorder)
    with TestClient(application) as first:
        # a request on the first lifespan's database: a connection into its pool
        assert first.get("/datasets").status_code == 200
        with TestClient(application) as second:
            assert second.get("/datasets").status_code == 200
    assert len(made) == 2
    # disposed: no connection left in either pool
    assert [pooled(db) for db in made] == [0, 0]

    made.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []
