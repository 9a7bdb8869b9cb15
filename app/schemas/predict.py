"""Prediction requests and answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.settings import get_settings
from app.nn.model import DEFAULT_THRESHOLD, THRESHOLD
from app.schemas.common import (
    FiniteFloat,
    Id,
    Name,
    Schema,
    StoredLabel,
    check_rows,
    exactly_one,
    limits,
)
from app.schemas.runs import EXAMPLE_RUN_ID, TOUR_RUN_NAME

TOUR_INSTANCES: Any = [[0.0, 1.0], [1.0, -0.5]]  # a point of each moon
Row = Annotated[
    list[FiniteFloat],
    Field(json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_features)),
]


class RunPredictRequest(Schema):
    """Rows of features to predict, with the run named by the path."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"instances": TOUR_INSTANCES, "threshold": 0.5}]},
    )

    instances: list[Row] = Field(
        description="m rows of n_features numbers, raw (the run's standardization is applied)",
        json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_predict_instances),
    )
    threshold: FiniteFloat = Field(
        DEFAULT_THRESHOLD,
        ge=THRESHOLD.ge,
        le=THRESHOLD.le,
        description=THRESHOLD.description,
    )

    @model_validator(mode="after")
    def _rectangular(self) -> RunPredictRequest:
        limit = get_settings().max_predict_instances
        if len(self.instances) > limit:
            raise ValueError(f"instances has {len(self.instances)} rows, more than {limit}")
        check_rows(self.instances, name="instances")
        return self


class PredictRequest(RunPredictRequest):
    """Rows of features to predict, and the run whose weights answer: by id, or by
    name (the owner's newest run of that name)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"run_name": TOUR_RUN_NAME, "instances": TOUR_INSTANCES, "threshold": 0.5}
            ],
            "oneOf": [{"required": ["run_id"]}, {"required": ["run_name"]}],
        },
    )

    run_id: Id | None = Field(None, description="the run, by id (or give run_name)")
    run_name: Name | None = Field(
        None, description="the run, by name: your newest run of this name (or give run_id)"
    )

    @model_validator(mode="after")
    def _one_run(self) -> PredictRequest:
        exactly_one(self, "run_id", "run_name")
        return self


class PredictResponse(BaseModel):
    """ŷ for each row, and the class it predicts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"run_id": EXAMPLE_RUN_ID, "probabilities": [0.00685, 0.9945], "labels": [0, 1]}
            ]
        }
    )

    run_id: str = Field(description="the run whose weights answered")
    probabilities: list[float] = Field(description="ŷ = σ(Z2) for each row")
    labels: list[StoredLabel] = Field(
        description="for each row, the dataset's positive class where ŷ ≥ threshold, else "
        "the negative one"
    )
