"""How a worker process uses the machine's cores while it trains.

The engine runs a large batch's two lanes on two threads (`app.nn.lanes`), and
each of its matrix products on one: a worker process holds its BLAS library to
one thread (`pin_blas`, through threadpoolctl, before its first run). Both
choices leave the arithmetic alone: a run's weights are the same, bit for bit,
on one lane thread or two. Holding BLAS to one thread everywhere also keeps
them from depending on how many cores a worker's machine has (OpenBLAS's
float32 products round differently on one thread and on several).

TWOLAYER_TRAINING_THREADS: 1 or 2 threads per training, or 0 (the default):
two where the process may use two cores or more (its CPU affinity) per
worker process of the local executor, one else. It sees the cores, not a
Celery pool: Celery workers with `--concurrency` above half the host's cores,
or several workers on one host, set it to 1.
"""

from __future__ import annotations

import functools
import logging
import os

from threadpoolctl import threadpool_limits

from app.core.settings import Settings
from app.nn.lanes import LANES

log = logging.getLogger("twolayer.worker")


def training_threads(settings: Settings) -> int:
    """The threads a training of this process runs its lanes on."""
    if settings.training_threads:
        return settings.training_threads
    cores = len(os.sched_getaffinity(0))
    if settings.executor == "local":  # its worker processes share this host's cores
        cores //= settings.local_workers
    return max(1, min(LANES, cores))


@functools.cache
def _pin(pid: int) -> None:
    threadpool_limits(limits=1, user_api="blas")  # kept: the process trains with it
    log.debug("process %d: BLAS on one thread", pid)


def pin_blas() -> None:
    """This worker process's BLAS on one thread (once per process: a fork's
    child pins its own)."""
    _pin(os.getpid())
