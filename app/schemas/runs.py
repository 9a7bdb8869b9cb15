from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.core.ids import sample_dataset_id
from app.core.settings import get_settings
from app.db.models import OWNER_LOCAL, RunStatus
from app.nn import Metrics, Model
from app.nn.hyperparameters import DEFAULTS, RULES, early_stopping_problem
from app.schemas.common import Id, Label, Name, Schema, rule_field

if TYPE_CHECKING:
    _HyperparameterFields = Schema
else:  # one field per engine hyperparameter, from its rule (app.nn.hyperparameters)
    _HyperparameterFields = create_model(
        "_HyperparameterFields",
        __base__=Schema,
        **{name: rule_field(rule, DEFAULTS[name]) for name, rule in RULES.items()},
    )


class HyperparametersIn(_HyperparameterFields):
    """Every field is optional. Ranges, defaults and descriptions are the engine's
    own rules; the limits of this service's settings apply on top."""

    @model_validator(mode="after")
    def _limits(self) -> HyperparametersIn:
        values = self.model_dump()
        settings = get_settings()
        for name, limit in (
            ("hidden_units", settings.max_hidden_units),
            ("epochs", settings.max_epochs),
        ):
            if values[name] > limit:
                raise ValueError(f"{name} {values[name]} is more than the limit {limit}")
        problem = early_stopping_problem(values["early_stopping"], values["validation_fraction"])
        if problem is not None:
            raise ValueError(problem)
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


class RunMetrics(BaseModel):
    """The final figures (the engine's Metrics) on the training and validation splits."""

    train: Metrics
    validation: Metrics | None


class RunRead(BaseModel):
    id: str
    name: str | None
    dataset_id: str
    init_from_run_id: str | None
    status: RunStatus
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


class StandardizationRead(BaseModel):
    """x' = (x - mean) / scale, per feature, fit on the training split."""

    mean: list[float]
    scale: list[float]


class ModelRead(BaseModel):
    """Weights in the standardized feature space: W1 (n_h, n_x), b1 (n_h, 1),
    W2 (1, n_h), b2 (1, 1)."""

    run_id: str
    n_features: int
    hidden_units: int
    hidden_activation: str
    classes: list[Label]
    standardization: StandardizationRead | None
    W1: list[list[float]]
    b1: list[list[float]]
    W2: list[list[float]]
    b2: list[list[float]]

    @classmethod
    def of(cls, run_id: str, model: Model) -> ModelRead:
        P, s = model.params, model.standardization
        return cls(
            run_id=run_id,
            n_features=model.n_features,
            hidden_units=model.hidden_units,
            hidden_activation=model.activation,
            classes=list(model.classes),
            standardization=None
            if s is None
            else StandardizationRead(mean=s.mean.ravel().tolist(), scale=s.scale.ravel().tolist()),
            W1=P.W1.tolist(),
            b1=P.b1.tolist(),
            W2=P.W2.tolist(),
            b2=P.b2.tolist(),
        )


def run_read(run: Any) -> RunRead:
    """RunRead from a stored run: its columns by name, and its progress."""
    columns = {name: getattr(run, name) for name in RunRead.model_fields if name != "progress"}
    return RunRead.model_validate(
        {**columns, "progress": ProgressRead(epoch=run.epoch, epochs=run.epochs)}
    )
