"""What an owner stores, against the owner's budget: datasets' arrays, runs' models,
and for every queued or running run the bound of what it will store."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import StorageFull
from app.db.models import Dataset, Run, StoredModel
from app.nn import Hyperparameters
from app.nn.checkpoint import stored_bytes

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


def owner_stored_bytes(session: Session, owner: str) -> int:
    """The bytes the owner stores or has reserved: every dataset's arrays, every
    ended run's model, and the bound of every queued or running run (its
    checkpoint now, its model later: app.nn.checkpoint.stored_bytes)."""
    datasets = session.scalar(
        select(func.coalesce(func.sum(Dataset.stored_bytes), 0)).where(Dataset.owner == owner)
    )
    models = session.scalar(
        select(func.coalesce(func.sum(func.length(StoredModel.data)), 0))
        .join(Run, Run.id == StoredModel.run_id)
        .where(Run.owner == owner, Run.status.not_in(("queued", "running")))
    )
    active = session.execute(
        select(Run.hyperparameters, Dataset.n_features)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.owner == owner, Run.status.in_(("queued", "running")))
    ).all()
    reserved = sum(
        stored_bytes(n_features, Hyperparameters(**hyperparameters))
        for hyperparameters, n_features in active
    )
    return int(datasets or 0) + int(models or 0) + reserved


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
