"""Runs: create, read, find by name, list, cancel, delete, and their weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.errors import Invalid, NotFound, RunEnded, RunHasNoModel, RunInRegistry
from app.core.ids import is_id, new_id
from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import ENDED_STATUSES, Dataset, Run, StoredModel
from app.db.session import Database
from app.nn import Hyperparameters, Model
from app.services.model_cache import ModelCache
from app.services.ownership import newest_named, newest_named_in, owned
from app.services.registry import versions_of_run
from app.services.run_checks import check_active_runs, check_size, check_warm_start_run
from app.services.storage import check_budget, lock_owner
from app.worker.executor import Executor
from app.worker.sweeper import deliver_all


@dataclass(frozen=True)
class RunRequest:
    """One run to create: its dataset by id, or by name (the owner's newest of it)."""

    dataset_id: str | None
    dataset_name: str | None
    name: str | None
    init_from_run_id: str | None
    hyperparameters: dict[str, Any]


MICROSECOND = timedelta(microseconds=1)


def create_run(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    owner: str,
    dataset_id: str | None,
    dataset_name: str | None = None,
    name: str | None,
    init_from_run_id: str | None,
    hyperparameters: dict[str, Any],
) -> RunView:
    """Write a queued run (seed drawn and stored) and hand its id to the executor.
    The dataset is given by id, or by name (the owner's newest of that name)."""
    request = RunRequest(dataset_id, dataset_name, name, init_from_run_id, hyperparameters)
    return _create(db=db, settings=settings, executor=executor, owner=owner, requests=[request])[0]


def create_runs(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    owner: str,
    requests: Sequence[RunRequest],
) -> list[RunView]:
    """create_run for many, all or none: the owner's caps are checked once for
    all of them (active runs, the storage budget), in one transaction, and
    they queue in the order given. An error names the request, `runs[i]: …`."""
    return _create(
        db=db, settings=settings, executor=executor, owner=owner, requests=requests, batch=True
    )


def _create(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    owner: str,
    requests: Sequence[RunRequest],
    batch: bool = False,
) -> list[RunView]:
    """One write transaction (the reads, the caps, the rows), then the delivery."""
    with db.write() as session:
        runs, queued = add_runs(
            session, settings=settings, owner=owner, requests=requests, batch=batch
        )
    deliver_all(db=db, submit=executor.submit, run_ids=[run.id for run in runs])
    # where each stands: behind every run queued before them (one more read spared)
    return [RunView(run, queued + i + 1) for i, run in enumerate(runs)]


def add_runs(
    session: Session,
    *,
    settings: Settings,
    owner: str,
    requests: Sequence[RunRequest],
    batch: bool = False,
) -> tuple[list[Run], int]:
    """The queued runs, added in the caller's write transaction once their
    reads and the owner's caps pass, and how many runs were queued before them;
    the caller delivers them after its commit."""
    wheres = [f"runs[{i}]: " if batch else "" for i in range(len(requests))]
    resolved = [_resolved(r.hyperparameters, w) for r, w in zip(requests, wheres, strict=True)]
    # counted in the writing transaction, with the owner's creations
    # serialised, so that concurrent requests cannot all pass the caps
    lock_owner(session, owner)
    now = utcnow()  # once the lock is held: created (and queued) after those before
    dataset_ids = [_dataset_id(session, owner, r, w) for r, w in zip(requests, wheres, strict=True)]
    # held against deletion until the runs are written (a concurrent DELETE
    # /datasets/{id} would otherwise surface as a foreign-key error, a 500)
    datasets = _datasets(session, owner, dataset_ids)
    runs, stored = [], 0
    for i, (request, where, dataset_id, hp) in enumerate(
        zip(requests, wheres, dataset_ids, resolved, strict=True)
    ):
        dataset = datasets.get(dataset_id)
        if dataset is None:
            raise NotFound(f"{where}dataset {dataset_id} does not exist")
        bound = check_size(dataset, hp, settings, where)
        if request.init_from_run_id is not None:
            check_warm_start_run(session, request.init_from_run_id, owner, dataset, hp, where)
        runs.append(_queued_run(request, owner, dataset, hp, bound, now + i * MICROSECOND))
        stored += bound
    queued = check_active_runs(session, owner, settings.max_active_runs_per_owner, len(runs))
    check_budget(session, owner=owner, adding=stored, budget=settings.max_stored_bytes_per_owner)
    session.add_all(runs)
    return runs, queued


def _resolved(hyperparameters: dict[str, Any], where: str) -> Hyperparameters:
    try:
        return Hyperparameters(**hyperparameters).resolved()
    except ValueError as exc:
        raise Invalid(f"{where}{exc}") from None


def _dataset_id(session: Session, owner: str, request: RunRequest, where: str) -> str:
    if request.dataset_id is not None:
        return request.dataset_id
    assert request.dataset_name is not None  # the request schema asks for exactly one
    try:
        return newest_named_in(session, Dataset, owner, request.dataset_name, "dataset")
    except NotFound as exc:
        raise NotFound(f"{where}{exc}") from None


def _datasets(session: Session, owner: str, dataset_ids: Sequence[str]) -> dict[str, Dataset]:
    wanted = sorted({d for d in dataset_ids if is_id(d)})
    rows = session.scalars(
        select(Dataset)
        .where(Dataset.id.in_(wanted), Dataset.owner == owner)
        .with_for_update(read=True, key_share=True)
    )
    return {row.id: row for row in rows}


def _queued_run(
    request: RunRequest,
    owner: str,
    dataset: Dataset,
    hp: Hyperparameters,
    reserved: int,
    created: datetime,
) -> Run:
    return Run(
        id=new_id(),
        owner=owner,
        name=request.name,
        dataset_id=dataset.id,
        dataset_sha256=dataset.sha256,  # a column_property: for the answer, never written
        init_from_run_id=request.init_from_run_id,
        warm_start_run_id=request.init_from_run_id,
        status="queued",
        hyperparameters=hp.as_dict(),
        epoch=0,
        epochs=hp.epochs,
        attempts=0,
        cancel_requested=False,
        reserved_bytes=reserved,
        created_at=created,  # a batch's runs a microsecond apart: they queue in its order
        delivered_at=created,  # queued now: delivered after the commit (app/worker/sweeper.py)
    )


def _owned(session: Any, run_id: str, owner: str) -> Run:
    return owned(session, Run, run_id, owner, "run")


@dataclass(frozen=True)
class RunView:
    """A run as its reader sees it: the row, and where it stands in the queue."""

    run: Run
    queue_position: int | None  # 1 for the next run to be claimed; None unless queued


def queue_positions(session: Session, runs: Sequence[Run]) -> dict[str, int]:
    """Each queued run's place among all queued runs, oldest first (the order the
    executors deliver them in; a run sent again after a lost message may be
    taken out of turn)."""
    queued = [r.id for r in runs if r.status == "queued"]
    if not queued:
        return {}
    ranked = (
        select(Run.id, func.row_number().over(order_by=(Run.created_at, Run.id)).label("place"))
        .where(Run.status == "queued")
        .subquery()
    )
    rows = session.execute(select(ranked.c.id, ranked.c.place).where(ranked.c.id.in_(queued)))
    return {run_id: int(place) for run_id, place in rows}


def views(session: Session, runs: Sequence[Run]) -> list[RunView]:
    places = queue_positions(session, runs)
    return [RunView(run, places.get(run.id)) for run in runs]


def get_run(*, db: Database, owner: str, run_id: str) -> RunView:
    with db.read() as session:
        return views(session, [_owned(session, run_id, owner)])[0]


def find_run(*, db: Database, owner: str, name: str) -> str:
    """The id of the owner's newest run of this name (names need not be unique)."""
    return newest_named(db=db, model=Run, owner=owner, name=name, what="run")


def list_runs(
    *,
    db: Database,
    owner: str,
    status: str | None,
    dataset_id: str | None,
    name: str | None,
    limit: int,
    offset: int,
) -> tuple[list[RunView], int]:
    query = select(Run).where(Run.owner == owner)
    if status is not None:
        query = query.where(Run.status == status)
    if dataset_id is not None:
        query = query.where(Run.dataset_id == dataset_id)
    if name is not None:
        query = query.where(Run.name == name)
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        items = session.scalars(
            query.order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)
        ).all()
        return views(session, items), total


