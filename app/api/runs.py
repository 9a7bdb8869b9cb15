"""Runs: queue, read, list, follow, cancel, delete, and their weights."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.auth import OwnerDep, authenticate_headers
from app.api.deps import CacheDep, DatabaseDep, ExecutorDep, Limit, Offset, SettingsDep
from app.core.errors import (
    Invalid,
    NotFound,
    NotTwoFeatures,
    RunEnded,
    RunHasNoModel,
    RunInRegistry,
    StorageFull,
    TooManyRuns,
    Unauthorized,
)
from app.core.ids import ID_PATTERN
from app.core.text import NAME_MAX, NO_NUL
from app.db.models import RunStatus
from app.schemas.charts import BoundaryRead, RunChart
from app.schemas.common import Page, problems
from app.schemas.runs import (
    TOUR_RUN_NAME,
    ModelRead,
    RunCreate,
    RunHistory,
    RunRead,
    model_json,
    run_read,
)
from app.services import charts, run_history
from app.services import runs as service

router = APIRouter(prefix="/runs", tags=["runs"])
RunId = Annotated[str, Path(description="the run's id")]
EVENTS_DOC = """Server-sent events until the run ends (`text/event-stream`), for a live chart:

- `status` when the status changes, first of all where the run stands now;
- `queued` at least every second while it waits, with its `queue_position`;
- `epochs`: every new epoch's figures, columnar like GET /runs/{id}/history,
  about once a second while it trains;
- `progress` (`epoch`, `epochs`, `eta_seconds`) at least every second while
  it trains and no epoch arrives;
- `end`: the final status, error, metrics, best_epoch and warnings
  (`reason` "ended"); or the stream ends early with `status` null, a
  `detail` and `reason` "deleted" (the run was deleted) or "unauthorized"
  (the key was revoked: it is checked again every second or so while the
  stream is open, a verified key being trusted for `TWOLAYER_KEY_CACHE_SECONDS`).

Each event's `id` is the last epoch sent: reconnect with `Last-Event-ID` (a
browser's EventSource does) or `?since=` and nothing is missed or repeated.
Every `data` is one JSON object."""


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a training run",
    responses=problems(NotFound, RunHasNoModel, Invalid, TooManyRuns, StorageFull),
)
async def create_run(
    body: RunCreate,
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
    settings: SettingsDep,
    executor: ExecutorDep,
) -> RunRead:
    """The run is written `queued` (with a seed drawn if none is given) and a worker
    takes it; follow it at `Location`, at GET /runs?name=, or by its events."""
    view = await asyncio.to_thread(
        service.create_run,
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        dataset_id=body.dataset_id,
        dataset_name=body.dataset_name,
        name=body.name,
        init_from_run_id=body.init_from_run_id,
        hyperparameters=body.hyperparameters.model_dump(),
    )
    response.headers["Location"] = f"/runs/{view.run.id}"
    return run_read(view)


@router.get("", summary="List runs")
async def list_runs(
    db: DatabaseDep,
    owner: OwnerDep,
    status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
    dataset_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="only runs of this dataset")
    ] = None,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=NAME_MAX,
            pattern=NO_NUL,
            description="only runs of this name",
            # a parameter example Swagger UI fills in: the tour's run
            openapi_examples={"the tour's run": {"value": TOUR_RUN_NAME}},
        ),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunRead]:
    """Your runs, newest first."""
    items, total = await asyncio.to_thread(
        service.list_runs,
        db=db,
        owner=owner,
        status=status,
        dataset_id=dataset_id,
        name=name,
        limit=limit,
        offset=offset,
    )
    return Page[RunRead](items=[run_read(v) for v in items], total=total)


@router.get("/{run_id}", summary="Read a run", responses=problems(NotFound))
async def get_run(run_id: RunId, db: DatabaseDep, owner: OwnerDep) -> RunRead:
    """Status, progress (with queue position or time left), metrics and warnings."""
    return run_read(await asyncio.to_thread(service.get_run, db=db, owner=owner, run_id=run_id))


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a run",
    responses=problems(NotFound, RunInRegistry),
)
async def delete_run(run_id: RunId, db: DatabaseDep, cache: CacheDep, owner: OwnerDep) -> Response:
    """The run, its history and weights; a worker training it stops."""
    await asyncio.to_thread(service.delete_run, db=db, cache=cache, owner=owner, run_id=run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{run_id}/history", summary="A run's per-epoch figures", responses=problems(NotFound))
async def get_history(
    run_id: RunId,
    db: DatabaseDep,
    owner: OwnerDep,
    since: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="only epochs after this one")
    ] = None,
) -> RunHistory:
    """Costs and accuracies epoch by epoch, one list per column."""
    history = await asyncio.to_thread(
        run_history.get_history, db=db, owner=owner, run_id=run_id, since=since
    )
    return RunHistory.model_validate(history, from_attributes=True)


@router.get(
    "/{run_id}/history.csv",
    summary="Download a run's history as CSV",
    responses={
        200: {"content": {"text/csv": {}}, "description": "one row per epoch"},
        **problems(NotFound),
    },
    response_class=StreamingResponse,
)
async def get_history_csv(run_id: RunId, db: DatabaseDep, owner: OwnerDep) -> StreamingResponse:
    """Columns `epoch,train_cost,validation_cost,train_accuracy,validation_accuracy`,
    oldest epoch first; a validation cell is empty without validation."""
    chunks = await asyncio.to_thread(charts.history_csv, db=db, owner=owner, run_id=run_id)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{run_id}-history.csv"'},
    )


@router.get("/{run_id}/chart", summary="A run's history for a chart", responses=problems(NotFound))
async def get_chart(
    run_id: RunId,
    db: DatabaseDep,
    owner: OwnerDep,
    points: Annotated[
        int,
        Query(
            ge=charts.CHART_POINTS_MIN,
            le=charts.CHART_POINTS_MAX,
            description="the most epochs to send",
        ),
    ] = charts.CHART_POINTS_DEFAULT,
) -> RunChart:
    """The history downsampled to at most `points` epochs, keeping every bucket's
    extremes: a 100 000-epoch run draws as fast as a short one. Follow it live
    from its last epoch with GET /runs/{id}/events?since=."""
    chart = await asyncio.to_thread(
        charts.get_chart, db=db, owner=owner, run_id=run_id, points=points
    )
    return RunChart.model_validate(chart, from_attributes=True)


@router.get(
    "/{run_id}/boundary",
    summary="A run's decision boundary",
    responses=problems(NotFound, NotTwoFeatures, RunHasNoModel),
)
async def get_boundary(
    run_id: RunId,
    db: DatabaseDep,
    cache: CacheDep,
    owner: OwnerDep,
    resolution: Annotated[
        int,
        Query(
            ge=charts.BOUNDARY_RESOLUTION_MIN,
            le=charts.BOUNDARY_RESOLUTION_MAX,
            description="grid points along each axis",
        ),
    ] = charts.BOUNDARY_RESOLUTION_DEFAULT,
) -> BoundaryRead:
    """For a dataset of two features: ŷ over the plane of the training points,
    computed with the run's model (while it trains: its latest checkpoint's
    weights, `epoch` says which), and the points with their labels (at most
    2000, a fixed sample). 409 for another number of features, or while the run
    has no weights yet."""
    boundary = await asyncio.to_thread(
        charts.get_boundary, db=db, cache=cache, owner=owner, run_id=run_id, resolution=resolution
    )
    return BoundaryRead.model_validate(charts.boundary_json(boundary))


async def existing_run(run_id: RunId, db: DatabaseDep, owner: OwnerDep) -> str:
    """The run's id once it is known to exist: a stream starts only for a real run
    (404 before any byte of it is sent)."""
    await asyncio.to_thread(service.get_run, db=db, owner=owner, run_id=run_id)
    return run_id


def strict_json(data: dict[str, Any]) -> str:
    """`data` as JSON, strict as every answer: a non-finite figure is null."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError:  # NaN or ±inf somewhere: orjson writes them null
        return json.dumps(orjson.loads(orjson.dumps(data)))


