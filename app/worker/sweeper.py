"""Delivery and the sweeper: how a run id reaches a worker, again if need be.

The database decides; the executor only carries ids, and a duplicated id is
harmless (the claim drops it), but each one is work for the broker and a
worker, so a message is sent again only when it may be lost, never because
a run is simply waiting in a long queue:
- a run is queued (created, released by a stopping worker, re-queued after a
  lost one) with `delivered_at` now and `delivered_to` None, and whoever
  queued it hands it over at once (`deliver`), which records the queue that
  took it in `delivered_to`: the Redis server's run id (a new one at every
  restart), the local executor's process; "" for a queue that cannot tell.
  If the executor refuses (broker down), `delivered_to` stays None;
- the sweeper re-queues runs whose lease expired (their worker was lost),
  fails them after max_attempts, and sends again the queued runs that were
  not handed over within PENDING_SECONDS (refused, or the process that
  queued them died first), that were handed to a queue that is not the one
  there now (Redis restarted and lost its lists; the local executor's
  process is gone), or that were handed, longer ago than
  `redeliver_after_seconds`, to a queue that cannot tell.
Several sweepers (the API process, each Celery worker) may run at once: each
run is re-queued, and each message sent again, by exactly one of them (rows
taken with FOR UPDATE SKIP LOCKED and marked in the same transaction).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import DBAPIError

from app.core.metrics import REDELIVERIES, REQUEUES
from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database, is_unavailable
from app.worker.lease import requeue_expired

log = logging.getLogger("twolayer.sweeper")

PENDING_SECONDS = 10.0  # a run queued this long and not handed over is sent by the sweeper
Submit = Callable[[str], "str | None"]  # sends a run id; the id of the queue that took it


def deliver(*, db: Database, submit: Submit, run_id: str) -> bool:
    """Send the id; True if the executor took it (and which queue did is recorded)."""
    return deliver_all(db=db, submit=submit, run_ids=[run_id]) == 1


def deliver_all(*, db: Database, submit: Submit, run_ids: Sequence[str]) -> int:
    """deliver for many: each id sent, the deliveries recorded in one transaction
    (one statement per queue that took them); how many the executor took. The
    first refusal ends it: a broker that does not answer would cost its timeout
    for every id; the ones not sent stay pending, and the sweeper sends them."""
    taken: dict[str, list[str]] = {}
    for n, run_id in enumerate(run_ids):
        try:
            taken.setdefault(submit(run_id) or "", []).append(run_id)
        except Exception as exc:  # the broker is down: the sweeper sends the rest later
            log.warning(
                "%d run(s) from %s on not delivered now (%s); they will be sent again",
                len(run_ids) - n,
                run_id,
                exc,
            )
            break
    if taken:
        _record(db, taken)
    return sum(len(ids) for ids in taken.values())


def _record(db: Database, taken: dict[str, list[str]]) -> None:
    """Record the deliveries. They were sent, and their runs committed before: if
    this fails, the sweeper sends them again later and the claim drops whichever
    copy comes second, so the failure is logged, not raised (a client told of an
    error would create its runs again)."""
    try:
        with db.write() as session:
            for queue, ids in taken.items():
                session.execute(
                    update(Run)
                    .where(Run.id.in_(ids), Run.status == "queued")
                    .values(delivered_at=utcnow(), delivered_to=queue)
                    .execution_options(synchronize_session=False)
                )
    except DBAPIError as exc:
        sent = ", ".join(i for ids in taken.values() for i in ids)
        if is_unavailable(exc):
            log.warning("runs %s sent; their delivery not recorded (%s)", sent, exc)
        else:
            log.exception("runs %s sent; recording their delivery failed", sent)


def queued_run_ids(*, db: Database) -> list[str]:
    """Every queued run, oldest first (the local executor's queue, after a restart)."""
    with db.read() as session:
        return list(
            session.scalars(select(Run.id).where(Run.status == "queued").order_by(Run.created_at))
        )


def _maybe_lost(now: datetime, settings: Settings, queue: str | None) -> Any:
    handed_late = Run.delivered_at < now - timedelta(seconds=PENDING_SECONDS)
    pending = and_(Run.delivered_to.is_(None), or_(Run.delivered_at.is_(None), handed_late))
    aged = Run.delivered_at < now - timedelta(seconds=settings.redeliver_after_seconds)
    if queue is None:  # this queue cannot tell: by age, whatever took it
        return or_(pending, and_(Run.delivered_to.is_not(None), aged))
    gone = and_(Run.delivered_to != "", Run.delivered_to != queue)
    return or_(pending, gone, and_(Run.delivered_to == "", aged))


def take_maybe_lost(*, db: Database, settings: Settings, queue: str | None) -> list[str]:
    """The queued runs whose message may be lost (oldest first, up to 1000), each
    marked as being handed over now, so that no other sweeper takes it too."""
    now = utcnow()
    with db.write() as session:
        ids = list(
            session.scalars(
                select(Run.id)
                .where(Run.status == "queued", _maybe_lost(now, settings, queue))
                .order_by(Run.created_at)
                .limit(1000)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(
                update(Run)
                .where(Run.id.in_(ids))
                .values(delivered_at=now, delivered_to=None)
                .execution_options(synchronize_session=False)
            )
    return ids


def sweep_once(
    *,
    db: Database,
    settings: Settings,
    submit: Submit,
    queue_id: Callable[[], str | None] = lambda: None,
) -> None:
    """One pass. `queue_id`: the id of the queue there now (None: it cannot tell);
    if it cannot be asked (broker down), no message is sent again this pass."""
    for run_id in requeue_expired(db=db, max_attempts=settings.max_attempts):
        log.warning("run %s lost its worker; re-queued", run_id)
        REQUEUES.inc()
        deliver(db=db, submit=submit, run_id=run_id)
    try:
        queue = queue_id()
    except Exception as exc:
        log.warning("the queue cannot be asked which it is (%s); nothing sent again now", exc)
        return
    again = take_maybe_lost(db=db, settings=settings, queue=queue)
    if again:
        REDELIVERIES.inc(len(again))
        deliver_all(db=db, submit=submit, run_ids=again)


class Sweeper:
    """A daemon thread that sweeps every `sweep_interval_seconds` when `turn()` says
    it is its turn (sweepers sharing a broker take turns: celery_app.sweep_turn)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        submit: Submit,
        queue_id: Callable[[], str | None] = lambda: None,
        turn: Callable[[], bool] = lambda: True,
        give_back: Callable[[], None] = lambda: None,
    ) -> None:
        self.db, self.settings, self.submit, self.queue_id = db, settings, submit, queue_id
        self.turn, self.give_back = turn, give_back
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="twolayer-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        # ±10 % of jitter: sweepers started together do not keep asking together
        interval = self.settings.sweep_interval_seconds
        while not self._halt.wait(interval * random.uniform(0.9, 1.1)):
            if not self.turn():
                continue
            try:
                sweep_once(
                    db=self.db, settings=self.settings, submit=self.submit, queue_id=self.queue_id
                )
            except Exception:
                log.exception("sweep failed")
                self.give_back()
