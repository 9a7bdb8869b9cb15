"""Delivery and the sweeper: how a run id reaches a worker, again if need be.

The database decides; the executor only carries ids, and a duplicated id is
harmless (the claim drops it). So every delivery may be repeated safely:
- `deliver` hands an id to the executor and records `delivered_at`; if the
  executor refuses (broker down) the run stays queued, undelivered;
- the sweeper re-queues runs whose lease expired (their worker was lost),
  fails them after max_attempts, and sends again the queued runs never
  delivered or delivered longer ago than `redeliver_after_seconds`.
Several sweepers (the API process, each Celery worker) may run at once: each
run is re-queued by exactly one of them, by one conditional UPDATE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError

from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database, is_unavailable
from app.worker.lease import requeue_expired

log = logging.getLogger("twolayer.sweeper")


def deliver(*, db: Database, submit: Callable[[str], None], run_id: str) -> bool:
    """Send the id; True if the executor took it (and `delivered_at` is recorded)."""
    try:
        submit(run_id)
    except Exception as exc:  # the broker is down: the sweeper sends it later
        log.warning("run %s not delivered now (%s); it will be sent again", run_id, exc)
        return False
    try:
        with db.write() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "queued")
                .values(delivered_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        # sent, but not recorded as sent: a sweeper sends it again later, and
        # the claim drops whichever copy comes second
        log.warning("run %s sent; its delivery not recorded (%s)", run_id, exc)
    return True


def undelivered_run_ids(*, db: Database, older_than: float) -> list[str]:
    """Queued runs never delivered, or delivered more than `older_than` seconds ago."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    with db.read() as session:
        return list(
            session.scalars(
                select(Run.id)
                .where(
                    Run.status == "queued",
                    or_(Run.delivered_at.is_(None), Run.delivered_at < cutoff),
                )
                .order_by(Run.created_at)
                .limit(1000)
            )
        )


def sweep_once(*, db: Database, settings: Settings, submit: Callable[[str], None]) -> None:
    for run_id in requeue_expired(db=db, max_attempts=settings.max_attempts):
        log.warning("run %s lost its worker; re-queued", run_id)
        deliver(db=db, submit=submit, run_id=run_id)
    for run_id in undelivered_run_ids(db=db, older_than=settings.redeliver_after_seconds):
        deliver(db=db, submit=submit, run_id=run_id)


class Sweeper:
    """A daemon thread that sweeps every `sweep_interval_seconds`."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        submit: Callable[[str], None],
    ) -> None:
        self.db, self.settings, self.submit = db, settings, submit
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="twolayer-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._halt.wait(self.settings.sweep_interval_seconds):
            try:
                sweep_once(db=self.db, settings=self.settings, submit=self.submit)
            except Exception:
                log.exception("sweep failed")
