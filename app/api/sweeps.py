"""Sweeps: search hyperparameters with Optuna's samplers; every trial is a run."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.auth import OwnerDep
from app.api.deps import DatabaseDep, ExecutorDep, Limit, Offset, SettingsDep
from app.core.errors import Invalid, NotFound, StorageFull, SweepEnded, TooManyRuns
from app.schemas.common import Page, problems
from app.schemas.sweeps import SweepCreate, SweepRead, SweepSummary, sweep_read, sweep_summary
from app.services import sweeps as service

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
SweepId = Annotated[str, Path(description="the sweep's id")]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a hyperparameter sweep",
    responses=problems(NotFound, Invalid, TooManyRuns, StorageFull),
)
async def create_sweep(
    body: SweepCreate,
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
    settings: SettingsDep,
    executor: ExecutorDep,
) -> SweepRead:
    """The sweep is written with its first trials' runs queued (up to `parallel`);
    each API process then queues the next as trials end. Follow it at `Location`."""
    view = await asyncio.to_thread(
        service.create_sweep,
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        dataset_id=body.dataset_id,
        dataset_name=body.dataset_name,
        name=body.name,
        base=body.base.model_dump(),
        search=body.search_space(),
        strategy=body.strategy,
        trials=body.trials,
        metric=body.metric,
        direction=body.direction,
        parallel=body.parallel,
        seed=body.seed,
        pruner=None if body.pruner is None else body.pruner.model_dump(),
        startup_trials=body.startup_trials,
    )
    response.headers["Location"] = f"/sweeps/{view.sweep.id}"
    return sweep_read(view)


@router.get("", summary="List sweeps")
async def list_sweeps(
    db: DatabaseDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[SweepSummary]:
    """Your sweeps, newest first, each with its counts and best trial (without every
    trial: GET /sweeps/{id} has them)."""
    items, total = await asyncio.to_thread(
        service.list_sweeps, db=db, owner=owner, limit=limit, offset=offset
    )
    return Page[SweepSummary](items=[sweep_summary(v) for v in items], total=total)


@router.get("/{sweep_id}", summary="Read a sweep", responses=problems(NotFound))
async def get_sweep(sweep_id: SweepId, db: DatabaseDep, owner: OwnerDep) -> SweepRead:
    """Status, the trials as a table (parameters, metric, state, run) and the best one."""
    view = await asyncio.to_thread(service.get_sweep, db=db, owner=owner, sweep_id=sweep_id)
    return sweep_read(view)


@router.post(
    "/{sweep_id}/cancel", summary="Cancel a sweep", responses=problems(NotFound, SweepEnded)
)
async def cancel_sweep(sweep_id: SweepId, db: DatabaseDep, owner: OwnerDep) -> SweepRead:
    """No trial starts any more; queued trials are cancelled, running ones stopped."""
    view = await asyncio.to_thread(service.cancel_sweep, db=db, owner=owner, sweep_id=sweep_id)
    return sweep_read(view)
