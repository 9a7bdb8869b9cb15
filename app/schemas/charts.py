"""What the dashboard draws: a run's chart (its history downsampled) and its
decision boundary (app/services/charts.py computes both)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import StoredLabel
from app.schemas.runs import EXAMPLE_RUN_ID


class RunChart(BaseModel):
    """A run's history for a chart: at most the points asked for, each a real
    epoch. Long histories are cut into equal buckets of epochs and every
    bucket's minimum and maximum of each series is kept, with the first and
    last epochs: a one-epoch spike survives. The full history is at
    GET /runs/{id}/history (JSON) and /history.csv."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": EXAMPLE_RUN_ID,
                    "epochs": 100000,
                    "bucket": 250,
                    "epoch": [1, 37, 250, 251, 498],
                    "train_cost": [0.693, 0.41, 0.12, 0.118, 0.09],
                    "validation_cost": None,
                    "train_accuracy": [0.5, 0.81, 0.95, 0.951, 0.97],
                    "validation_accuracy": None,
                }
            ]
        }
    )

    run_id: str = Field(description="the run")
    epochs: int = Field(description="epochs in the whole history")
    bucket: int = Field(description="epochs per bucket (1: every epoch is here)")
    epoch: list[int] = Field(description="the epochs kept (1-based), oldest first")
    train_cost: list[float | None] = Field(description="as in the history; null: not finite")
    validation_cost: list[float | None] | None = Field(description="null without validation")
    train_accuracy: list[float | None] = Field(description="as in the history")
    validation_accuracy: list[float | None] | None = Field(description="null without validation")


class BoundaryPoints(BaseModel):
    """Training points on the plane (a fixed sample of them when there are many)."""

    x: list[float] = Field(description="the first feature")
    y: list[float] = Field(description="the second feature")
    label: list[int] = Field(description="0 for classes[0], 1 for classes[1]")


class BoundaryRead(BaseModel):
    """The decision boundary of a run on its two-feature dataset: ŷ over a grid
    spanning the points (5% margin), from the run's own weights."""

    run_id: str = Field(description="the run")
    epoch: int = Field(description="the epoch whose weights drew it")
    features: list[str] = Field(description="[x axis, y axis]: the dataset's feature names")
    classes: list[StoredLabel] = Field(description="[negative, positive]")
    x: list[float] = Field(description="the grid's x values (resolution of them)")
    y: list[float] = Field(description="the grid's y values (resolution of them)")
    probability: list[list[float]] = Field(
        description="ŷ = P(classes[1]) at (x[j], y[i]) in row i, column j"
    )
    points: BoundaryPoints = Field(description="training points")
    points_total: int = Field(description="the dataset's samples, of which points shows some")