def delete_run(*, db: Database, cache: ModelCache, owner: str, run_id: str) -> None:
    """Delete a run and everything it owns; a worker training it loses its lease and stops."""
    with db.write() as session:
        run = _owned(session, run_id, owner)
        # FOR UPDATE: a registration under way (FOR KEY SHARE) is waited for and seen
        session.execute(select(Run.id).where(Run.id == run_id).with_for_update())
        if versions := versions_of_run(session, run_id):
            raise RunInRegistry(
                f"run {run_id} is registered as {', '.join(versions)}; delete those versions first"
            )
        session.execute(
            update(Run).where(Run.init_from_run_id == run_id).values(init_from_run_id=None)
        )
        session.delete(run)
    cache.forget(run_id)


def cancel_run(*, db: Database, owner: str, run_id: str) -> RunView:
    """A queued run ends cancelled at once; a running one is asked to stop (the
    worker sees it within an epoch or about a second and keeps the last epoch's
    weights); an ended run is a conflict."""
    with db.write() as session:
        run = _owned(session, run_id, owner)
        if run.status in ENDED_STATUSES:
            raise RunEnded(f"run {run_id} has already ended ({run.status})")
        if run.status == "queued":
            run.status = "cancelled"
            run.finished_at = utcnow()
            run.lease_owner = None
            run.lease_expires_at = None
        run.cancel_requested = True
        session.flush()
        return views(session, [run])[0]


def get_model(*, db: Database, cache: ModelCache, owner: str, run_id: str) -> Model:
    """The run's weights: from the cache, else the database (cached once the run has ended)."""
    model = cache.get(run_id, owner)
    if model is not None:
        return model
    if not is_id(run_id):
        raise NotFound(f"run {run_id} does not exist")
    with db.read() as session:
        row = session.execute(
            select(Run.status, StoredModel.data)
            .outerjoin(StoredModel, StoredModel.run_id == Run.id)
            .where(Run.id == run_id, Run.owner == owner)
        ).one_or_none()
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    if row.data is None:
        raise RunHasNoModel(f"run {run_id} has no weights yet ({row.status})")
    model = Model.from_bytes(row.data)
    if row.status in ENDED_STATUSES:
        cache.put(run_id, owner, model)
    return model
