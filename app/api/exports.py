"""Models leave the service: a run's model, or a registered version's, as ONNX."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.api.auth import OwnerDep
from app.api.deps import CacheDep, DatabaseDep
from app.core.errors import NotFound, RunHasNoModel
from app.core.text import MODEL_NAME
from app.schemas.common import problems
from app.services import onnx_export
from app.services.onnx_export import OnnxDtype as Dtype

router = APIRouter()
ONNX = "application/onnx"
DtypeQuery = Annotated[
    Dtype,
    Query(description="the graph's input and probability type (the arithmetic is float64)"),
]
ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {ONNX: {}}, "description": "the ONNX model file"},
    **problems(NotFound, RunHasNoModel),
}
OPSET, IR = onnx_export.OPSET, onnx_export.IR_VERSION
DOC = f"""One ONNX graph (opset {OPSET}, IR {IR}): the standardization, Gemm, Relu
or Tanh, Gemm, Sigmoid. Input `X` [N, n_features] (rows), optional input
`threshold` (0.5); outputs `probability` [N] and `label` [N] (the dataset's
classes). Run it with onnxruntime: `InferenceSession(path).run(None, {{"X": rows}})`."""


def _file(data: bytes, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(data, media_type=ONNX, headers=headers)


@router.get(
    "/runs/{run_id}/model.onnx",
    tags=["runs"],
    summary="Download a run's model as ONNX",
    description=DOC,
    responses=ANSWERS,
    response_class=Response,
)
async def get_model_onnx(
    run_id: Annotated[str, Path(description="the run's id")],
    db: DatabaseDep,
    cache: CacheDep,
    owner: OwnerDep,
    dtype: DtypeQuery = "float64",
) -> Response:
    data = await asyncio.to_thread(
        onnx_export.run_onnx, db=db, cache=cache, owner=owner, run_id=run_id, dtype=dtype
    )
    return _file(data, f"{run_id}.onnx")


@router.get(
    "/models/{name}/versions/{version}/model.onnx",
    tags=["models"],
    summary="Download a model version as ONNX",
    description=DOC,
    responses=ANSWERS,
    response_class=Response,
)
async def get_version_onnx(
    name: Annotated[str, Path(pattern=f"^{MODEL_NAME}$", description="the model's name")],
    version: Annotated[int, Path(ge=1, le=999_999_999, description="the version's number")],
    db: DatabaseDep,
    cache: CacheDep,
    owner: OwnerDep,
    dtype: DtypeQuery = "float64",
) -> Response:
    data = await asyncio.to_thread(
        onnx_export.version_onnx,
        db=db,
        cache=cache,
        owner=owner,
        name=name,
        version=version,
        dtype=dtype,
    )
    return _file(data, f"{name}-{version}.onnx")
