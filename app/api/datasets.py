from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from app.api.auth import OwnerDep
from app.api.deps import DatabaseDep, Limit, Offset, SettingsDep
from app.core.errors import TooLarge
from app.schemas.common import NO_NUL, Page, problems
from app.schemas.datasets import DatasetCreate, DatasetRead, SampleDatasetCreate
from app.services import datasets as service

router = APIRouter(prefix="/datasets", tags=["datasets"])
ERRORS = problems(404, 409, 413, 422)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_dataset(body: DatasetCreate, db: DatabaseDep, owner: OwnerDep) -> DatasetRead:
    """A dataset from JSON: m rows of features and m labels (any two distinct values)."""
    dataset = await asyncio.to_thread(
        service.create_dataset,
        db=db,
        owner=owner,
        name=body.name,
        features=body.features,
        labels=body.labels,
        feature_names=body.feature_names,
    )
    return DatasetRead.model_validate(dataset)


@router.post("/csv", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def upload_csv(
    db: DatabaseDep,
    settings: SettingsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description="CSV with a header row")],
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=NO_NUL)],
    label_column: Annotated[
        str | None, Form(description="default: the last column", max_length=200, pattern=NO_NUL)
    ] = None,
) -> DatasetRead:
    """A dataset from a CSV upload; every column but the label column must be numeric."""
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise TooLarge(f"the file is larger than the limit of {settings.max_upload_bytes} bytes")
    dataset = await asyncio.to_thread(
        service.create_dataset_from_csv,
        db=db,
        owner=owner,
        settings=settings,
        name=name,
        file=file.file,
        label_column=label_column,
    )
    return DatasetRead.model_validate(dataset)


@router.post(
    "/samples",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the same sample, made before"}, **ERRORS},
)
async def create_sample(
    body: SampleDatasetCreate, db: DatabaseDep, owner: OwnerDep, response: Response
) -> DatasetRead:
    """A generated two-class dataset (moons, circles, xor, spiral, blobs). Its id
    follows from the parameters: asking again returns the same dataset (200)."""
    dataset, created = await asyncio.to_thread(
        service.create_sample_dataset,
        db=db,
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


@router.get("")
async def list_datasets(
    db: DatabaseDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DatasetRead]:
    items, total = await asyncio.to_thread(
        service.list_datasets, db=db, owner=owner, limit=limit, offset=offset
    )
    return Page[DatasetRead](items=[DatasetRead.model_validate(d) for d in items], total=total)


@router.get("/{dataset_id}", responses=ERRORS)
async def get_dataset(dataset_id: str, db: DatabaseDep, owner: OwnerDep) -> DatasetRead:
    dataset = await asyncio.to_thread(
        service.get_dataset, db=db, owner=owner, dataset_id=dataset_id
    )
    return DatasetRead.model_validate(dataset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_dataset(dataset_id: str, db: DatabaseDep, owner: OwnerDep) -> Response:
    """Deletes the dataset; 409 while runs use it."""
    await asyncio.to_thread(service.delete_dataset, db=db, owner=owner, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
