"""The lease rules: who may train a run, and how a lost worker's run comes back.

- claim: one conditional UPDATE takes a queued run, or a running one whose
  lease expired; one row updated means the run is ours.
- fence: every later write (renewal, progress, history, checkpoint, result)
  carries `lease_owner = :me AND status = 'running'` and checks the row
  count; a worker that lost its lease gets `LeaseLost` and writes nothing more.
- release: a worker that stops (shutdown, orphaned) hands its run back to
  the queue, its attempt given back; `fail_run` ends it `failed` with the reason.
- expire: a holder known to be dead (the local executor saw its process
  exit) has its lease ended at once, not after `lease_seconds`.
- requeue: runs whose lease expired go back to the queue, and give up
  (`failed`) after `max_attempts` lost workers.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from app.core.metrics import LEASE_LOSSES
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database


class LeaseLost(Exception):
    """The run is no longer ours (expired and taken over, or deleted)."""


def worker_identity() -> str:
    """A lease holder's name: unique per worker process and start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_expiry(lease_seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_seconds)


def claim_run(*, db: Database, run_id: str, owner: str, lease_seconds: float) -> bool:
    """One conditional UPDATE: take a queued run, or a running one whose lease expired."""
    now = utcnow()
    with db.write() as session:
        result = session.execute(
            update(Run)
            .where(
                Run.id == run_id,
                or_(
                    Run.status == "queued",
                    and_(Run.status == "running", Run.lease_expires_at < now),
                ),
            )
            .values(
                status="running",
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Run.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def fence(session: Session, run_id: str, owner: str, **values: Any) -> bool:
    """Set `values` (a renewal: a new lease_expires_at) only if we still hold the
    lease, else LeaseLost; returns cancel_requested."""
    row = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.lease_owner == owner, Run.status == "running")
        .values(**values)
        .returning(Run.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        LEASE_LOSSES.inc()  # counted where it is found: the training stops now
        raise LeaseLost(run_id)
    return bool(row[0])


def release_run(session: Session, run_id: str, owner: str) -> None:
    """Hand our run back to the queue (this worker is stopping). A graceful stop
    is not a lost worker: the claim's attempt is given back, so deploys and
    restarts never make a run give up."""
    fence(
        session,
        run_id,
        owner,
        status="queued",
        lease_owner=None,
        lease_expires_at=None,
        delivered_at=utcnow(),  # queued now, and sent again at once by the releaser
        delivered_to=None,
        attempts=Run.attempts - 1,
    )


def expire_lease(*, db: Database, run_id: str, owner: str) -> bool:
    """The holder `owner` is known to be dead (its process exited): end its lease
    now instead of waiting for it to run out, so the sweeper re-queues the run
    at once. A lost worker all the same: the attempt counts."""
    with db.write() as session:
        result = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.lease_owner == owner, Run.status == "running")
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def fail_run(*, db: Database, run_id: str, owner: str, error: str) -> None:
    """End our run `failed` with the reason (fenced: only while we hold it)."""
    with db.write() as session:
        fence(
            session,
            run_id,
            owner,
            status="failed",
            error=error,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )


def gave_up(max_attempts: int) -> str:
    return f"gave up after {max_attempts} attempts (its workers were lost)"


def requeue_expired(*, db: Database, max_attempts: int) -> list[str]:
    """Runs whose worker was lost go back to the queue (or fail after max_attempts)."""
    now = utcnow()
    with db.write() as session:
        expired = and_(Run.status == "running", Run.lease_expires_at < now)
        session.execute(
            update(Run)
            .where(expired, Run.attempts >= max_attempts)
            .values(
                status="failed",
                error=gave_up(max_attempts),
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        ids = session.scalars(
            update(Run)
            .where(expired)
            .values(
                status="queued",
                lease_owner=None,
                lease_expires_at=None,
                delivered_at=now,  # queued now, and sent at once by the sweeper
                delivered_to=None,
            )
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        ).all()
    return list(ids)
