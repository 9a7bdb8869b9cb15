"""Prediction, the hot path.

The two predict endpoints are served by plain Starlette routes: FastAPI's
request handler (dependency solving, body parsing, response validation)
costs more than parsing, the forward pass and serialising together (figures
in bench/README.md). The body is validated by the same Pydantic schema, in
one pass from JSON; errors are raised as FastAPI's RequestValidationError
and the service's domain errors, so the same handlers answer the same
problem+json. `docs` declares the same endpoints for the OpenAPI schema only.
"""

from __future__ import annotations

import json
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from app.api.auth import bearer, owner_of
from app.api.deps import get_predictor
from app.api.openapi import operation_id
from app.core.errors import Invalid, NotFound, RunHasNoModel
from app.schemas.common import explain_unknown_fields, problems
from app.schemas.predict import PredictRequest, PredictResponse, RunPredictRequest
from app.services import prediction

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """The body parsed and validated by Pydantic in one pass, JSON straight to the model."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(explain_unknown_fields(model, errors)) from None


def json_response(result: prediction.Prediction) -> Response:
    """The PredictResponse document. The service built it from plain floats and the
    dataset's own labels, so it is serialised without validating it again."""
    body = {"run_id": result.run_id, "probabilities": result.probabilities, "labels": result.labels}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def _predict(
    request: Request,
    owner: str,
    body: RunPredictRequest,
    run_id: str | None,
    run_name: str | None = None,
) -> Response:
    predictor = get_predictor(request)
    result = await prediction.predict(
        db=predictor.db,
        cache=predictor.cache,
        owner=owner,
        run_id=run_id,
        run_name=run_name,
        instances=body.instances,
        threshold=body.threshold,
    )
    return json_response(result)


async def predict(request: Request) -> Response:
    owner = await owner_of(request)  # 401 before anything is read
    body = await parse_body(request, PredictRequest)
    return await _predict(request, owner, body, body.run_id, body.run_name)


async def predict_run(request: Request) -> Response:
    owner = await owner_of(request)
    body = await parse_body(request, RunPredictRequest)
    return await _predict(request, owner, body, request.path_params["run_id"])


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
