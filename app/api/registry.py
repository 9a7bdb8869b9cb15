"""The model registry: named models, their versions and aliases."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.auth import OwnerDep
from app.api.deps import DatabaseDep, Limit, Offset
from app.core.errors import (
    Invalid,
    ModelExists,
    NotFound,
    RunHasNoModel,
    RunNotSucceeded,
    VersionHasAlias,
)
from app.core.text import ALIAS, ALIAS_MAX, MODEL_NAME, MODEL_NAME_MAX
from app.schemas.common import Page, problems
from app.schemas.registry import (
    EXAMPLE_MODEL,
    AliasRead,
    AliasUpdate,
    ModelVersionCreate,
    ModelVersionRead,
    RegisteredModelCreate,
    RegisteredModelRead,
    RegisteredModelSummary,
    RegisteredModelUpdate,
    model_read,
    model_summary,
    version_read,
)
from app.services import registry as service

router = APIRouter(prefix="/models", tags=["models"])
NamePath = Annotated[
    str,
    Path(
        max_length=MODEL_NAME_MAX,
        pattern=f"^{MODEL_NAME}$",
        description="the model's name",
        openapi_examples={"the tour's model": {"value": EXAMPLE_MODEL}},
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=999_999_999, description="the version's number")]
AliasPath = Annotated[
    str,
    Path(
        max_length=ALIAS_MAX,
        pattern=f"^{ALIAS}$",
        description="the alias (not 'latest', which always means the newest version)",
        openapi_examples={"champion": {"value": "champion"}},
    ),
]
NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a registered model",
    responses=problems(ModelExists),
)
async def create_registered_model(
    body: RegisteredModelCreate, response: Response, db: DatabaseDep, owner: OwnerDep
) -> RegisteredModelRead:
    """A new, empty model of this name (a name taken already → 409); register
    versions with POST /models/{name}/versions."""
    view, _ = await asyncio.to_thread(
        service.create_model, db=db, owner=owner, name=body.name, description=body.description
    )
    response.headers["Location"] = f"/models/{body.name}"
    return model_read(view)


@router.put(
    "/{name}",
    summary="Create or update a registered model",
    responses={201: {"description": "Created", "model": RegisteredModelRead}},
)
async def put_registered_model(
    name: NamePath,
    body: RegisteredModelUpdate,
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
) -> RegisteredModelRead:
    """The model of this name: made (201) when it does not exist, else its
    description replaced (200) when the body gives one (`{}` leaves it as it
    is). Safe to send again."""
    view, created = await asyncio.to_thread(
        service.create_model,
        db=db,
        owner=owner,
        name=name,
        description=body.description,
        exist_ok=True,
        replace="description" in body.model_fields_set,
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return model_read(view)


@router.get("", summary="List registered models")
async def list_registered_models(
    db: DatabaseDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[RegisteredModelSummary]:
    """Your models, the most recently changed first, with their latest version and aliases."""
    items, total = await asyncio.to_thread(
        service.list_models, db=db, owner=owner, limit=limit, offset=offset
    )
    return Page[RegisteredModelSummary](items=[model_summary(v) for v in items], total=total)


@router.get("/{name}", summary="Read a registered model", responses=problems(NotFound))
async def get_registered_model(
    name: NamePath, db: DatabaseDep, owner: OwnerDep
) -> RegisteredModelRead:
    """The model, its versions (newest first, each with its run, metrics and aliases)
    and its aliases."""
    return model_read(await asyncio.to_thread(service.get_model, db=db, owner=owner, name=name))


@router.delete(
    "/{name}",
    status_code=NO_CONTENT,
    summary="Delete a registered model",
    responses=problems(NotFound),
)
async def delete_registered_model(name: NamePath, db: DatabaseDep, owner: OwnerDep) -> Response:
    """The model, its versions and its aliases; the runs and their weights stay."""
    await asyncio.to_thread(service.delete_model, db=db, owner=owner, name=name)
    return Response(status_code=NO_CONTENT)


@router.post(
    "/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Register a run as the next version",
    responses=problems(NotFound, RunNotSucceeded, RunHasNoModel),
)
async def register_model_version(
    name: NamePath, body: ModelVersionCreate, response: Response, db: DatabaseDep, owner: OwnerDep
) -> ModelVersionRead:
    """Version N+1 of the model: a succeeded run of yours, with its dataset's
    feature names, label and classes and the run's metrics. Versions never
    change, and their numbers are never given again, even after a delete. The
    run cannot be deleted while a version uses it."""
    version = await asyncio.to_thread(
        service.register_version,
        db=db,
        owner=owner,
        name=name,
        run_id=body.run_id,
        description=body.description,
    )
    response.headers["Location"] = f"/models/{name}/versions/{version.version}"
    return version_read(version, [])


@router.get(
    "/{name}/versions/{version}", summary="Read a model version", responses=problems(NotFound)
)
async def get_model_version(
    name: NamePath, version: VersionPath, db: DatabaseDep, owner: OwnerDep
) -> ModelVersionRead:
    """The version, its run and what it was trained on, and the aliases pointing at it."""
    row, aliases = await asyncio.to_thread(
        service.get_version, db=db, owner=owner, name=name, version=version
    )
    return version_read(row, aliases)


@router.delete(
    "/{name}/versions/{version}",
    status_code=NO_CONTENT,
    summary="Delete a model version",
    responses=problems(NotFound, VersionHasAlias),
)
async def delete_model_version(
    name: NamePath, version: VersionPath, db: DatabaseDep, owner: OwnerDep
) -> Response:
    """The version (its run stays); while an alias points at it → 409."""
    await asyncio.to_thread(service.delete_version, db=db, owner=owner, name=name, version=version)
    return Response(status_code=NO_CONTENT)


@router.put(
    "/{name}/aliases/{alias}",
    summary="Point an alias at a version",
    responses={
        201: {"description": "Created", "model": AliasRead},
        **problems(NotFound, Invalid),
    },
)
async def set_model_alias(
    name: NamePath,
    alias: AliasPath,
    body: AliasUpdate,
    response: Response,
    db: DatabaseDep,
    owner: OwnerDep,
) -> AliasRead:
    """The alias points at the version from now on (made, 201, if new): one
    transaction, so every request after it, on every API process, predicts with
    the new version (`"model": "name@alias"`)."""
    created = await asyncio.to_thread(
        service.set_alias, db=db, owner=owner, name=name, alias=alias, version=body.version
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return AliasRead(model=name, alias=alias, version=body.version)


@router.delete(
    "/{name}/aliases/{alias}",
    status_code=NO_CONTENT,
    summary="Delete an alias",
    responses=problems(NotFound),
)
async def delete_model_alias(
    name: NamePath, alias: AliasPath, db: DatabaseDep, owner: OwnerDep
) -> Response:
    """The alias; its version stays."""
    await asyncio.to_thread(service.delete_alias, db=db, owner=owner, name=name, alias=alias)
    return Response(status_code=NO_CONTENT)