@router.get(
    "/{run_id}/events",
    summary="Follow a run live",
    description=EVENTS_DOC,
    response_class=EventSourceResponse,
    responses=problems(NotFound),
)
async def run_events(
    request: Request,
    run_id: Annotated[str, Depends(existing_run)],
    db: DatabaseDep,
    owner: OwnerDep,
    since: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="send the epochs after this one")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(max_length=20, description="set by a reconnecting EventSource: as since"),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    start = since or 0
    if last_event_id is not None and last_event_id.strip().isdigit():
        start = max(start, int(last_event_id.strip()))

    async def allowed() -> bool:  # the key is checked again while the stream is open
        try:
            return await authenticate_headers(request.app.state, request.headers) == owner
        except Unauthorized:
            return False

    events = run_history.follow_run(db=db, owner=owner, run_id=run_id, since=start, allowed=allowed)
    async for event in events:
        yield ServerSentEvent(event=event.event, id=str(event.id), raw_data=strict_json(event.data))


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a run",
    responses=problems(NotFound, RunEnded),
)
async def cancel_run(run_id: RunId, db: DatabaseDep, owner: OwnerDep) -> RunRead:
    """A queued run ends `cancelled` at once; a running one within an epoch (or
    about a second), keeping the last finished epoch's weights. 409 if it has ended."""
    return run_read(await asyncio.to_thread(service.cancel_run, db=db, owner=owner, run_id=run_id))


@router.get(
    "/{run_id}/model",
    summary="A run's weights",
    response_model=ModelRead,
    responses=problems(NotFound, RunHasNoModel),
)
async def get_model(
    run_id: RunId, db: DatabaseDep, cache: CacheDep, owner: OwnerDep
) -> StreamingResponse:
    """W1, b1, W2, b2 in the standardized feature space, with the standardization
    and classes; 409 while the run has no weights."""
    model = await asyncio.to_thread(
        service.get_model, db=db, cache=cache, owner=owner, run_id=run_id
    )
    # ModelRead's JSON written in pieces in a worker thread (Starlette iterates a
    # plain iterator there): tens of MiB for a large model, never whole in memory
    return StreamingResponse(model_json(run_id, model), media_type="application/json")


@router.get(
    "/{run_id}/model.npz",
    summary="Download a run's model file",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the .npz file"},
        **problems(NotFound, RunHasNoModel),
    },
    response_class=Response,
)
async def get_model_npz(
    run_id: RunId, db: DatabaseDep, cache: CacheDep, owner: OwnerDep
) -> Response:
    """The model file: the same arrays and what they need to predict (activation,
    classes, standardization), as NumPy's .npz. `np.load(f, allow_pickle=False)`
    reads it; its `__meta__` entry is a JSON string."""
    model = await asyncio.to_thread(
        service.get_model, db=db, cache=cache, owner=owner, run_id=run_id
    )
    return Response(
        await asyncio.to_thread(model.to_bytes),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.npz"'},
    )
