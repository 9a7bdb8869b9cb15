"""Prediction, the hot path.

The two predict endpoints are served by plain Starlette routes: FastAPI's
request handler (dependency solving, body parsing, response validation)
costs more than parsing, the forward pass and serialising together (figures
in bench/README.md). The body is validated by the same Pydantic schema, in
one pass from JSON; errors are raised as FastAPI's RequestValidationError
and the service's domain errors, so the same handlers answer the same
problem+json. `docs` declares the same endpoints for the OpenAPI schema only.

A body over `LARGE_BODY_BYTES` is decoded by `parse_large` (the same rules,
straight into a float64 array) in a worker thread, and its forward pass runs
in one too, so the event loop keeps answering; at most `LARGE_BODY_SLOTS` such
bodies are read, decoded and predicted at once (the others wait before
reading on), which bounds their memory whatever the number of clients.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Annotated, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from app.api.auth import bearer, owner_of
from app.api.deps import get_predictor
from app.api.openapi import operation_id
from app.core.errors import Invalid, NotFound, RunHasNoModel
from app.schemas.common import explain_unknown_fields, problems
from app.schemas.predict import (
    LARGE_BODY_BYTES,
    PredictRequest,
    PredictResponse,
    RunPredictRequest,
    parse_large,
)
from app.services import prediction

R = TypeVar("R", bound=RunPredictRequest)
LARGE_BODY_SLOTS = 2  # large bodies read, decoded and predicted at once


def validation_error(model: type[BaseModel], exc: ValidationError) -> RequestValidationError:
    errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    return RequestValidationError(explain_unknown_fields(model, errors))


def large_body_slots(request: Request) -> asyncio.Semaphore:
    state = request.app.state
    slots: asyncio.Semaphore | None = getattr(state, "large_body_slots", None)
    if slots is None:  # made in the app's event loop, on first use
        slots = state.large_body_slots = asyncio.Semaphore(LARGE_BODY_SLOTS)
    return slots


async def read_body(request: Request, stack: AsyncExitStack) -> bytearray:
    """The body; once it is larger than LARGE_BODY_BYTES, a large-body slot is
    taken (held until `stack` closes) before any more of it is read."""
    body = bytearray()
    held = False
    async for chunk in request.stream():
        body += chunk
        if not held and len(body) > LARGE_BODY_BYTES:
            await stack.enter_async_context(large_body_slots(request))
            held = True
    return body


async def decode(request: Request, model: type[R], stack: AsyncExitStack) -> tuple[R, np.ndarray]:
    """The request and its instances (m, n) float64: a large body off the event loop."""
    body = await read_body(request, stack)
    try:
        if len(body) > LARGE_BODY_BYTES:
            return await asyncio.to_thread(parse_large, model, body)
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(model, exc) from None
    return parsed, np.asarray(parsed.instances, dtype=np.float64)


def json_response(result: prediction.Prediction) -> Response:
    """The PredictResponse document. The service built it from plain floats and the
    dataset's own labels, so it is serialised without validating it again."""
    body: dict[str, object] = {"run_id": result.run_id}
    if result.model is not None:
        body["model"] = result.model
    body["probabilities"], body["labels"] = result.probabilities, result.labels
    if result.gradients is not None:
        body["gradients"], body["attributions"] = result.gradients, result.attributions
    return Response(orjson.dumps(body), media_type="application/json")


async def _predict(request: Request, model: type[R], run_id: str | None) -> Response:
    owner = await owner_of(request)  # 401 before anything is read
    predictor = get_predictor(request)
    async with AsyncExitStack() as stack:
        body, instances = await decode(request, model, stack)
        result = await prediction.predict(
            db=predictor.db,
            cache=predictor.cache,
            owner=owner,
            run_id=run_id if run_id is not None else getattr(body, "run_id", None),
            run_name=getattr(body, "run_name", None),
            model_ref=getattr(body, "model", None),
            instances=instances,
            threshold=body.threshold,
            explain=body.explain,
        )
    return json_response(result)


async def predict(request: Request) -> Response:
    return await _predict(request, PredictRequest, None)


async def predict_run(request: Request) -> Response:
    return await _predict(request, RunPredictRequest, request.path_params["run_id"])


routes = [
    Route("/predict", predict, methods=["POST"]),
    Route("/runs/{run_id}/predict", predict_run, methods=["POST"]),
]

# ------------------------------------------------------------ OpenAPI only

docs = APIRouter(
    tags=["prediction"],
    dependencies=[Security(bearer)],
    generate_unique_id_function=operation_id,
)


ERRORS = problems(NotFound, RunHasNoModel, Invalid)


@docs.post("/predict", name="predict", summary="Predict", responses=ERRORS)
async def predict_doc(body: PredictRequest) -> PredictResponse:
    """Probabilities and labels (the dataset's own class values) for rows of features,
    from a run named by `run_id` or `run_name`. Wrong width or non-finite values →
    422; unknown run → 404; a run without weights → 409."""
    raise NotImplementedError("documentation only: served by app.api.predict.predict")


@docs.post(
    "/runs/{run_id}/predict",
    name="predict_with_run",
    summary="Predict with this run",
    responses=ERRORS,
)
async def predict_run_doc(
    run_id: Annotated[str, Path(description="the run's id")], body: RunPredictRequest
) -> PredictResponse:
    """The same as POST /predict, for the run of the path."""
    raise NotImplementedError("documentation only: served by app.api.predict.predict_run")
