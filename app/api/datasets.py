"""Datasets: inline, uploaded as CSV, or generated; listed, read, deleted."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints, ValidationError
from starlette.routing import Route

from app.api.auth import OwnerDep, owner_of
from app.api.deps import DatabaseDep, Limit, Offset, SettingsDep
from app.api.predict import read_body, validation_error
from app.core.errors import DatasetInUse, Invalid, NotFound, StorageFull, TooLarge
from app.core.text import NAME_MAX, NO_NUL
from app.schemas.common import Page, problems
from app.schemas.datasets import DatasetCreate, DatasetRead, SampleDatasetCreate
from app.schemas.predict import LARGE_BODY_BYTES
from app.services import dataset_files
from app.services import datasets as service
from app.services.dataset_files import FileFormat
from app.services.ingest_formats import Choice, Delimiter, Missing

router = APIRouter(prefix="/datasets", tags=["datasets"])
DatasetId = Annotated[str, Path(description="the dataset's id")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Store a dataset",
    responses=problems(Invalid, StorageFull),
)
async def create_dataset(
    body: DatasetCreate, db: DatabaseDep, settings: SettingsDep, owner: OwnerDep
) -> DatasetRead:
    """A dataset from JSON: m rows of features and m labels (any two distinct values)."""
    raise NotImplementedError("documentation only: served by create_dataset_served")


async def create_dataset_served(request: Request) -> Response:
    """POST /datasets, served by a plain route (listed before this router's) so a
    large body is parsed off the event loop, in one pass from JSON to the schema,
    holding a large-body slot (as /predict's): FastAPI's own handler decodes
    and validates a body on the loop, with a Python object per number on top."""
    owner = await owner_of(request)  # 401 before anything is read
    state = request.app.state
    async with AsyncExitStack() as stack:
        raw = await read_body(request, stack)
        try:
            if len(raw) > LARGE_BODY_BYTES:
                body = await asyncio.to_thread(DatasetCreate.model_validate_json, raw)
            else:
                body = DatasetCreate.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(DatasetCreate, exc) from None
        raw.clear()
        dataset = await asyncio.to_thread(
            service.create_dataset,
            db=state.db,
            settings=state.settings,
            owner=owner,
            name=body.name,
            features=body.features,
            labels=body.labels,
            feature_names=body.feature_names,
        )
    read = DatasetRead.model_validate(dataset).model_dump_json()
    return Response(read, status_code=status.HTTP_201_CREATED, media_type="application/json")


routes = [Route("/datasets", create_dataset_served, methods=["POST"])]


UPLOAD_PATHS = frozenset({"/datasets/upload", "/datasets/csv"})
FILE_HELP = (
    "CSV with a header row (comma, semicolon, tab or pipe separated, detected; "
    "quoted fields, BOM, CRLF; plain or gzip/zstd/bzip2-compressed), Parquet, or Arrow IPC "
    "(file or stream): detected from its first bytes"
)


@router.post(
    "/upload",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a CSV, Parquet or Arrow file",
    responses=problems(Invalid, TooLarge, StorageFull),
)
async def upload_file(
    db: DatabaseDep,
    settings: SettingsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description=FILE_HELP)],
    name: Annotated[
        str,
        Form(min_length=1, max_length=NAME_MAX, pattern=NO_NUL, description="a name for people"),
    ],
    label_column: Annotated[
        str | None,
        Form(
            description="the label column's name (any type, two distinct values); "
            "default: the last column",
            max_length=NAME_MAX,
            pattern=NO_NUL,
        ),
    ] = None,
    feature_columns: Annotated[
        list[Annotated[str, StringConstraints(max_length=NAME_MAX, pattern=NO_NUL)]] | None,
        Form(description="the feature columns, in order (repeat the field); default: all others"),
    ] = None,
    delimiter: Annotated[
        Delimiter | None,
        Form(description="a CSV's separator; default: the one its header row uses"),
    ] = None,
    missing: Annotated[
        Missing,
        Form(
            description="a missing value (empty cell, NA, NaN, null): `error` answers 422 "
            "naming its column and row; `drop_rows` leaves its row out"
        ),
    ] = "error",
) -> DatasetRead:
    """Numeric feature columns (int, float, bool) and a label column with two
    values; a CSV's labels that are all integers become integers. With curl:
    `-F file=@data.csv -F name=mine`."""
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise TooLarge(f"the file is larger than the limit of {settings.max_upload_bytes} bytes")
    dataset = await asyncio.to_thread(
        service.create_dataset_from_file,
        db=db,
        owner=owner,
        settings=settings,
        name=name,
        file=file.file,
        choice=Choice(
            label_column=label_column,
            feature_columns=feature_columns,
            delimiter=delimiter,
            missing=missing,
        ),
    )
    return DatasetRead.model_validate(dataset)


router.add_api_route(
    "/csv",
    upload_file,
    methods=["POST"],
    status_code=status.HTTP_201_CREATED,
    summary="Upload a CSV file (the same as /datasets/upload)",
    description="Kept for clients of the first version: the same form as `/datasets/upload`.",
    responses=problems(Invalid, TooLarge, StorageFull),
    deprecated=True,
    name="upload_csv",
)


@router.post(
    "/samples",
    status_code=status.HTTP_201_CREATED,
    summary="Generate a sample dataset",
    responses={
        200: {"description": "the same sample, made before", "model": DatasetRead},
        **problems(StorageFull),
    },
)
async def create_sample(
    body: SampleDatasetCreate,
    db: DatabaseDep,
    settings: SettingsDep,
    owner: OwnerDep,
    response: Response,
) -> DatasetRead:
    """A generated two-class dataset (moons, circles, xor, spiral, blobs). Its id
    follows from the parameters (and a key the server keeps secret): asking again
    returns the same dataset (200)."""
    dataset, created = await asyncio.to_thread(
        service.create_sample_dataset,
        db=db,
        settings=settings,
        owner=owner,
        kind=body.kind,
        n_samples=body.n_samples,
        noise=body.noise,
        seed=body.seed,
        name=body.name,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return DatasetRead.model_validate(dataset)


@router.get("", summary="List datasets")
async def list_datasets(
    db: DatabaseDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DatasetRead]:
    """Your datasets, newest first."""
    items, total = await asyncio.to_thread(
        service.list_datasets, db=db, owner=owner, limit=limit, offset=offset
    )
    return Page[DatasetRead](items=[DatasetRead.model_validate(d) for d in items], total=total)


@router.get("/{dataset_id}", summary="Read a dataset", responses=problems(NotFound))
async def get_dataset(dataset_id: DatasetId, db: DatabaseDep, owner: OwnerDep) -> DatasetRead:
    """Its size, feature names, classes and their counts."""
    dataset = await asyncio.to_thread(
        service.get_dataset, db=db, owner=owner, dataset_id=dataset_id
    )
    return DatasetRead.model_validate(dataset)


@router.get(
    "/{dataset_id}/data.{format}",
    summary="Download a dataset's data (CSV or Parquet)",
    responses={
        200: {
            "content": {media: {} for media in dataset_files.MEDIA_TYPES.values()},
            "description": "the features, then the label column, one row per sample",
        },
        **problems(NotFound),
    },
    response_class=StreamingResponse,
)
async def get_dataset_data(
    dataset_id: DatasetId,
    format: Annotated[FileFormat, Path(description="csv or parquet")],
    db: DatabaseDep,
    owner: OwnerDep,
) -> StreamingResponse:
    """The dataset as stored, streamed: a header row (the feature names, then the
    label column's), features as float64 that read back exactly, labels as the
    classes' values. Upload it again and you get the same sha256."""
    download = await asyncio.to_thread(
        dataset_files.dataset_file, db=db, owner=owner, dataset_id=dataset_id, format=format
    )
    return StreamingResponse(
        download.chunks,
        media_type=download.media_type,
        headers={"Content-Disposition": f'attachment; filename="{download.filename}"'},
    )


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a dataset",
    responses=problems(NotFound, DatasetInUse),
)
async def delete_dataset(dataset_id: DatasetId, db: DatabaseDep, owner: OwnerDep) -> Response:
    """Deletes the dataset; 409 while runs use it."""
    await asyncio.to_thread(service.delete_dataset, db=db, owner=owner, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
