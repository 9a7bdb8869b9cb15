"""Executors deliver run ids to workers; the database stays the source of truth.

One interface, chosen by TWOLAYER_EXECUTOR, one module per executor:
- `local` (the default, `local_executor.py`) starts worker processes from
  the API process itself: training never runs in the event loop or in an
  API thread;
- `celery` (`celery_executor.py`) sends ids to Celery workers on any number
  of hosts, through Redis.
Both run a sweeper in the API process (`sweeper.py`).
"""

from __future__ import annotations

from typing import Protocol

from app.core.settings import Settings
from app.db.session import Database
from app.worker.local_executor import LocalExecutor


class Executor(Protocol):
    def start(self, db: Database) -> None:
        """Begin, on the API process's database (the sweeper's, and the queue's)."""
        ...

    def submit(self, run_id: str) -> str | None:
        """Hand a run id to the workers; raises if it cannot (the sweeper retries).
        Returns the id of the queue that took it (app/worker/sweeper.py), None if
        the queue cannot tell."""
        ...

    def queue_id(self) -> str | None:
        """The id of the queue there now: a message handed to another is lost."""
        ...

    def stop(self) -> None: ...

    def problem(self) -> str | None:
        """None when the executor can take work, else what is wrong."""
        ...


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "celery":
        # imported here: the local default never loads Celery
        from app.worker.celery_executor import CeleryExecutor

        return CeleryExecutor(settings)
    return LocalExecutor(settings)
