"""The training job, a run's lifecycle on a worker: claim it, train it, write
progress, history and checkpoints as it goes, then the result.

Every write is fenced by the lease (`app.worker.lease`): a worker that lost
its lease stops at once and writes nothing more.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.core.logging import for_run
from app.core.metrics import ATTEMPTS, EPOCHS
from app.core.settings import Settings
from app.db.arrays import stored_dataset
from app.db.base import utcnow
from app.db.models import Checkpoint, Run, RunEpoch, StoredModel
from app.db.session import Database, is_unavailable
from app.nn import EpochRecord, FitResult, Hyperparameters, Model, Progress, Trainer
from app.worker.dataset_cache import rows_of
from app.worker.endings import ending, final_metrics
from app.worker.environment import recorded
from app.worker.history import history_columns, history_rows
from app.worker.lease import (
    LeaseLost,
    claim_run,
    fail_run,
    fence,
    gave_up,
    lease_expiry,
    release_run,
)
from app.worker.sweep_trial import mark_pruned, trial_pruner
from app.worker.threads import training_threads

log = logging.getLogger("twolayer.worker")

Outcome = Literal["dropped", "succeeded", "failed", "cancelled", "lost", "released"]


@dataclass
class Reporter:
    """The training callback: renews the lease, flushes history in batches on a
    time budget, checkpoints every N epochs or S seconds, and stops the loop on
    cancel, on a lost lease, or when this worker must stop."""

    db: Database
    settings: Settings
    run_id: str
    owner: str
    should_stop: Callable[[], bool]
    checkpoint_epoch: int
    started_at: datetime | None = None
    # a sweep's trial: asked after each epoch whether its sweep prunes it
    prune: Callable[[EpochRecord], bool] | None = None
    pruned: str = ""  # why it was, if it was
    pending: list[EpochRecord] = field(default_factory=list)
    cancelled: bool = False
    over_time: bool = False
    lost: bool = False
    interrupted: bool = False
    unavailable_since: float | None = None  # the database has not answered since

    def __post_init__(self) -> None:
        now = time.monotonic()
        self.attempt_began = (now, self.checkpoint_epoch)  # for the pace of this attempt
        self.renewed_at = now  # when the lease was last renewed (the caller may say earlier)
        self.next_renew = now + self.settings.heartbeat_seconds
        self.next_flush = now + self.settings.history_flush_seconds
        self.next_checkpoint = now + self.settings.checkpoint_every_seconds
        # the run's wall-clock limit, across attempts, as a monotonic deadline:
        # checked after every epoch, so it costs one comparison there
        self.deadline = math.inf
        if self.started_at is not None:
            spent = (utcnow() - self.started_at).total_seconds()
            self.deadline = now + self.settings.max_run_seconds - spent

    def __call__(self, progress: Progress) -> bool:
        record = progress.record
        if record is not None:  # first: the epoch is done whatever happens next
            self.pending.append(record)
            EPOCHS.inc()
        if self.should_stop():
            self.interrupted = True
            return True
        if record is not None and self.prune is not None and self.prune(record):
            self.pruned = getattr(self.prune, "reason", "pruned by its sweep")
            return True
        now = time.monotonic()
        if now > self.deadline:
            self.over_time = True
            return True
        checkpoint = record is not None and (
            progress.epoch - self.checkpoint_epoch >= self.settings.checkpoint_every_epochs
            or now >= self.next_checkpoint
        )
        flush = record is not None and now >= self.next_flush
        if not (checkpoint or flush or now >= self.next_renew):
            return False
        if self.unavailable_since is not None and now < self.next_renew:
            return False  # the database is away: try again at the next heartbeat only
        try:
            with self.db.write() as session:
                cancel = self.write_progress(session, progress, checkpoint=checkpoint)
        except LeaseLost:
            self.lost = True
            return True
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            return self.database_away(exc)
        self.pending.clear()  # committed
        if self.unavailable_since is not None:
            log.info(
                "run %s: the database is back after %.1f s",
                self.run_id,
                now - self.unavailable_since,
            )
            self.unavailable_since = None
        self.renewed_at = now
        now = time.monotonic()
        self.next_renew = now + self.settings.heartbeat_seconds
        if flush or checkpoint:
            self.next_flush = now + self.settings.history_flush_seconds
        if checkpoint:
            self.next_checkpoint = now + self.settings.checkpoint_every_seconds
            self.checkpoint_epoch = progress.epoch
        if cancel:
            self.cancelled = True
            return True
        return False

    def database_away(self, exc: Exception) -> bool:
        """A write failed because the database is unreachable (the epochs stay
        pending; a commit that took effect all the same is harmless: the history
        write replaces its epochs). Training goes on while the lease in hand
        lasts, trying again at each heartbeat; once it may have expired, another
        worker may own the run, so this one stops as if it had lost the lease."""
        now = time.monotonic()  # the write may have waited for its connect timeout
        if self.unavailable_since is None:
            self.unavailable_since = now
            log.warning("run %s: the database is unavailable (%s); retrying", self.run_id, exc)
        self.next_renew = now + self.settings.heartbeat_seconds
        if now - self.renewed_at < self.settings.lease_seconds:
            return False
        log.warning("run %s: no database for the whole lease; stopping", self.run_id)
        self.lost = True
        return True

    def write_progress(self, session: Session, progress: Progress, *, checkpoint: bool) -> bool:
        values: dict[str, Any] = {"lease_expires_at": lease_expiry(self.settings.lease_seconds)}
        if self.pending:
            values["epoch"] = self.pending[-1].epoch
        began, first_epoch = self.attempt_began
        if progress.epoch > first_epoch:
            values["seconds_per_epoch"] = (time.monotonic() - began) / (
                progress.epoch - first_epoch
            )
        cancel = fence(session, self.run_id, self.owner, **values)
        self.flush_history(session)
        if checkpoint:
            session.merge(
                Checkpoint(
                    run_id=self.run_id,
                    epoch=progress.epoch,
                    data=progress.trainer.checkpoint(history=False),  # run_epoch has it
                    created_at=utcnow(),
                )
            )
        return cancel

    def flush_history(self, session: Session) -> None:
        if self.pending:
            # a Core executemany on the table: cheaper per row than the ORM's bulk path
            table = RunEpoch.metadata.tables[RunEpoch.__tablename__]
            if self.unavailable_since is not None:
                # after an outage the epochs are replaced, not only added: a commit
                # whose answer was lost may have written them already
                first = self.pending[0].epoch
                session.execute(
                    delete(table).where(table.c.run_id == self.run_id, table.c.epoch >= first)
                )
            session.execute(insert(table), history_rows(self.run_id, self.pending))


def execute_run(
    *,
    db: Database,
    settings: Settings,
    run_id: str,
    owner: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Deliver one run id: train it if the claim succeeds (its logs carry its id)."""
    with for_run(run_id):
        outcome = _execute(db, settings, run_id, owner, should_stop)
        log.info("run %s: %s", run_id, outcome)
    ATTEMPTS.labels(outcome).inc()
    return outcome


