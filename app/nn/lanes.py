"""A wide batch's columns in two lanes, so that both cores of a machine work on
every step.

The arithmetic. A batch whose work is large enough (`plan`) is cut into an even
number of pieces of near-equal width (at most a chunk wide, so their buffers
stay in cache) and the pieces are dealt to two lanes in turn. Each lane adds up
the sums of its own pieces (G = S·[X; 1]ᵀ, Σ dZ2, …: sums over columns, see
`workspace.py`), and the batch's sums are lane 0's plus lane 1's. Where each
piece starts and which lane adds it up depend on the batch's width, n_x, n_h
and the dtype only, never on how many threads run the lanes: one thread running
both lanes in turn computes bit for bit what two threads do, on every machine
and after every resume.

The threads. `Lanes(threads=2)` runs lane 1 on a helper thread while the
caller runs lane 0: NumPy releases the GIL in its matrix products and in the
ufuncs over large arrays, so the two lanes run on two cores. That pays when
the BLAS library runs each product on one thread (the caller sets that, e.g.
with threadpoolctl, before training: `app.nn` imports nothing but NumPy); a
multi-threaded BLAS called from two threads at once contends with itself.
`Lanes(threads=1)` (the default) runs both lanes on the calling thread.

The helper thread starts at the first parallel call and stops at `close()` or
when its `Lanes` is collected; a forked child starts its own.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

LANES = 2
# A batch is split when n_h·(n_x + 1)·b·itemsize ≥ SPLIT_WORK, its work weighed
# in bytes (a float32 product takes about half a float64 one's time): below it
# the hand-over to the helper (~16 µs) and the two threads' turns at the GIL
# cost more than the second core saves. Measured at n_h 128, n_x 100
# (bench/README.md): a batch of 256 loses in float64, 512 gains in float64 and
# loses in float32, 1 024 gains in both.
SPLIT_WORK = 1 << 25
MIN_PIECE = 128  # columns: a lane narrower than this is not worth a GEMM call

Ranges = tuple[tuple[int, int], ...]


def pieces(b: int, width: int) -> Ranges:
    """[start, stop) ranges covering b columns in pieces of at most `width`."""
    return tuple((start, min(start + width, b)) for start in range(0, b, width))


def plan(b: int, n_x: int, n_h: int, chunk: int, itemsize: int) -> tuple[Ranges, ...]:
    """The column ranges of a batch of b columns, one tuple per lane.

    One lane, in chunks of `chunk` columns, for a small batch; else two lanes
    dealt an even number of near-equal pieces of at most `chunk` columns.
    """
    if b < LANES * MIN_PIECE or n_h * (n_x + 1) * b * itemsize < SPLIT_WORK:
        return (pieces(b, chunk),)
    n = -(-b // chunk)
    n += n % LANES  # an even number: the lanes get the same count, or one apart
    width = -(-b // n)
    ranges = pieces(b, width)
    return tuple(ranges[k::LANES] for k in range(LANES))


def _serve(jobs: queue.SimpleQueue[Any], done: queue.SimpleQueue[Any]) -> None:
    """The helper thread: run each job, hand back its result or its exception. It
    keeps no reference to a job while it waits for the next (a job holds its
    caller's buffers, and through them its Lanes, which would never be collected)."""
    while True:
        job = jobs.get()
        if job is None:
            return
        failure: BaseException | None = None
        try:
            job()
        except BaseException as exc:  # re-raised on the caller's thread
            failure = exc
        del job
        done.put(failure)
        del failure


class Lanes:
    """Runs the two lanes of a step: on two threads (`threads=2`) or one.

    One step at a time: a lane that calls `run` or `close` of its own Lanes
    gets a RuntimeError (it would wait for itself)."""

    def __init__(self, threads: int = 1) -> None:
        if threads not in (1, LANES):
            raise ValueError(f"threads must be 1 or {LANES}, got {threads!r}")
        self.threads = threads
        self._jobs: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pid = 0
        self._lock = threading.Lock()  # one step at a time through the helper
        self._owner: int | None = None  # the thread running a step

    def run(self, lane0: Callable[[], None], lane1: Callable[[], None]) -> None:
        """Both lanes, lane 1 on the helper thread when there is one; returns once
        both are done, raising the first one's exception (lane 0's first)."""
        if self.threads == 1:
            lane0()
            lane1()
            return
        self._check_owner()
        with self._lock:
            self._owner = threading.get_ident()
            try:
                jobs = self._helper()
                jobs.put(lane1)
                try:
                    lane0()
                finally:  # lane 1 is never left writing into buffers after a return
                    failure = self._collect()
            finally:
                self._owner = None
            if failure is not None:
                raise failure

    def _collect(self) -> BaseException | None:
        """Lane 1's outcome, waited for even when a signal handler raises meanwhile
        (that exception comes after, the queue in step for the next run)."""
        interrupt: BaseException | None = None
        while True:
            try:
                failure: BaseException | None = self._done.get()
                break
            except BaseException as exc:
                interrupt = exc
        if interrupt is not None:
            raise interrupt
        return failure

    def _check_owner(self) -> None:
        if self._pid and self._pid != os.getpid():  # a fork's child: its own of everything
            self._lock, self._owner, self._jobs, self._thread = threading.Lock(), None, None, None
            self._pid = 0
        if self._owner == threading.get_ident():
            raise RuntimeError("a lane cannot run or close its own Lanes")

    def _helper(self) -> queue.SimpleQueue[Any]:
        if self._jobs is None:
            jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
            done: queue.SimpleQueue[Any] = queue.SimpleQueue()
            thread = threading.Thread(target=_serve, args=(jobs, done), name="twolayer-lane")
            thread.daemon = True
            thread.start()  # first: a thread that cannot start leaves nothing half-made
            self._jobs, self._done, self._thread, self._pid = jobs, done, thread, os.getpid()
            weakref.finalize(self, jobs.put, None)  # stopped with its Lanes
        return self._jobs

    def close(self) -> None:
        """Stop the helper thread and wait for it to end (a later parallel call
        starts a new one)."""
        self._check_owner()
        with self._lock:
            if self._jobs is not None and self._thread is not None:
                self._jobs.put(None)
                self._thread.join()
            self._jobs = self._thread = None
