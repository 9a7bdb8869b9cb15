"""The query of POST /predict/csv (the body is the file itself)."""

from __future__ import annotations

from typing import cast

from pydantic import Field, model_validator

from app.nn.model import DEFAULT_THRESHOLD, THRESHOLD
from app.schemas.common import FiniteFloat, Id, Name, Schema, exactly_one
from app.schemas.predict import ModelRef
from app.services.batch_prediction import OUTPUTS, Output
from app.services.prediction_input import ExtraColumns

_INCLUDE = "^(probability|label)(,(probability|label))?$"


class PredictFileQuery(Schema):
    """The run whose weights answer, and what the answer holds."""

    run_id: Id | None = Field(None, description="the run, by id (or give run_name or model)")
    run_name: Name | None = Field(
        None, description="the run, by name: your newest run of this name (or give run_id)"
    )
    model: ModelRef | None = Field(
        None, description="a registered model's version: `name`, `name@3` or `name@alias`"
    )
    threshold: FiniteFloat = Field(
        DEFAULT_THRESHOLD, ge=THRESHOLD.ge, le=THRESHOLD.le, description=THRESHOLD.description
    )
    extra_columns: ExtraColumns = Field(
        "pass",
        description="the file's columns that are not the dataset's features: `pass` copies "
        "them into the answer, ahead of its own columns and in the file's order; `refuse` "
        "answers 422 naming them; `drop` leaves them out",
    )
    include: str = Field(
        ",".join(OUTPUTS),
        pattern=_INCLUDE,
        description="the answer's own columns, comma-separated, in this order: "
        "`probability` (ŷ, printed to read back exactly), `label` (the dataset's class)",
    )

    @model_validator(mode="after")
    def _check(self) -> PredictFileQuery:
        exactly_one(self, "run_id", "run_name", "model")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError("include names a column twice")
        return self

    @property
    def outputs(self) -> tuple[Output, ...]:
        """`include` as the answer's columns (the pattern admits no others)."""
        return tuple(cast(Output, o) for o in self.include.split(","))