def _execute(
    db: Database, settings: Settings, run_id: str, owner: str, should_stop: Callable[[], bool]
) -> Outcome:
    if not claim_run(db=db, run_id=run_id, owner=owner, lease_seconds=settings.lease_seconds):
        return "dropped"
    try:
        return _train(db=db, settings=settings, run_id=run_id, owner=owner, should_stop=should_stop)
    except LeaseLost:
        log.warning("run %s: lease lost, stopping without writing", run_id)
        return "lost"
    except Exception as exc:  # the run fails with the reason; the worker lives on
        if is_unavailable(exc):
            # not the run's fault: it stays leased, and once the lease expires it
            # is re-queued and resumed from its checkpoint (an attempt counted)
            log.warning("run %s: stopped, the database is unavailable (%s)", run_id, exc)
            return "lost"
        log.exception("run %s failed", run_id)
        try:
            fail_run(db=db, run_id=run_id, owner=owner, error=f"{type(exc).__name__}: {exc}")
        except LeaseLost:
            return "lost"
        return "failed"


def _train(
    *, db: Database, settings: Settings, run_id: str, owner: str, should_stop: Callable[[], bool]
) -> Outcome:
    with db.read() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LeaseLost(run_id)
        checkpoint = session.get(Checkpoint, run_id)
        init_model = None
        if checkpoint is None and run.init_from_run_id is not None:
            stored = session.get(StoredModel, run.init_from_run_id)
            if stored is None:
                raise ValueError(f"init_from_run_id {run.init_from_run_id} has no weights")
            init_model = Model.from_bytes(stored.data)
        prune = trial_pruner(session, run_id, checkpoint.epoch if checkpoint else 0)
        if run.attempts <= settings.max_attempts:  # its labels, in the same transaction
            arrays = stored_dataset(db=db, dataset_id=run.dataset_id, session=session)
    if run.attempts > settings.max_attempts:
        fail_run(db=db, run_id=run_id, owner=owner, error=gave_up(settings.max_attempts))
        return "failed"
    # X read a chunk at a time into the engine's own arrays (app.nn.data.Rows),
    # from this host's copy when it has one (app.worker.dataset_cache)
    X = rows_of(arrays, settings)
    beat, threads = settings.heartbeat_seconds / 2, training_threads(settings)
    renewed = time.monotonic()
    with db.write() as session:
        # a resumed run rewrites the epochs after its checkpoint
        start_epoch = checkpoint.epoch if checkpoint is not None else 0
        fence(
            session,
            run_id,
            owner,
            epoch=start_epoch,
            started_at=run.started_at or utcnow(),
            environments=recorded(run.environments, run.attempts),  # where this attempt runs
            # renewed here, where the reporter's count of the lease begins
            lease_expires_at=lease_expiry(settings.lease_seconds),
        )
        session.execute(
            delete(RunEpoch).where(RunEpoch.run_id == run_id, RunEpoch.epoch > start_epoch)
        )
        history = history_columns(session, run_id, start_epoch) if checkpoint else None
    if checkpoint is not None:
        log.info("run %s: resuming from epoch %d", run_id, checkpoint.epoch)
        trainer = Trainer.from_checkpoint(
            checkpoint.data, X, arrays.Y, history=history, heartbeat_seconds=beat, threads=threads
        )
    else:
        trainer = Trainer(
            X,
            arrays.Y,
            Hyperparameters(**run.hyperparameters),
            classes=arrays.classes,
            init_model=init_model,
            heartbeat_seconds=beat,
            threads=threads,
        )
    reporter = Reporter(
        db=db,
        settings=settings,
        run_id=run_id,
        owner=owner,
        should_stop=should_stop,
        checkpoint_epoch=start_epoch,
        started_at=run.started_at or utcnow(),
        prune=prune,
    )
    reporter.renewed_at = renewed
    result = trainer.run(reporter)
    if reporter.lost:
        raise LeaseLost(run_id)
    if reporter.interrupted:
        return _release(db=db, reporter=reporter, trainer=trainer)
    return _finish(db=db, reporter=reporter, result=result)


