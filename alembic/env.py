"""Alembic environment: the URL comes from twolayer (app.db.migrate), never from an .ini file."""

from __future__ import annotations

from sqlalchemy import Connection

from alembic import context
from app.db import models  # noqa: F401  (registers the tables)
from app.db.base import Base
from app.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `twolayer migrate`")
run_migrations_online()
