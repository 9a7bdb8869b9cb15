"""The Open Inference Protocol (KServe V2 REST) for registered models.

Health, server and model metadata and readiness are FastAPI routes; infer is a
plain Starlette route, like /predict (app.api.predict), for the same reason:
its hot path. Errors under /v2 are the protocol's `{"error": "…"}` with a 4xx
(app.api.problems.in_request_shape), and the API key is asked for as
everywhere else.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from enum import Enum
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.routing import Route

import app as package
from app.api.auth import OwnerDep, bearer, get_owner, owner_of
from app.api.deps import DatabaseDep, get_predictor
from app.api.openapi import operation_id
from app.api.predict import read_body, validation_error
from app.core.errors import NotFound
from app.core.text import ALIAS, MODEL_NAME
from app.schemas.common import problems
from app.schemas.predict import LARGE_BODY_BYTES
from app.schemas.v2 import (
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from app.services import health, inference
from app.services.inference import BadInference, Tensor

TAGS: list[str | Enum] = ["open inference protocol"]
router = APIRouter(prefix="/v2", tags=TAGS)
NOT_FOUND = problems(NotFound, BadInference)
Name = Annotated[str, Path(pattern=f"^{MODEL_NAME}$", description="the registered model")]
Version = Annotated[
    str,
    Path(pattern=rf"^([1-9][0-9]{{0,8}}|{ALIAS})$", description="a version number, or an alias"),
]


@router.get("/health/live", summary="Server live")
async def server_live() -> ServerLive:
    """200 while the process answers (no key needed)."""
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    summary="Server ready",
    responses={400: {"model": ServerReady, "description": "not ready"}},
)
async def server_ready(request: Request) -> Response:
    """200 once the database answers, else 400 (the protocol's false); no key needed."""
    problem = await asyncio.to_thread(health.database_problem, db=request.app.state.db)
    return JSONResponse({"ready": problem is None}, status_code=200 if problem is None else 400)


@router.get("", summary="Server metadata", dependencies=[Depends(get_owner)])
async def server_metadata() -> ServerMetadata:
    """The server's name and version."""
    return ServerMetadata(name=inference.PLATFORM, version=package.__version__, extensions=[])


@router.get("/models/{name}", summary="Model metadata", responses=NOT_FOUND)
async def model_metadata(name: Name, db: DatabaseDep, owner: OwnerDep) -> ModelMetadata:
    """The latest version's tensors, and every version."""
    found = await asyncio.to_thread(inference.metadata, db=db, owner=owner, name=name, version=None)
    return ModelMetadata.model_validate(found)


@router.get(
    "/models/{name}/versions/{version}", summary="Model version metadata", responses=NOT_FOUND
)
async def model_version_metadata(
    name: Name, version: Version, db: DatabaseDep, owner: OwnerDep
) -> ModelMetadata:
    """The version's tensors (by number or alias)."""
    found = await asyncio.to_thread(
        inference.metadata, db=db, owner=owner, name=name, version=version
    )
    return ModelMetadata.model_validate(found)


@router.get("/models/{name}/ready", summary="Model ready", responses=NOT_FOUND)
async def model_ready(name: Name, db: DatabaseDep, owner: OwnerDep) -> ModelReady:
    """200 when it has a version; an unknown model is 404."""
    await asyncio.to_thread(inference.ready, db=db, owner=owner, name=name, version=None)
    return ModelReady(name=name, ready=True)


@router.get(
    "/models/{name}/versions/{version}/ready", summary="Model version ready", responses=NOT_FOUND
)
async def model_version_ready(
    name: Name, version: Version, db: DatabaseDep, owner: OwnerDep
) -> ModelReady:
    """200 when the version (by number or alias) exists; else 404."""
    await asyncio.to_thread(inference.ready, db=db, owner=owner, name=name, version=version)
    return ModelReady(name=name, ready=True)


# ------------------------------------------------------------ infer, the hot path


async def infer(request: Request) -> Response:
    owner = await owner_of(request)  # 401 before anything is read
    predictor = get_predictor(request)
    params = request.path_params
    async with AsyncExitStack() as stack:
        body = await read_body(request, stack)
        try:
            if len(body) > LARGE_BODY_BYTES:
                parsed = await asyncio.to_thread(InferRequest.model_validate_json, body)
            else:
                parsed = InferRequest.model_validate_json(body)
        except ValidationError as exc:
            raise validation_error(InferRequest, exc) from None
        del body
        given = parsed.inputs[0]
        answer = await inference.infer(
            db=predictor.db,
            cache=predictor.cache,
            owner=owner,
            name=params["name"],
            version=params.get("version"),
            request_id=parsed.id,
            parameters=parsed.parameters,
            tensor=Tensor(given.name, given.datatype, given.shape, given.data, given.parameters),
            outputs=None
            if parsed.outputs is None
            else [(o.name, o.parameters) for o in parsed.outputs],
        )
    return Response(orjson.dumps(answer), media_type="application/json")


routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]

docs = APIRouter(
    prefix="/v2",
    tags=TAGS,
    dependencies=[Security(bearer)],
    generate_unique_id_function=operation_id,
)
_DOC = """Features in (input `input`, shape [m, n_features], FP64 or FP32, data flat
or as rows), `probability` and `label` out (or the outputs asked for by name;
`threshold` in `parameters`). JSON tensor data only: `binary_data` is refused."""


@docs.post("/models/{name}/infer", summary="Infer", description=_DOC, responses=NOT_FOUND)
async def infer_doc(name: Name, body: InferRequest) -> InferResponse:
    raise NotImplementedError("documentation only: served by app.api.v2.infer")


@docs.post(
    "/models/{name}/versions/{version}/infer", summary="Infer with a version", responses=NOT_FOUND
)
async def infer_version_doc(name: Name, version: Version, body: InferRequest) -> InferResponse:
    """The same as infer, with the version by number or alias."""
    raise NotImplementedError("documentation only: served by app.api.v2.infer")
