"""A run's history: its per-epoch figures, read at once or followed live."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.db.models import ENDED_STATUSES, Run, RunEpoch
from app.db.session import Database
from app.services.ownership import owned
from app.services.runs import RunView, views

# the events stream: how often it looks at the database, the longest silence
# while a run trains (or waits) before it says where the run stands, and how
# often it asks whether the reader may still read
POLL_SECONDS = 0.5
BEAT_SECONDS = 1.0
ALLOWED_CHECK_SECONDS = 1.0
MAX_EPOCHS_PER_EVENT = 10_000


@dataclass(frozen=True)
class HistoryColumns:
    """A run's per-epoch figures, one list per column; validation ones None without it."""

    epoch: list[int]
    train_cost: list[float]
    validation_cost: list[float | None] | None
    train_accuracy: list[float]
    validation_accuracy: list[float | None] | None


def _columns(run: Run, rows: list[RunEpoch]) -> HistoryColumns:
    has_validation = float(run.hyperparameters.get("validation_fraction", 0)) > 0
    return HistoryColumns(
        epoch=[r.epoch for r in rows],
        train_cost=[r.train_cost for r in rows],
        validation_cost=[r.validation_cost for r in rows] if has_validation else None,
        train_accuracy=[r.train_accuracy for r in rows],
        validation_accuracy=[r.validation_accuracy for r in rows] if has_validation else None,
    )


def _epochs_after(
    session: Session, run: Run, since: int | None, limit: int | None
) -> HistoryColumns:
    query = select(RunEpoch).where(RunEpoch.run_id == run.id)
    if since is not None:
        query = query.where(RunEpoch.epoch > since)
    return _columns(run, list(session.scalars(query.order_by(RunEpoch.epoch).limit(limit))))


def get_history(*, db: Database, owner: str, run_id: str, since: int | None) -> HistoryColumns:
    """The epochs after `since` (all without it), oldest first."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
        return _epochs_after(session, run, since, None)


def _look(*, db: Database, owner: str, run_id: str, since: int) -> tuple[RunView, HistoryColumns]:
    """The run, where it stands, and its epochs after `since`, in one read."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
        return views(session, [run])[0], _epochs_after(session, run, since, MAX_EPOCHS_PER_EVENT)


@dataclass(frozen=True)
class Event:
    """One server-sent event: `id` is the last epoch the client has been sent."""

    event: str
    id: int
    data: dict[str, Any]


def state(view: RunView) -> dict[str, Any]:
    run = view.run
    return {
        "status": run.status,
        "epoch": run.epoch,
        "epochs": run.epochs,
        "queue_position": view.queue_position,
        "eta_seconds": eta_seconds(run),
    }


def eta_seconds(run: Run) -> float | None:
    """The time left at this attempt's pace, while the run trains."""
    if run.status != "running" or run.seconds_per_epoch is None:
        return None
    return round(run.seconds_per_epoch * max(run.epochs - run.epoch, 0), 1)


def ended_early(reason: str, detail: str) -> dict[str, Any]:
    """An `end` that is not the run's: it was deleted, or the reader lost its access."""
    return {"status": None, "reason": reason, "detail": detail}


async def follow_run(
    *,
    db: Database,
    owner: str,
    run_id: str,
    since: int = 0,
    allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[Event]:
    """The run's events until it ends, for a live chart.

    - `status` when the status changes (first: where the run stands now);
    - `queued` at least every second while it waits, with its queue position;
    - `epochs`: the figures of every epoch after the last one sent, columnar,
      as the worker writes them (about once a second);
    - `progress` at least every second while it trains and no epoch arrives;
    - `end`: the final status, error, metrics and warnings, after the last
      epochs (`reason` "ended"); or, ending the stream early, `reason`
      "deleted" (the run was deleted) or "unauthorized" (`allowed`, asked
      every ALLOWED_CHECK_SECONDS, said no: the reader's key was revoked),
      with `status` null and a `detail`.
    Each event's id is the last epoch sent: a client that reconnects with it
    (Last-Event-ID) is sent the epochs after it and misses nothing.
    """
    last_status: str | None = None
    next_beat = 0.0
    next_check = time.monotonic() + ALLOWED_CHECK_SECONDS
    while True:
        if allowed is not None and time.monotonic() >= next_check:
            if not await allowed():
                detail = "the API key is no longer valid (it was revoked)"
                yield Event("end", since, ended_early("unauthorized", detail))
                return
            next_check = time.monotonic() + ALLOWED_CHECK_SECONDS
        try:
            view, columns = await asyncio.to_thread(
                _look, db=db, owner=owner, run_id=run_id, since=since
            )
        except NotFound:
            yield Event("end", since, ended_early("deleted", f"run {run_id} was deleted"))
            return
        run = view.run
        now = time.monotonic()
        if run.status != last_status:
            last_status = run.status
            next_beat = now + BEAT_SECONDS
            yield Event("status", since, state(view))
        if columns.epoch:
            since = columns.epoch[-1]
            next_beat = now + BEAT_SECONDS
            yield Event("epochs", since, asdict(columns))
            if len(columns.epoch) == MAX_EPOCHS_PER_EVENT:
                continue  # more are waiting: send them at once
        if run.status in ENDED_STATUSES:
            yield Event(
                "end",
                since,
                {
                    **state(view),
                    "reason": "ended",
                    "error": run.error,
                    "metrics": run.metrics,
                    "best_epoch": run.best_epoch,
                    "warnings": run.warnings or [],
                },
            )
            return
        if now >= next_beat:
            next_beat = now + BEAT_SECONDS
            yield Event("queued" if run.status == "queued" else "progress", since, state(view))
        await asyncio.sleep(POLL_SECONDS)
