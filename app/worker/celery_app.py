"""The Celery application of the `celery` executor, and its worker side.

The database lease, not Celery, decides who trains a run: messages are acked
late and re-delivered when a worker is lost, and a duplicate is dropped by
the claim. One training at a time per worker process, prefetch 1.

`twolayer worker` runs `celery worker` on `celery` below (built from the
environment's settings). Each worker process also runs a sweeper thread, so
a lost worker's run is re-queued and resumed within a lease, without waiting
for the broker's visibility timeout; the sweepers take turns (sweep_turn).
PostgreSQL connections: one per worker, kept by its pool process; the main
process opens one only for a sweep of its turn. With
TWOLAYER_WORKER_METRICS_PORT the main process serves its own /metrics: the
counters of its pool processes (forked: they share its metrics directory).

A warm shutdown (SIGTERM to the worker, as `docker compose stop` sends it,
or to its whole process group) is graceful for training too: the pool
process checkpoints the run's last epoch and releases it (its attempt given
back) and sends it again at once, so another worker, or this one after its
restart, resumes it without waiting for the lease.
"""

from __future__ import annotations

import logging
import multiprocessing.sharedctypes
import os
import signal
import threading
from typing import Any

from celery import Celery
from celery.signals import (
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from app.core.metrics import serve_http as serve_metrics
from app.core.settings import Settings, get_settings
from app.db.session import Database, connect
from app.worker.job import execute_run
from app.worker.lease import worker_identity
from app.worker.sweeper import Sweeper, deliver
from app.worker.threads import pin_blas

log = logging.getLogger("twolayer.celery")
TASK = "twolayer.train_run"
QUEUE = "twolayer"


def make_celery(settings: Settings) -> Celery:
    app = Celery("twolayer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a message is acked when its training has ended
        task_reject_on_worker_lost=True,  # a killed worker's message goes back
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives a broker restart
        # lost workers are found by the database lease long before this
        broker_transport_options={"visibility_timeout": 6 * 3600},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)(train_run)
    return app


def send_run(app: Celery, run_id: str) -> str | None:
    """Publish once, without Celery's own retries: if the broker is down the run
    stays undelivered in the database and the sweeper sends it later. Returns
    the id of the queue that took it (broker_queue_id), asked before sending: a
    restart in between makes the message look lost (sent again, the claim drops
    the copy), never a lost one look queued."""
    queue = broker_queue_id(app)
    app.send_task(TASK, args=[run_id], queue=QUEUE, retry=False)
    return queue


_redis_clients: dict[str, Any] = {}


def _redis(app: Celery) -> Any:
    """The broker's Redis client, or None for another broker."""
    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    if url not in _redis_clients:
        import redis  # celery[redis]'s client

        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _redis_clients[url]


def broker_queue_id(app: Celery) -> str | None:
    """Which incarnation of the broker holds the queue: for Redis, the server's
    run id, new at every restart (its lists are gone with it unless it persists
    them: then its messages are sent once more, which the claim drops). None
    for another broker: it cannot tell, and its messages are sent again by age."""
    client = _redis(app)
    return None if client is None else f"redis:{client.info('server')['run_id']}"


SWEEP_TURN_KEY = f"{QUEUE}:sweep-turn"
# deletes the turn only if this sweeper holds it (another may have taken it since)
_GIVE_BACK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def sweep_turn(app: Celery, seconds: float, holder: str) -> bool:
    """Whether this sweeper sweeps now: one of all the sweepers on a Redis broker
    (the API's, every worker's) takes each turn of about `seconds`, so the
    database sees one sweep per interval however many workers there are, not
    one per worker. None is taken while Redis cannot be asked (nothing could be
    sent again then either); another broker: every sweeper sweeps. `holder`
    names this sweeper (the same at every call)."""
    client = _redis(app)
    if client is None:
        return True
    try:
        return bool(client.set(SWEEP_TURN_KEY, holder, nx=True, px=max(1, int(seconds * 900))))
    except Exception as exc:
        log.debug("no sweep turn: the broker cannot be asked (%s)", exc)
        return False


def give_back_turn(app: Celery, holder: str) -> None:
    """A sweep of this sweeper's turn failed (its database unreachable, say): the
    turn goes back at once, for another sweeper to take, rather than staying
    with one that keeps failing."""
    client = _redis(app)
    if client is None:
        return
    try:
        client.eval(_GIVE_BACK, 1, SWEEP_TURN_KEY, holder)
    except Exception as exc:
        log.debug("the sweep turn not given back (%s); it expires", exc)


# ------------------------------------------------------------- worker side

_state: dict[str, Any] = {}
# Set by the main process at warm shutdown, read by the pool processes it
# forked: one byte of shared memory, no lock a killed process could leave held
_shutting_down = multiprocessing.sharedctypes.RawValue("b", 0)


def _worker_database() -> Database:
    """One engine per pool process, made after the fork, keeping one connection."""
    if "db" not in _state or _state.get("pid") != os.getpid():
        _state["db"] = connect(get_settings(), name="twolayer-worker", keep=1)
        _state["pid"] = os.getpid()
    db: Database = _state["db"]
    return db


def _publisher() -> Celery:
    if "publisher" not in _state:
        _state["publisher"] = make_celery(get_settings())
    app: Celery = _state["publisher"]
    return app


def train_run(run_id: str) -> str:
    pin_blas()  # the engine's lanes are the threads (app/worker/threads.py)
    parent = os.getppid()
    db = _worker_database()
    stopping = threading.Event()
    # SIGTERM to this pool process (its process group was signalled) asks for a
    # graceful stop while it trains; billiard's own handling is restored after
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set()) if main else None
    try:
        outcome = execute_run(
            db=db,
            settings=get_settings(),
            run_id=run_id,
            owner=worker_identity(),
            # asked to stop, or a pool process whose worker died: it must not
            # train as an orphan
            should_stop=lambda: (
                stopping.is_set() or bool(_shutting_down.value) or os.getppid() != parent
            ),
        )
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    if outcome == "released":  # to the broker again now, for whichever worker is up
        deliver(db=db, submit=lambda r: send_run(_publisher(), r), run_id=run_id)
    return outcome