def _release(*, db: Database, reporter: Reporter, trainer: Trainer) -> Outcome:
    """This worker is stopping: checkpoint the last epoch and hand the run back to the queue."""
    with db.write() as session:
        reporter.write_progress(
            session,
            Progress(trainer.epoch, trainer.hp.epochs, None, trainer),
            checkpoint=True,
        )
        release_run(session, reporter.run_id, reporter.owner)
    return "released"


def _finish(*, db: Database, reporter: Reporter, result: FitResult) -> Outcome:
    status, error = ending(
        result,
        cancelled=reporter.cancelled or bool(reporter.pruned),
        over_time=reporter.over_time,
        max_run_seconds=reporter.settings.max_run_seconds,
    )
    metrics = final_metrics(result)
    with db.write() as session:
        fence(
            session,
            reporter.run_id,
            reporter.owner,
            status=status,
            error=error,
            epoch=result.epochs_completed,
            metrics=metrics,
            warnings=[*result.warnings, *([reporter.pruned] if reporter.pruned else [])],
            best_epoch=result.best_epoch,
            finished_at=utcnow(),
            lease_expires_at=None,  # lease_owner stays: the worker that finished it
        )
        reporter.flush_history(session)
        if status != "failed":
            session.merge(
                StoredModel(
                    run_id=reporter.run_id,
                    epoch=result.epochs_completed,
                    data=result.model.to_bytes(),
                    created_at=utcnow(),
                )
            )
        session.execute(delete(Checkpoint).where(Checkpoint.run_id == reporter.run_id))
        if reporter.pruned:
            mark_pruned(session, reporter.run_id)
    return status
