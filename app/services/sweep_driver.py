"""The sweep driver: a daemon thread of each API process that takes the sweeps'
steps (app/services/sweeps.py, advance_sweep) every `sweep_poll_seconds`.

A step records the trials whose runs have ended and queues the next ones.
Everything it needs is in the database, so any API process may take any
sweep's step (one at a time: the step holds the sweep's row, and others skip
it), and a sweep goes on after any process's death, from where its rows say.
The trials themselves train on the workers, like any run.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from app.core.settings import Settings
from app.db.session import Database
from app.services.sweeps import advance_sweep, sweeps_to_advance
from app.worker.executor import Executor

log = logging.getLogger("twolayer.sweeps")


def drive_once(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    halted: Callable[[], bool] = lambda: False,
) -> int:
    """One step of every sweep that may need one, until `halted`; returns the runs queued."""
    queued = 0
    for sweep_id in sweeps_to_advance(db=db):
        if halted():  # the process is stopping: no step outlives its database
            break
        try:
            queued += advance_sweep(db=db, settings=settings, executor=executor, sweep_id=sweep_id)
        except Exception:  # one sweep's trouble must not stop the others
            log.exception("sweep %s: its step failed; trying again", sweep_id)
    return queued


class SweepDriver:
    def __init__(self, *, db: Database, settings: Settings, executor: Executor) -> None:
        self.db, self.settings, self.executor = db, settings, executor
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="twolayer-sweeps", daemon=True)
        self._jitter = random.Random()  # its own: the global generator is left alone

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Waits for the step under way (the database is disposed after this)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                log.warning("the sweeps' driver did not stop within 30 s")

    def _loop(self) -> None:
        interval = self.settings.sweep_poll_seconds
        while not self._halt.wait(interval * self._jitter.uniform(0.9, 1.1)):
            try:
                drive_once(
                    db=self.db,
                    settings=self.settings,
                    executor=self.executor,
                    halted=self._halt.is_set,
                )
            except Exception:  # the database is away, say: the next poll tries again
                log.exception("the sweeps' step failed")
