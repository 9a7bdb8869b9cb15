"""Run batches: many runs queued in one request, all or none (POST /runs:batch)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Schema
from app.schemas.runs import TOUR_DATASET_NAME, RunCreate, RunRead

MAX_BATCH_RUNS = 1_000  # runs in one batch (the owner's active-run cap applies too)
EXAMPLE_BATCH: Any = {
    "runs": [
        {
            "dataset_name": TOUR_DATASET_NAME,
            "name": f"moons-lr-{lr}",
            "hyperparameters": {"hidden_units": 16, "epochs": 200, "learning_rate": lr, "seed": 0},
        }
        for lr in (0.1, 0.3, 1.0)
    ]
}


class RunBatchCreate(Schema):
    """Runs to queue together: all are written or none is."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_BATCH]})

    runs: list[RunCreate] = Field(
        min_length=1,
        max_length=MAX_BATCH_RUNS,
        description="each as POST /runs takes it; they queue in this order",
    )


class RunBatchRead(BaseModel):
    """The runs queued, in the order asked."""

    items: list[RunRead] = Field(description="one per run asked for, in its order")
