"""PostgreSQL's pool checks liveness without a round trip per checkout: a
connection in steady use is not pinged, one idle past PING_IDLE_SECONDS is,
and one the server dropped meanwhile is replaced before anyone uses it; one
dropped while in use fails its next statement as unavailable, and the one
after succeeds on a new connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

import app.db.session as session_module
from app.db.session import Database, is_unavailable
from tests.service.conftest import fresh_postgres_database

pytestmark = pytest.mark.skipif(
    not os.environ.get("TWOLAYER_TEST_POSTGRES_URL"), reason="needs TWOLAYER_TEST_POSTGRES_URL"
)


@pytest.fixture
def pg() -> Iterator[tuple[Database, list[int]]]:
    with fresh_postgres_database() as url:
        db = Database(url)
        pings: list[int] = []
        ping = db.engine.dialect.do_ping

        def counted(dbapi_connection: Any) -> bool:
            pings.append(1)
            return bool(ping(dbapi_connection))

        db.engine.dialect.do_ping = counted  # type: ignore[method-assign]
        try:
            yield db, pings
        finally:
            db.dispose()


def backend_pid(db: Database) -> int:
    with db.engine.connect() as c:
        return int(c.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int) -> None:
    admin = create_engine(os.environ["TWOLAYER_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_in_use_is_not_pinged_an_idle_one_is(
    pg: tuple[Database, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, pings = pg
    first = backend_pid(db)
    for _ in range(5):
        assert backend_pid(db) == first
    assert pings == []
    monkeypatch.setattr(session_module, "PING_IDLE_SECONDS", 0.0)
    assert backend_pid(db) == first
    assert pings == [1]


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    pg: tuple[Database, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, pings = pg
    first = backend_pid(db)
    terminate(first)
    monkeypatch.setattr(session_module, "PING_IDLE_SECONDS", 0.0)
    assert backend_pid(db) != first  # pinged, failed, connected afresh: no error
    assert pings


def test_a_connection_dropped_in_steady_use_fails_once_as_unavailable(
    pg: tuple[Database, list[int]],
) -> None:
    db, _ = pg
    first = backend_pid(db)
    terminate(first)
    with pytest.raises(DBAPIError) as raised:
        backend_pid(db)
    assert is_unavailable(raised.value)
    assert backend_pid(db) != first
