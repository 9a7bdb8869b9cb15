"""Run Alembic from the installed package, whatever the working directory.

Migrations are safe when several processes run them at once (compose starts
a `migrate` service, and `twolayer serve` migrates SQLite itself): they take
a PostgreSQL advisory lock held by their transaction, or a file lock beside
a SQLite database, so one process migrates and the others then find the
schema at head.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

import app
from alembic import command
from app.db.session import make_engine

ADVISORY_LOCK_KEY = 0x74776F6C  # "twol"


def migrations_dir() -> Path:
    """The migration scripts: inside the package when installed from a wheel
    (`app/migrations`, force-included from `alembic/`), else `alembic/` beside
    the package in a source checkout."""
    package = Path(app.__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"migration scripts not found beside {package}")


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _exclusive(database_url: str) -> Iterator[Connection]:
    """A connection held by one migrating process at a time."""
    url = make_url(database_url)
    # no connection kept, no statement prepared: a one-off that works through
    # PgBouncer in transaction mode too
    engine = make_engine(database_url, name="twolayer-migrate", keep=0, transaction_pooler=True)
    try:
        with engine.connect() as connection:
            if url.get_backend_name() == "postgresql":
                # read committed (whatever the server's default): a process that
                # waited for the lock then sees the schema the other one committed
                connection.execution_options(isolation_level="READ COMMITTED")
                # held by the transaction the migrations then run in (Alembic joins a
                # transaction it finds begun): the caller's commit, or the rollback
                # when the connection closes, releases it. A session-level lock
                # would not survive a transaction-mode pooler.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
                yield connection
            elif url.database and url.database != ":memory:":
                with open(f"{url.database}.migrate-lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    yield connection
            else:
                yield connection
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    with _exclusive(database_url) as connection:
        command.upgrade(alembic_config(database_url, connection), revision)
        connection.commit()


def downgrade(database_url: str, revision: str) -> None:
    with _exclusive(database_url) as connection:
        command.downgrade(alembic_config(database_url, connection), revision)
        connection.commit()


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (`alembic check`)."""
    with _exclusive(database_url) as connection:
        command.check(alembic_config(database_url, connection))
