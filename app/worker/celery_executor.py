"""The `celery` executor, the API's side: run ids go to Celery (Redis), and
`twolayer worker` processes (`celery_app.py`) train them."""

from __future__ import annotations

from typing import Any

from app.core.settings import Settings
from app.db.session import Database
from app.worker.celery_app import (
    broker_queue_id,
    give_back_turn,
    make_celery,
    send_run,
    sweep_turn,
)
from app.worker.lease import worker_identity
from app.worker.sweeper import Sweeper


class CeleryExecutor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = make_celery(settings)
        self._sweeper: Any = None

    def start(self, db: Database) -> None:
        self._db = db  # the API process's own
        holder = worker_identity()  # this sweeper's name in the turns it takes
        self._sweeper = Sweeper(
            db=self._db,
            settings=self.settings,
            submit=self.submit,
            queue_id=self.queue_id,
            turn=lambda: sweep_turn(self.celery, self.settings.sweep_interval_seconds, holder),
            give_back=lambda: give_back_turn(self.celery, holder),
        )
        self._sweeper.start()

    def submit(self, run_id: str) -> str | None:
        return send_run(self.celery, run_id)

    def queue_id(self) -> str | None:
        return broker_queue_id(self.celery)

    def problem(self) -> str | None:
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:
            return f"broker: {type(exc).__name__}"
        return None

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
