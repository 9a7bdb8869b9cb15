"""The engine and sessions.

On SQLite: WAL (readers never wait for the writer), a busy timeout, foreign
keys on, and write transactions that begin IMMEDIATE. A deferred transaction
that later upgrades to a write fails at once with "database is locked",
ignoring the busy timeout; IMMEDIATE takes the write lock up front and
waits for it. Read transactions stay deferred so they never queue behind
writers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.core.settings import Settings

BUSY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10  # PostgreSQL: a host that does not answer fails in this long
PING_IDLE_SECONDS = 10.0  # PostgreSQL: a pooled connection idle this long is pinged first
# PostgreSQL's SQLSTATEs for a server that is going away or not taking
# connections (besides class 08, connection exceptions): admin_shutdown,
# crash_shutdown, cannot_connect_now, too_many_connections
GOING_AWAY = {"57P01", "57P02", "57P03", "53300"}


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached, or dropped the connection: PostgreSQL
    restarting or failing over, its host name not resolving for a moment, SQLite
    busy past its timeout. The work may be tried again once it answers (a
    commit under way may or may not have taken effect). Every other database
    error (a full disk, a missing table, a cancelled statement) is not this."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.orig.__class__.__module__ == "sqlite3":
        return "locked" in str(exc.orig) or "busy" in str(exc.orig)
    sqlstate = getattr(exc.orig, "sqlstate", None)  # None: no server reply (connect, lost)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in GOING_AWAY


def _ping_when_idle(engine: Engine) -> None:
    """Liveness checking without a round trip per checkout: a pooled connection is
    pinged (SELECT 1) only if it sat idle for PING_IDLE_SECONDS, when a server
    restart or a failover may have dropped it; one in steady use is not (a
    worker writes every second or so; pool_pre_ping's ping on every checkout
    was a round trip and, in autocommit, a commit each). A connection a restart
    dropped while in use fails its next
    statement instead, which `is_unavailable` tells, and the pool starts anew."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool connects afresh


def make_engine(
    url: str,
    *,
    name: str = "twolayer",
    keep: int = 5,
    overflow: int = 10,
    transaction_pooler: bool = False,
) -> Engine:
    """`keep` connections stay open once used (0: none, each is closed when returned),
    `overflow` more may be opened at a peak. PostgreSQL sees `name` as the
    connection's application_name (pg_stat_activity tells the processes apart).
    `transaction_pooler`: the URL reaches PgBouncer in transaction mode, where
    consecutive transactions of one connection may run on different server
    connections: psycopg must not prepare statements on the server (it does
    after 5 executions of one query by default), and nothing may rely on session
    state (advisory locks are transaction-scoped, no SET, no LISTEN)."""
    parsed = make_url(url)
    pooling: dict[str, Any] = (
        {"poolclass": NullPool} if keep == 0 else {"pool_size": keep, "max_overflow": overflow}
    )
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": name,
        }
        if transaction_pooler:
            connect_args["prepare_threshold"] = None
        engine = create_engine(url, connect_args=connect_args, **pooling)
        _ping_when_idle(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        # a file's connections cost no server: SQLAlchemy's own pool, unless none is kept
        **({"poolclass": NullPool} if keep == 0 else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below decide
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("twolayer_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    """Sessions for reading and for writing; a write session commits on success.
    The engine's options are make_engine's."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_engine = self.engine.execution_options(twolayer_write=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def connect(settings: Settings, *, name: str, keep: int | None = None) -> Database:
    """The database of TWOLAYER_DATABASE_URL for one kind of process: an API
    process keeps `database_pool_size` connections (`keep` None), a worker's
    training process 1, its sweeper 0."""
    return Database(
        settings.database_url,
        name=name,
        keep=settings.database_pool_size if keep is None else keep,
        overflow=settings.database_max_overflow if keep is None else 2,
        transaction_pooler=settings.database_pooler == "transaction",
    )
