"""Batch prediction from a file: POST /predict/csv, the body a CSV or Parquet
file, the answer a CSV streamed a chunk at a time (app.services.batch_prediction)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from app.api.auth import OwnerDep
from app.api.deps import CacheDep, DatabaseDep, SettingsDep
from app.core.errors import (
    Invalid,
    NotFound,
    RunHasNoModel,
    TooLarge,
    UnsupportedMediaType,
)
from app.schemas.common import problems
from app.schemas.predict_files import PredictFileQuery
from app.services import batch_prediction

router = APIRouter(tags=["prediction"])

PATH = "/predict/csv"
UPLOAD_PATHS = frozenset({PATH})  # the body is a file: the upload's size limit

FILE_HELP = (
    "the rows, as the file itself (not a form): CSV with a header row (comma, semicolon, "
    "tab or pipe separated, detected; plain or gzip/zstd/bzip2-compressed) or Parquet. "
    "Content-Type text/csv or application/vnd.apache.parquet; application/octet-stream "
    "or none: the format is read from the first bytes"
)
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": FILE_HELP,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("text/csv", "application/vnd.apache.parquet")
        },
    }
}
ANSWER = {
    200: {
        "description": "a header row, then one row per row of the file, in its order: the "
        "passed-through columns, then `probability` and `label`",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **problems(NotFound, RunHasNoModel, Invalid, TooLarge, UnsupportedMediaType),
}


@router.post(
    PATH,
    summary="Predict a file of rows",
    responses=ANSWER,
    openapi_extra=REQUEST_BODY,
    response_class=StreamingResponse,
)
async def predict_csv(
    request: Request,
    query: Annotated[PredictFileQuery, Query()],
    db: DatabaseDep,
    cache: CacheDep,
    settings: SettingsDep,
    owner: OwnerDep,
) -> StreamingResponse:
    """Each row's probability and label for a file of rows, from a run named by
    `run_id`, `run_name` or `model` (a registry reference). The file's columns
    are matched by name to the run's dataset's feature names, in any order;
    others are passed through (or refused, or dropped: `extra_columns`). Every
    row is checked before the answer starts: a missing feature column, a cell
    that is not a number or a missing value → 422 naming its column and row;
    unknown run → 404; a run without weights → 409; another media type → 415.
    With curl: `--data-binary @rows.csv -H 'Content-Type: text/csv'`."""
    answer = await batch_prediction.predict_file(
        db=db,
        cache=cache,
        settings=settings,
        owner=owner,
        run_id=query.run_id,
        run_name=query.run_name,
        model_ref=query.model,
        content_type=request.headers.get("content-type"),
        body=request.stream(),
        threshold=query.threshold,
        extra_columns=query.extra_columns,
        include=query.outputs,
    )
    return StreamingResponse(
        answer.chunks,
        media_type=answer.media_type,
        headers={"X-Run-Id": answer.run_id, "X-Rows": str(answer.rows)},
        background=BackgroundTask(answer.close),
    )
