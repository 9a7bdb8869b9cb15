"""The `local` executor: worker processes started by the API process itself."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_module
import signal
import threading
from multiprocessing.context import SpawnProcess
from typing import Any

from app.core.logging import configure_logging
from app.core.settings import Settings
from app.db.session import Database
from app.worker.job import execute_run
from app.worker.lease import worker_identity
from app.worker.sweeper import Sweeper, deliver, undelivered_run_ids

log = logging.getLogger("twolayer.executor")


def local_worker_main(
    run_ids: Any, settings_values: dict[str, Any], parent_pid: int, stopping: Any
) -> None:
    """A local worker process: take run ids until told to stop or orphaned."""
    # Ctrl-C in a terminal reaches the whole process group: the server stops
    # its workers itself (the stopping event), so a worker ignores it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    """Run ids go through a multiprocessing queue to `local_workers` spawned processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = mp.get_context("spawn")
        self._queue: Any = None
        self._stopping: Any = None
        self._workers: list[SpawnProcess] = []
        self._sweeper: Any = None
        self._halting = False

    def start(self) -> None:
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
        # born ignoring SIGINT (an ignored signal stays ignored across exec, and
        # Python then installs no KeyboardInterrupt handler), so a Ctrl-C even
        # while the worker is still importing leaves it to the server to stop;
        # only the main thread may change a handler (a restart from the sweeper
        # thread sets it in the worker's first line instead)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
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
                process.join(timeout=5)
            process.close()
        # the queue and the event hold named semaphores: releasing the last
        # references unlinks them now, instead of the resource tracker finding
        # them leaked at exit
        self._workers.clear()
        self._queue.close()
        self._queue.join_thread()
        self._queue = self._stopping = None
        self._db.dispose()
