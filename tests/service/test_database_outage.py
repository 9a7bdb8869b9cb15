"""PostgreSQL refusing connections (a restart, a failover): the API answers 503
problem+json with Retry-After, from its routes and from the key check in front
of them alike, and is itself again once the database is back. Run when
TWOLAYER_TEST_POSTGRES_URL is set (CI sets it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.core.settings import configure
from app.db.migrate import upgrade
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key
from tests.service.conftest import (
    bearer,
    ended,
    fresh_postgres_database,
    problem_of,
    sample_dataset,
    secured_settings,
    start_run,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    not os.environ.get("TWOLAYER_TEST_POSTGRES_URL"), reason="needs TWOLAYER_TEST_POSTGRES_URL"
)


@contextmanager
def refused(url: str) -> Iterator[None]:
    """No new connection to the database at `url`, and its sessions ended."""
    name = make_url(url).database
    admin = create_engine(os.environ["TWOLAYER_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


def ready(client: TestClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (answer := client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, answer.json()
        time.sleep(0.05)


def test_while_postgresql_refuses_connections_the_api_answers_503_then_recovers() -> None:
    with fresh_postgres_database() as url:
        upgrade(url)
        db = Database(url)
        alice = create_key(db=db, owner="alice")
        bob = create_key(db=db, owner="bob")
        db.dispose()
        app = create_app(secured_settings(url))
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                ready(client)  # its worker process is up
                assert client.get("/datasets", headers=bearer(alice)).status_code == 200
                with refused(url):
                    # alice's key is cached: the route's own query meets the outage
                    down = client.get("/datasets", headers=bearer(alice))
                    body = problem_of(down, 503)
                    assert body["type"] == "/problems/database-unavailable"
                    assert down.headers["retry-after"] == "1"
                    # bob's is not: the key check in front of the app meets it
                    gate = client.get("/runs", headers=bearer(bob))
                    assert problem_of(gate, 503)["type"] == "/problems/database-unavailable"
                    assert gate.headers["retry-after"] == "1"
                    # a write refused: nothing written
                    post = client.post(
                        "/datasets/samples", headers=bearer(alice), json={"kind": "moons"}
                    )
                    problem_of(post, 503)
                    assert client.get("/ready").status_code == 503
                ready(client)
                assert client.get("/datasets", headers=bearer(alice)).json()["items"] == []
                assert client.get("/runs", headers=bearer(bob)).status_code == 200
                # and it trains again, its worker untouched by the outage
                dataset = sample_dataset(client, headers=bearer(alice))
                run_id = start_run(client, dataset, headers=bearer(alice), epochs=20)
                done = wait_for(client, run_id, ended, headers=bearer(alice))
                assert done["status"] == "succeeded"
        finally:
            configure(None)
