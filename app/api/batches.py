"""Run batches: POST /runs:batch, many runs in one request and one transaction."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, status

from app.api.auth import OwnerDep
from app.api.deps import DatabaseDep, ExecutorDep, SettingsDep
from app.core.errors import Invalid, NotFound, RunHasNoModel, StorageFull, TooManyRuns
from app.schemas.batches import RunBatchCreate, RunBatchRead
from app.schemas.common import problems
from app.schemas.runs import run_read
from app.services import runs as service

router = APIRouter(tags=["runs"])


@router.post(
    "/runs:batch",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue many training runs at once",
    responses=problems(NotFound, RunHasNoModel, Invalid, TooManyRuns, StorageFull),
)
async def create_runs(
    body: RunBatchCreate,
    db: DatabaseDep,
    owner: OwnerDep,
    settings: SettingsDep,
    executor: ExecutorDep,
) -> RunBatchRead:
    """Each run as POST /runs would queue it, all or none: one transaction checks
    your caps once for the whole batch (queued + running runs, stored bytes), and
    an error names the run it is about (`runs[3]: …`), nothing being written.
    For a sweep of trials or a script: one request instead of one per run."""
    views = await asyncio.to_thread(
        service.create_runs,
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        requests=[
            service.RunRequest(
                dataset_id=run.dataset_id,
                dataset_name=run.dataset_name,
                name=run.name,
                init_from_run_id=run.init_from_run_id,
                hyperparameters=run.hyperparameters.model_dump(),
            )
            for run in body.runs
        ],
    )
    return RunBatchRead(items=[run_read(view) for view in views])
