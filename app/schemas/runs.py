from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, model_validator

from app.core.ids import sample_dataset_id
from app.core.settings import get_settings
from app.db.models import OWNER_LOCAL
from app.schemas.common import Id, Label, Name, Schema

StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class HyperparametersIn(Schema):
    """Every field is optional; the defaults are DESIGN §4's."""

    hidden_units: StrictInt = Field(16, ge=1)
    hidden_activation: Literal["relu", "tanh"] = "relu"
    init: Literal["he", "xavier", "small"] | None = Field(
        None, description='"he" for relu, "xavier" for tanh when not given'
    )
    learning_rate: StrictFloat = Field(0.1, gt=0)
    epochs: StrictInt = Field(100, ge=1)
    batch_size: StrictInt | None = Field(64, ge=1, description="null: full batch")
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    momentum: StrictFloat = Field(0.9, ge=0, lt=1)
    beta1: StrictFloat = Field(0.9, ge=0, lt=1)
    beta2: StrictFloat = Field(0.999, ge=0, lt=1)
    epsilon: StrictFloat = Field(1e-8, gt=0)
    l2: StrictFloat = Field(0.0, ge=0)
    standardize: StrictBool = True
    validation_fraction: StrictFloat = Field(0.2, ge=0, le=0.5)
    early_stopping: StrictBool = False
    patience: StrictInt = Field(10, ge=1)
    min_delta: StrictFloat = Field(1e-4, ge=0)
    shuffle: StrictBool = True
    dtype: Literal["float64", "float32"] = "float64"
    seed: StrictInt | None = Field(None, ge=0, lt=2**63, description="null: one is drawn")

    @model_validator(mode="after")
    def _limits(self) -> HyperparametersIn:
        settings = get_settings()
        if self.hidden_units > settings.max_hidden_units:
            raise ValueError(
                f"hidden_units {self.hidden_units} is more than the limit "
                f"{settings.max_hidden_units}"
            )
        if self.epochs > settings.max_epochs:
            raise ValueError(f"epochs {self.epochs} is more than the limit {settings.max_epochs}")
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("early_stopping needs a validation set: validation_fraction > 0")
        return self


class RunCreate(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    # the id POST /datasets/samples gives its own example (auth off)
                    "dataset_id": sample_dataset_id(OWNER_LOCAL, "moons", 400, 0.1, 0),
                    "name": "moons, 16 relu units",
                    "hyperparameters": {
                        "hidden_units": 16,
                        "epochs": 200,
                        "learning_rate": 0.3,
                        "seed": 0,
                    },
                }
            ]
        },
    )

    dataset_id: Id
    name: Name | None = None
    init_from_run_id: Id | None = None
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)


class ProgressRead(BaseModel):
    epoch: int
    epochs: int


class MetricsRead(BaseModel):
    cost: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None


class RunMetrics(BaseModel):
    train: MetricsRead
    validation: MetricsRead | None


class RunRead(BaseModel):
    id: str
    name: str | None
    dataset_id: str
    init_from_run_id: str | None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    hyperparameters: dict[str, Any]
    progress: ProgressRead
    metrics: RunMetrics | None
    best_epoch: int | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunHistory(BaseModel):
    epoch: list[int]
    train_cost: list[float]
    validation_cost: list[float | None] | None
    train_accuracy: list[float]
    validation_accuracy: list[float | None] | None


class Standardization(BaseModel):
    mean: list[float]
    scale: list[float]


class ModelRead(BaseModel):
    """Weights in the standardized feature space, shapes as DESIGN §1."""

    run_id: str
    n_features: int
    hidden_units: int
    hidden_activation: str
    classes: list[Label]
    standardization: Standardization | None
    W1: list[list[float]]
    b1: list[list[float]]
    W2: list[list[float]]
    b2: list[list[float]]


def run_read(run: Any) -> RunRead:
    """RunRead from a stored run."""
    return RunRead(
        id=run.id,
        name=run.name,
        dataset_id=run.dataset_id,
        init_from_run_id=run.init_from_run_id,
        status=run.status,
        hyperparameters=run.hyperparameters,
        progress=ProgressRead(epoch=run.epoch, epochs=run.epochs),
        metrics=None if run.metrics is None else RunMetrics.model_validate(run.metrics),
        best_epoch=run.best_epoch,
        error=run.error,
        attempts=run.attempts,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )
