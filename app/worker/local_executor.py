"""The `local` executor: worker processes started by the API process itself.

Each worker has its own pipe to the API process, and nothing else is shared:
no queue or lock that a worker killed at the wrong moment could leave held
(a `multiprocessing.Queue` reader killed while waiting on it keeps its lock
forever, and every other reader stalls). A dispatcher thread in the API
process hands a run id to a worker that said it is idle, and watches every
worker's pipe and process sentinel:

- a worker that exits (`kill -9`, out of memory, a crash) is seen at once:
  the run it held has its lease ended now (`expire_lease`), so the sweeper
  re-queues it and it resumes from its checkpoint within a sweep, and a
  replacement process is started (with a back-off if workers die at start);
- a worker told to stop (SIGTERM from the server's stop, or from outside, as
  `docker compose stop` or a process-group signal sends it) checkpoints the
  last epoch and releases its run, without counting an attempt.

`problem()` (for /ready) is true to this: no worker ready to take a run, or
the dispatcher gone, is an error.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any

from app.core.logging import configure_logging
from app.core.metrics import process_dead
from app.core.settings import Settings
from app.db.session import Database, connect
from app.worker.job import execute_run
from app.worker.lease import expire_lease, worker_identity
from app.worker.sweeper import Sweeper, deliver, queued_run_ids, sweep_once
from app.worker.threads import pin_blas

log = logging.getLogger("twolayer.executor")

# a worker that dies before its hello, sooner than this after it started, is
# restarted after a back-off (doubling up to the cap): one that cannot start
# does not spin
QUICK_DEATH_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0


def local_worker_main(conn: Connection, settings_values: dict[str, Any], parent_pid: int) -> None:
    """A local worker process: say hello, then train the run ids the pipe brings
    until told to stop (SIGTERM, or None on the pipe) or orphaned."""
    # Ctrl-C in a terminal reaches the whole process group: the server stops
    # its workers itself, so a worker ignores it; SIGTERM asks for a graceful
    # stop: the run in hand is checkpointed and released
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    settings = Settings(**settings_values)
    configure_logging(settings.log_format)
    pin_blas()  # the engine's lanes are the threads (app/worker/threads.py)
    db = connect(settings, name="twolayer-worker", keep=1)
    owner = worker_identity()

    def should_stop() -> bool:
        # a worker whose parent died stops by itself: it must not train as an orphan
        return stopping.is_set() or os.getppid() != parent_pid

    try:
        conn.send(("ready", owner))
        log.info("worker %s ready", owner)
        while not should_stop():
            if not conn.poll(settings.heartbeat_seconds):
                continue
            run_id = conn.recv()
            if run_id is None:
                break
            execute_run(  # which logs the outcome
                db=db, settings=settings, run_id=run_id, owner=owner, should_stop=should_stop
            )
            conn.send(("idle", run_id))
    except (EOFError, BrokenPipeError):
        pass  # the server is gone: nothing to report to
    finally:
        db.dispose()


@dataclass
class _Slot:
    """One worker process, as the dispatcher sees it."""

    process: SpawnProcess
    conn: Connection
    started: float
    owner: str | None = None  # its lease holder name, from its hello
    run_id: str | None = None  # the run handed to it, until it says it is idle
    dead: bool = False


class LocalExecutor:
    """Run ids go to `local_workers` spawned processes, each through its own pipe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._pending: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._halting = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="twolayer-dispatch", daemon=True)
        self._sweeper: Sweeper | None = None
        self._backoff = 0.0
        self._respawn_at = 0.0
        self._last_exit = ""
        # this process's queue: what it held is gone when the process is
        self.queue = f"local:{uuid.uuid4().hex}"

    # ------------------------------------------------------------ interface

    def start(self, db: Database) -> None:
        self._db = db  # the API process's own
        self._slots = [self._spawn() for _ in range(self.settings.local_workers)]
        self._thread.start()
        # ids in the old process's memory died with it; released runs wait too
        for run_id in queued_run_ids(db=self._db):
            deliver(db=self._db, submit=self.submit, run_id=run_id)
        self._sweeper = Sweeper(
            db=self._db, settings=self.settings, submit=self.submit, queue_id=self.queue_id
        )
        self._sweeper.start()

    def queue_id(self) -> str:
        return self.queue

    def submit(self, run_id: str) -> str:
        if self._halting.is_set() or not self._thread.is_alive():
            raise RuntimeError("the local executor is not running")
        with self._lock:
            if run_id not in self._pending:
                self._pending.append(run_id)
        self._wake()
        return self.queue

    def problem(self) -> str | None:
        if not self._thread.is_alive():
            return "the local executor's dispatcher is not running"
        with self._lock:
            ready = sum(s.owner is not None and not s.dead for s in self._slots)
        if ready:
            return None
        detail = f" (the last exited: {self._last_exit})" if self._last_exit else ""
        return f"no local worker process is ready, of {self.settings.local_workers}{detail}"

    def stop(self) -> None:
        """Each worker is asked to stop (SIGTERM: a run in hand is checkpointed
        and released), then waited for, then killed if it does not."""
        self._halting.set()
        if self._sweeper is not None:
            self._sweeper.stop()
        self._wake()
        self._thread.join(timeout=5)
        for slot in self._slots:
            if slot.process.is_alive() and slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for slot in self._slots:
            slot.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("worker %s did not stop in time; killing it", slot.process.pid)
                slot.process.kill()
                slot.process.join(timeout=5)
            if slot.process.pid is not None:
                process_dead(slot.process.pid)
            self._close(slot)
        self._slots.clear()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------ internals

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed by stop(): nothing to wake
            self._wake_w.send_bytes(b"")

    def _spawn(self) -> _Slot:
        parent_end, child_end = self._ctx.Pipe()
        process = self._ctx.Process(
            target=local_worker_main,
            args=(child_end, self.settings.model_dump(), os.getpid()),
            name="twolayer-worker",
            daemon=True,
        )
        # born ignoring SIGINT (an ignored signal stays ignored across exec, and
        # Python then installs no KeyboardInterrupt handler), so a Ctrl-C even
        # while the worker is still importing leaves it to the server to stop;
        # only the main thread may change a handler (a restart from the
        # dispatcher thread sets it in the worker's first line instead)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child_end.close()  # the child holds its own: EOF here when it dies
        return _Slot(process=process, conn=parent_end, started=time.monotonic())

    @staticmethod
    def _close(slot: _Slot) -> None:
        slot.conn.close()
        with contextlib.suppress(ValueError):  # not reaped yet: its handle goes with it
            slot.process.close()

    def _loop(self) -> None:
        while not self._halting.is_set():
            try:
                self._step()
            except Exception:  # the dispatcher must outlive any one failure
                log.exception("local executor: dispatch failed")
                time.sleep(0.5)

    def _step(self) -> None:
        slots = [s for s in self._slots if not s.dead]
        sentinels = {s.process.sentinel: s for s in slots}
        conns = {id(s.conn): s for s in slots}
        waitables: list[Any] = [self._wake_r, *sentinels, *(s.conn for s in slots)]
        timeout = 1.0
        if any(s.dead for s in self._slots):  # a replacement is due after its back-off
            timeout = min(timeout, max(0.0, self._respawn_at - time.monotonic()))
        for ready in wait(waitables, timeout=timeout):
            if ready is self._wake_r:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            elif isinstance(ready, int):
                self._lost(sentinels[ready])
            else:
                self._message(conns[id(ready)])
        self._replace_dead()
        self._dispatch()

    def _message(self, slot: _Slot) -> None:
        if slot.dead:
            return
        try:
            kind, value = slot.conn.recv()
        except (EOFError, OSError):
            self._lost(slot)
            return
        with self._lock:
            if kind == "ready":
                slot.owner = value
                self._backoff = 0.0
            slot.run_id = None  # idle: ready for the next run

    def _lost(self, slot: _Slot) -> None:
        """A worker process exited: its run comes back now, and it is replaced."""
        if slot.dead:
            return
        slot.dead = True
        slot.process.join(timeout=1)
        code = slot.process.exitcode
        if slot.process.pid is not None:  # its counters stay; its live gauges go
            process_dead(slot.process.pid)
        if self._halting.is_set():
            return
        self._last_exit = f"pid {slot.process.pid}, exit code {code}"
        log.warning("worker %s exited (%s); starting another", slot.process.pid, code)
        if slot.owner is None and time.monotonic() - slot.started < QUICK_DEATH_SECONDS:
            self._backoff = min(MAX_BACKOFF_SECONDS, max(0.5, self._backoff * 2))
            self._respawn_at = time.monotonic() + self._backoff
        run_id = slot.run_id
        if run_id is not None and slot.owner is not None:
            if expire_lease(db=self._db, run_id=run_id, owner=slot.owner):
                log.warning("run %s lost its worker; re-queued", run_id)
            # re-queue it now (the sweeper would in a sweep) and send it again:
            # still queued if the worker died before its claim
            sweep_once(
                db=self._db, settings=self.settings, submit=self.submit, queue_id=self.queue_id
            )
            with self._lock:
                if run_id not in self._pending:
                    self._pending.appendleft(run_id)

    def _replace_dead(self) -> None:
        if self._halting.is_set() or time.monotonic() < self._respawn_at:
            return
        for i, slot in enumerate(self._slots):
            if slot.dead:
                self._close(slot)
                self._slots[i] = self._spawn()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                idle = next(
                    (s for s in self._slots if s.owner and not s.dead and s.run_id is None), None
                )
                if idle is None or not self._pending:
                    return
                run_id = self._pending.popleft()
                idle.run_id = run_id
            try:
                idle.conn.send(run_id)
            except OSError:  # it died meanwhile: its sentinel says so next
                with self._lock:
                    idle.run_id = None
                    self._pending.appendleft(run_id)
                return
