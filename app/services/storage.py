"""What an owner stores, against the owner's budget: datasets' arrays, runs' models,
and for every queued or running run the bound of what it will store."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import StorageFull
from app.db.models import Dataset, Run, StoredModel

MiB = 1024 * 1024


def lock_owner(session: Session, owner: str) -> None:
    """Serialise the owner's creations (datasets and runs) until the transaction
    ends, so that concurrent requests cannot all pass a cap or the budget.

    SQLite's write transactions are serial already (BEGIN IMMEDIATE, see
    app.db.session); PostgreSQL takes a transaction-scoped advisory lock
    keyed on the owner.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(owner, 0))))


def try_lock_owner(session: Session, owner: str) -> bool:
    """lock_owner, unless another transaction holds it: False then, at once."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = func.hashtextextended(owner, 0)
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(key))))


def owner_stored_bytes(session: Session, owner: str) -> int:
    """The bytes the owner stores or has reserved: every dataset's arrays, every
    ended run's model, and the bound of every queued or running run (its
    checkpoint now, its model later: `Run.reserved_bytes`, stored_bytes of
    app.nn.checkpoint computed at its creation). One query, however many runs."""
    datasets = (
        select(func.coalesce(func.sum(Dataset.stored_bytes), 0))
        .where(Dataset.owner == owner)
        .scalar_subquery()
    )
    models = (
        select(func.coalesce(func.sum(func.length(StoredModel.data)), 0))
        .join(Run, Run.id == StoredModel.run_id)
        .where(Run.owner == owner, Run.status.not_in(("queued", "running")))
        .scalar_subquery()
    )
    reserved = (
        select(func.coalesce(func.sum(Run.reserved_bytes), 0))
        .where(Run.owner == owner, Run.status.in_(("queued", "running")))
        .scalar_subquery()
    )
    used = session.execute(select(datasets, models, reserved)).one()
    return sum(int(part or 0) for part in used)


def check_budget(session: Session, *, owner: str, adding: int, budget: int) -> None:
    """StorageFull unless the owner's stored bytes plus `adding` fit the budget.
    Call it after `lock_owner`, in the transaction that writes."""
    used = owner_stored_bytes(session, owner)
    if used + adding > budget:
        raise StorageFull(
            f"this would store {adding / MiB:.1f} MiB; {used / MiB:.1f} MiB of the owner's "
            f"budget of {budget / MiB:.1f} MiB are used (TWOLAYER_MAX_STORED_BYTES_PER_OWNER): "
            "delete datasets or runs first"
        )