def _on_process_init(**_: Any) -> None:
    """A new pool process: its own engine, connected now rather than by its first
    task (a database that is down is met again by the task, which waits for it)."""
    _state.clear()
    try:
        with _worker_database().engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as exc:
        log.warning("the database is not reachable yet (%s)", exc)


def _on_worker_shutting_down(**_: Any) -> None:
    """Warm shutdown, in the main process: the trainings in hand are released
    now (their pool processes see the flag within a heartbeat) instead of
    trained to their end while the worker waits for them."""
    _shutting_down.value = 1


def _on_worker_ready(**_: Any) -> None:
    settings = get_settings()
    if settings.worker_metrics_port is not None:
        # this worker's endpoint: its pool processes' counters and its sweeper's
        # (the database's gauges are the API's to give: counted once)
        serve_metrics(host=settings.worker_metrics_host, port=settings.worker_metrics_port)
        log.info(
            "metrics on http://%s:%d/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    app = _state["app"] = make_celery(settings)
    holder = worker_identity()
    sweeper = Sweeper(
        # the main process keeps no connection: it is idle but for its sweeps,
        # which take turns (sweep_turn); the pool process keeps the worker's one
        db=connect(settings, name="twolayer-sweeper", keep=0),
        settings=settings,
        submit=lambda run_id: send_run(app, run_id),
        queue_id=lambda: broker_queue_id(app),
        turn=lambda: sweep_turn(app, settings.sweep_interval_seconds, holder),
        give_back=lambda: give_back_turn(app, holder),
    )
    sweeper.start()
    _state["sweeper"] = sweeper


def _on_worker_shutdown(**_: Any) -> None:
    sweeper = _state.pop("sweeper", None)
    if sweeper is not None:
        sweeper.stop()


worker_process_init.connect(_on_process_init)
worker_ready.connect(_on_worker_ready)
worker_shutdown.connect(_on_worker_shutdown)
worker_shutting_down.connect(_on_worker_shutting_down)


def _from_environment() -> Celery | None:
    settings = get_settings()
    return make_celery(settings) if settings.broker_url else None


celery = _from_environment()
