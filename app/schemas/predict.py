from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.settings import get_settings
from app.nn.model import DEFAULT_THRESHOLD, THRESHOLD
from app.schemas.common import FiniteFloat, Id, Label, Schema, check_rows


class RunPredictRequest(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"instances": [[0.5, 0.25], [1.5, -0.4]], "threshold": 0.5}]
        },
    )

    instances: list[list[FiniteFloat]] = Field(description="m rows of n_features numbers")
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
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "run_id": "paste the id from POST /runs",
                    "instances": [[0.5, 0.25], [1.5, -0.4]],
                    "threshold": 0.5,
                }
            ]
        },
    )

    run_id: Id


class PredictResponse(BaseModel):
    run_id: str
    probabilities: list[float]
    labels: list[Label]
