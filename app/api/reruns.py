"""Reruns: POST /runs/{id}/rerun, a run queued again to the same weights."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from app.api.auth import OwnerDep
from app.api.deps import DatabaseDep, ExecutorDep, SettingsDep
from app.core.errors import (
    Invalid,
    NotFound,
    RunHasNoModel,
    StorageFull,
    TooManyRuns,
    WarmStartGone,
)
from app.schemas.common import problems
from app.schemas.provenance import RunRerun
from app.schemas.runs import RunRead, run_read
from app.services import reruns as service

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rerun a run",
    responses=problems(NotFound, WarmStartGone, RunHasNoModel, Invalid, TooManyRuns, StorageFull),
)
async def rerun_run(
    run_id: Annotated[str, Path(description="the run to train again")],
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
    settings: SettingsDep,
    executor: ExecutorDep,
    body: Annotated[RunRerun | None, Body()] = None,
) -> RunRead:
    """A new run, queued as POST /runs queues one (the same caps and budget), with
    this run's dataset, resolved hyperparameters (its seed included) and warm-start
    source, and its name unless the body gives one. A run of any status may be
    rerun (what it trains with is fixed at its creation); on a worker whose
    environment equals the original's (its `reproducibility.environments`) the
    weights are `np.array_equal` to its own. 409 if the run it started from has
    been deleted."""
    view = await asyncio.to_thread(
        service.rerun_run,
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        run_id=run_id,
        name=None if body is None else body.name,
    )
    response.headers["Location"] = f"/runs/{view.run.id}"
    return run_read(view)
