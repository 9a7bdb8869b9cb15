"""Executors deliver run ids to workers; the database stays the source of truth.

One interface, chosen by TWOLAYER_EXECUTOR:
- `local` (the default) starts worker processes from the API process itself:
  training never runs in the event loop or in an API thread;
- `celery` sends ids to Celery workers on any number of hosts, through Redis.
Both run a sweeper in the API process (app.worker.sweeper).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_module
import socket
import uuid
from multiprocessing.context import SpawnProcess
from typing import Any, Protocol

from app.core.settings import Settings

log = logging.getLogger("twolayer.executor")


class Executor(Protocol):
    def start(self) -> None: ...

    def submit(self, run_id: str) -> None:
        """Hand a run id to the workers; raises if it cannot (the sweeper retries)."""
        ...

    def stop(self) -> None: ...

    def problem(self) -> str | None:
        """None when the executor can take work, else what is wrong."""
        ...


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def local_worker_main(
    run_ids: Any, settings_values: dict[str, Any], parent_pid: int, stopping: Any
) -> None:
    """A local worker process: take run ids until told to stop or orphaned."""
    from app.core.logging import configure_logging
    from app.db.session import Database
    from app.worker.job import execute_run

    configure_logging()
    settings = Settings(**settings_values)
    db = Database(settings.database_url)
    owner = worker_identity()

    def should_stop() -> bool:
        # a worker whose parent died stops by itself: it must not train as an orphan
        return bool(stopping.is_set()) or os.getppid() != parent_pid

    try:
        while not should_stop():
            try:
                run_id = run_ids.get(timeout=settings.heartbeat_seconds)
            except queue_module.Empty:
                continue
            if run_id is None:
                break
            outcome = execute_run(
                db=db, settings=settings, run_id=run_id, owner=owner, should_stop=should_stop
            )
            log.info("run %s: %s", run_id, outcome)
    finally:
        db.dispose()


class LocalExecutor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = mp.get_context("spawn")
        self._queue: Any = None
        self._stopping: Any = None
        self._workers: list[SpawnProcess] = []
        self._sweeper: Any = None
        self._halting = False

    def start(self) -> None:
        from app.db.session import Database
        from app.worker.sweeper import Sweeper, deliver, undelivered_run_ids

        self._queue = self._ctx.Queue()
        self._stopping = self._ctx.Event()
        self._db = Database(self.settings.database_url)
        for _ in range(self.settings.local_workers):
            self._workers.append(self._spawn())
        # ids in the old in-memory queue died with the old process
        for run_id in undelivered_run_ids(db=self._db, older_than=0):
            deliver(db=self._db, submit=self.submit, run_id=run_id)
        self._sweeper = Sweeper(
            db=self._db, settings=self.settings, submit=self.submit, extra=self._restart_dead
        )
        self._sweeper.start()

    def _spawn(self) -> SpawnProcess:
        process = self._ctx.Process(
            target=local_worker_main,
            args=(self._queue, self.settings.model_dump(), os.getpid(), self._stopping),
            name="twolayer-worker",
            daemon=True,
        )
        process.start()
        return process

    def _restart_dead(self) -> None:
        for i, process in enumerate(self._workers):
            if not process.is_alive() and not self._halting:
                log.warning(
                    "worker %s exited (%s); starting another", process.pid, process.exitcode
                )
                self._workers[i] = self._spawn()

    def submit(self, run_id: str) -> None:
        self._queue.put(run_id)

    def problem(self) -> str | None:
        alive = sum(p.is_alive() for p in self._workers)
        return None if alive else "no local worker process is alive"

    def stop(self) -> None:
        self._halting = True
        if self._sweeper is not None:
            self._sweeper.stop()
        if self._stopping is not None:
            self._stopping.set()
        for _ in self._workers:
            self._queue.put(None)
        for process in self._workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self._db.dispose()


class CeleryExecutor:
    """Run ids go to Celery (Redis); `twolayer worker` processes train them."""

    def __init__(self, settings: Settings) -> None:
        from app.worker.celery_app import make_celery

        self.settings = settings
        self.celery = make_celery(settings)
        self._sweeper: Any = None

    def start(self) -> None:
        from app.db.session import Database
        from app.worker.sweeper import Sweeper

        self._db = Database(self.settings.database_url)
        self._sweeper = Sweeper(db=self._db, settings=self.settings, submit=self.submit)
        self._sweeper.start()

    def submit(self, run_id: str) -> None:
        from app.worker.celery_app import send_run

        send_run(self.celery, run_id)

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
        self._db.dispose()


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "celery":
        return CeleryExecutor(settings)
    return LocalExecutor(settings)
