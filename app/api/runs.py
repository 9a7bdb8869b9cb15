from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.auth import OwnerDep
from app.api.deps import (
    CacheDep,
    DatabaseDep,
    ExecutorDep,
    Limit,
    Offset,
    SettingsDep,
)
from app.core.ids import ID_PATTERN
from app.db.models import RunStatus
from app.schemas.common import Page, problems
from app.schemas.runs import ModelRead, RunCreate, RunHistory, RunRead, run_read
from app.services import runs as service

router = APIRouter(prefix="/runs", tags=["runs"])
ERRORS = problems(404, 409, 422)


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def create_run(
    body: RunCreate,
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
    settings: SettingsDep,
    executor: ExecutorDep,
) -> RunRead:
    """Queue a training run; a worker picks it up. Watch it at `Location`."""
    run = await asyncio.to_thread(
        service.create_run,
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        dataset_id=body.dataset_id,
        name=body.name,
        init_from_run_id=body.init_from_run_id,
        hyperparameters=body.hyperparameters.model_dump(),
    )
    response.headers["Location"] = f"/runs/{run.id}"
    return run_read(run)


@router.get("")
async def list_runs(
    db: DatabaseDep,
    owner: OwnerDep,
    status: Annotated[RunStatus | None, Query()] = None,
    dataset_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunRead]:
    items, total = await asyncio.to_thread(
        service.list_runs,
        db=db,
        owner=owner,
        status=status,
        dataset_id=dataset_id,
        limit=limit,
        offset=offset,
    )
    return Page[RunRead](items=[run_read(r) for r in items], total=total)


@router.get("/{run_id}", responses=ERRORS)
async def get_run(run_id: str, db: DatabaseDep, owner: OwnerDep) -> RunRead:
    return run_read(await asyncio.to_thread(service.get_run, db=db, owner=owner, run_id=run_id))


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_run(run_id: str, db: DatabaseDep, cache: CacheDep, owner: OwnerDep) -> Response:
    await asyncio.to_thread(service.delete_run, db=db, cache=cache, owner=owner, run_id=run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{run_id}/history", responses=ERRORS)
async def get_history(
    run_id: str,
    db: DatabaseDep,
    owner: OwnerDep,
    since: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="only epochs after this one")
    ] = None,
) -> RunHistory:
    """Per-epoch figures, columnar."""
    history = await asyncio.to_thread(
        service.get_history, db=db, owner=owner, run_id=run_id, since=since
    )
    return RunHistory.model_validate(history, from_attributes=True)


@router.get(
    "/{run_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    response_class=StreamingResponse,
)
async def run_events(run_id: str, db: DatabaseDep, owner: OwnerDep) -> StreamingResponse:
    """Server-sent events: `progress` as epochs pass, then `end` with the final status."""
    await asyncio.to_thread(service.get_run, db=db, owner=owner, run_id=run_id)  # 404 first

    async def stream() -> AsyncIterator[str]:
        async for event in service.watch_run(db=db, owner=owner, run_id=run_id):
            name = event.pop("event")
            yield f"event: {name}\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.post("/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def cancel_run(run_id: str, db: DatabaseDep, owner: OwnerDep) -> RunRead:
    """Stop a run: it ends `cancelled` within an epoch (or about a second) and keeps
    the last epoch's weights. 409 if it has already ended."""
    return run_read(await asyncio.to_thread(service.cancel_run, db=db, owner=owner, run_id=run_id))


@router.get("/{run_id}/model", responses=ERRORS)
async def get_model(run_id: str, db: DatabaseDep, cache: CacheDep, owner: OwnerDep) -> ModelRead:
    """The weights, in the standardized feature space; 409 while the run has none."""
    model = await asyncio.to_thread(
        service.get_model, db=db, cache=cache, owner=owner, run_id=run_id
    )
    return ModelRead.of(run_id, model)


@router.get(
    "/{run_id}/model.npz",
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
    response_class=Response,
)
async def get_model_npz(run_id: str, db: DatabaseDep, cache: CacheDep, owner: OwnerDep) -> Response:
    """The model file: the same arrays and what they need to predict (activation,
    classes, standardization), as NumPy's .npz. `np.load(f, allow_pickle=False)`
    reads it; its `__meta__` entry is a JSON string."""
    model = await asyncio.to_thread(
        service.get_model, db=db, cache=cache, owner=owner, run_id=run_id
    )
    return Response(
        model.to_bytes(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.npz"'},
    )
