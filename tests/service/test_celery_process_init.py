"""A Celery pool process connects to the database when it starts, not on its first
task; a database that is not up yet only gets a warning (the task waits for it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from app.core.settings import Settings, configure
from app.worker import celery_app


def test_a_new_pool_process_opens_its_connection_at_once(tmp_path: Path) -> None:
    configure(Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    try:
        celery_app._on_process_init()
        pool = celery_app._state["db"].engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() == 1  # connected, and back in the pool for the first task
    finally:
        configure(None)
        celery_app._state.clear()


def test_a_database_that_is_down_is_only_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    configure(Settings(database_url=url))
    try:
        with caplog.at_level(logging.WARNING, logger="twolayer.celery"):
            celery_app._on_process_init()
        assert any("not reachable yet" in m for m in caplog.messages)
    finally:
        configure(None)
        celery_app._state.clear()
