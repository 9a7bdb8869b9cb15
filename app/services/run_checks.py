"""The checks a run must pass to be created: its size, the owner's active runs,
its warm-start source (app/services/runs.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import Invalid, NotFound, RunHasNoModel, TooManyRuns
from app.core.settings import Settings
from app.db.models import Dataset, Run, StoredModel
from app.nn import Hyperparameters, Model
from app.nn.checkpoint import stored_bytes
from app.nn.model import check_warm_start
from app.services.ownership import owned
from app.services.storage import MiB


def check_size(dataset: Dataset, hp: Hyperparameters, settings: Settings, where: str) -> int:
    """The bytes the run may store, once its work and its size are checked."""
    work = dataset.n_samples * dataset.n_features * hp.hidden_units * hp.epochs
    if work > settings.max_work:
        raise Invalid(
            f"{where}this run's work, samples × features × hidden units × epochs = {work:.3g}, "
            f"is over the limit {settings.max_work:.3g}"
        )
    stored = stored_bytes(dataset.n_features, hp)
    if stored > settings.max_run_stored_bytes:
        raise Invalid(
            f"{where}this run would store {stored / MiB:.1f} MiB (its checkpoint: weights, "
            f"optimizer state and history), over the limit of "
            f"{settings.max_run_stored_bytes / MiB:.1f} MiB"
        )
    return stored


def check_active_runs(session: Session, owner: str, limit: int, adding: int) -> int:
    """TooManyRuns unless `adding` more fit the owner's limit; returns how many
    runs (anyone's) are queued, in the same query."""
    active, queued = session.execute(
        select(
            func.count().filter(Run.owner == owner),
            func.count().filter(Run.status == "queued"),
        ).where(Run.status.in_(("queued", "running")))
    ).one()
    if active + adding > limit:
        asked = f"; {adding} more were asked for" if adding > 1 else ""
        raise TooManyRuns(
            f"{active} runs are queued or running, the limit is {limit}{asked}; "
            "try again when one has ended",
            headers={"Retry-After": "30"},
        )
    return int(queued)


def check_warm_start_run(
    session: Any, run_id: str, owner: str, dataset: Dataset, hp: Hyperparameters, where: str
) -> None:
    try:  # held against deletion until the run is written, as its dataset is
        owned(session, Run, run_id, owner, "run", hold=True)
    except NotFound:
        raise NotFound(f"{where}run {run_id} (init_from_run_id) does not exist") from None
    stored = session.get(StoredModel, run_id)
    if stored is None:
        raise RunHasNoModel(f"{where}run {run_id} (init_from_run_id) has no weights to start from")
    try:
        check_warm_start(
            Model.from_bytes(stored.data),
            n_features=dataset.n_features,
            hidden_units=hp.hidden_units,
            activation=hp.hidden_activation,
        )
    except ValueError as exc:
        raise Invalid(f"{where}init_from_run_id {run_id}: {exc}") from None
