from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.core.settings import Settings, get_settings
from app.db.models import RunStatus
from app.nn import Metrics, Model
from app.nn.hyperparameters import DEFAULTS, RULES, early_stopping_problem
from app.schemas.common import (
    Id,
    Name,
    Schema,
    StoredLabel,
    exactly_one,
    limits,
    rule_field,
)
from app.schemas.provenance import EXAMPLE_REPRODUCIBILITY, ReproducibilityRead
from app.services.datasets import sample_name
from app.services.run_history import eta_seconds
from app.services.runs import RunView

# settings that cap a hyperparameter: stated in the schema, enforced below
CAPS: dict[str, Callable[[Settings], int]] = {
    "hidden_units": lambda s: s.max_hidden_units,
    "epochs": lambda s: s.max_epochs,
}

if TYPE_CHECKING:
    _HyperparameterFields = Schema
else:  # one field per engine hyperparameter, from its rule (app.nn.hyperparameters)
    _HyperparameterFields = create_model(
        "_HyperparameterFields",
        __base__=Schema,
        **{
            name: rule_field(
                rule,
                DEFAULTS[name],
                json_schema_extra=limits(maximum=CAPS[name]) if name in CAPS else None,
            )
            for name, rule in RULES.items()
        },
    )


class HyperparametersIn(_HyperparameterFields):
    """Every field is optional. Ranges, defaults and descriptions are the engine's
    own rules; the limits of this service's settings apply on top."""

    @model_validator(mode="after")
    def _limits(self) -> HyperparametersIn:
        values = self.model_dump()
        settings = get_settings()
        for name, cap in CAPS.items():
            limit = cap(settings)
            if values[name] > limit:
                raise ValueError(f"{name} {values[name]} is more than the limit {limit}")
        problem = early_stopping_problem(values["early_stopping"], values["validation_fraction"])
        if problem is not None:
            raise ValueError(problem)
        return self


# The Swagger tour (docs/design.md, "The tour"): the sample dataset is found
# by its name and the run by its name, so every example works as it stands.
TOUR_RUN_NAME = "moons-tour"
TOUR_SAMPLE: Any = {"kind": "moons", "n_samples": 400, "noise": 0.1, "seed": 0}
TOUR_DATASET_NAME = sample_name(**TOUR_SAMPLE)  # the sample's name when it is given none
# an example only: a sample's id is derived with the server's secret key
TOUR_DATASET_ID = "3c6e0b8a-9f1d-4c2e-8a7b-5d4f3e2a1b0c"
TOUR_HYPERPARAMETERS: Any = {"hidden_units": 16, "epochs": 200, "learning_rate": 0.3, "seed": 0}
EXAMPLE_RUN_ID = "9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c"


class RunCreate(Schema):
    """A training run to queue."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_name": TOUR_DATASET_NAME,
                    "name": TOUR_RUN_NAME,
                    "hyperparameters": TOUR_HYPERPARAMETERS,
                }
            ],
            "oneOf": [{"required": ["dataset_id"]}, {"required": ["dataset_name"]}],
        },
    )

    dataset_id: Id | None = Field(None, description="the dataset to train on (or dataset_name)")
    dataset_name: Name | None = Field(
        None, description="or: your newest dataset of this name (or dataset_id)"
    )
    name: Name | None = Field(
        None, description="a name for people; GET /runs?name= and POST /predict (run_name) find it"
    )
    init_from_run_id: Id | None = Field(
        None,
        description="start from this run's weights (same features, hidden units and "
        "activation); its standardization and classes are reused",
    )
    hyperparameters: HyperparametersIn = Field(
        default_factory=HyperparametersIn, description="all optional; see HyperparametersIn"
    )

    @model_validator(mode="after")
    def _one_dataset(self) -> RunCreate:
        exactly_one(self, "dataset_id", "dataset_name")
        return self


class ProgressRead(BaseModel):
    """How far training has come."""

    epoch: int = Field(description="epochs completed")
    epochs: int = Field(description="epochs asked for")


class RunMetrics(BaseModel):
    """The final figures on the training and validation splits."""

    train: Metrics = Field(description="on the training split")
    validation: Metrics | None = Field(description="on the validation split; null without one")


# the tour's run, as it ends (seed 0: the same on every machine, to rounding)
EXAMPLE_METRICS: Any = {
    "train": {
        "cost": 0.01596,
        "accuracy": 0.9969,
        "precision": 1.0,
        "recall": 0.9938,
        "f1": 0.9969,
        "roc_auc": 1.0,
    },
    "validation": {
        "cost": 0.02396,
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "roc_auc": 1.0,
    },
}


class RunRead(BaseModel):
    """A training run and where it stands."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_RUN_ID,
                    "name": TOUR_RUN_NAME,
                    "dataset_id": TOUR_DATASET_ID,
                    "init_from_run_id": None,
                    "status": "succeeded",
                    "hyperparameters": {**DEFAULTS, **TOUR_HYPERPARAMETERS, "init": "he"},
                    "progress": {"epoch": 200, "epochs": 200},
                    "queue_position": None,
                    "eta_seconds": None,
                    "metrics": EXAMPLE_METRICS,
                    "best_epoch": 199,
                    "warnings": [],
                    "error": None,
                    "attempts": 1,
                    "created_at": "2026-12-01T12:00:00.000000Z",
                    "started_at": "2026-12-01T12:00:00.100000Z",
                    "finished_at": "2026-12-01T12:00:01.200000Z",
                    "reproducibility": EXAMPLE_REPRODUCIBILITY,
                }
            ]
        }
    )

    id: str = Field(description="the run's id")
    name: str | None = Field(description="the name it was given, if any")
    dataset_id: str = Field(description="the dataset it trains on")
    init_from_run_id: str | None = Field(description="the run whose weights it started from")
    status: RunStatus = Field(
        description="queued → running → succeeded | failed | cancelled; a run whose worker "
        "was lost goes back to queued and resumes from its checkpoint"
    )
    hyperparameters: dict[str, Any] = Field(
        description="as resolved: every field, with init and the drawn seed filled in"
    )
    progress: ProgressRead = Field(description="epochs completed of epochs asked for")
    queue_position: int | None = Field(
        description="while queued: 1 for the next run to be claimed (all owners' runs count)"
    )
    eta_seconds: float | None = Field(
        description="while running: the time left at this attempt's pace so far"
    )
    metrics: RunMetrics | None = Field(description="the final figures; null until the run ends")
    best_epoch: int | None = Field(
        description="the last epoch whose validation cost beat the best so far by more than "
        "min_delta (not always the lowest); null without validation"
    )
    warnings: list[str] = Field(
        description="what the figures hide (it learned nothing, the cost rose, a class is "
        "never predicted, early stopping never improved); empty until the run ends"
    )
    error: str | None = Field(description="why it failed")
    attempts: int = Field(description="claims by a worker (more than 1: a worker was lost)")
    created_at: datetime = Field(description="when it was queued")
    started_at: datetime | None = Field(description="when a worker first took it")
    finished_at: datetime | None = Field(description="when it ended")
    reproducibility: ReproducibilityRead = Field(
        description="the dataset's sha256, the seed, the warm-start source and the "
        "environments its weights were computed in: what POST /runs/{id}/rerun repeats"
    )


class RunHistory(BaseModel):
    """Per-epoch figures, one list per column, oldest epoch first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "epoch": [199, 200],
                    "train_cost": [0.01632, 0.01615],
                    "validation_cost": [0.02401, 0.02396],
                    "train_accuracy": [0.9969, 0.9969],
                    "validation_accuracy": [1.0, 1.0],
                }
            ]
        }
    )

    epoch: list[int] = Field(description="the epochs (1-based)")
    train_cost: list[float] = Field(
        description="each epoch's mean loss over its batches, each taken before its step"
    )
    validation_cost: list[float | None] | None = Field(
        description="J on the validation split after each epoch; null without validation"
    )
    train_accuracy: list[float] = Field(description="each epoch's accuracy over its batches")
    validation_accuracy: list[float | None] | None = Field(
        description="accuracy on the validation split after each epoch"
    )


class StandardizationRead(BaseModel):
    """x' = (x - mean) / scale, per feature, fit on the training split."""

    mean: list[float] = Field(description="per feature")
    scale: list[float] = Field(description="per feature (1 for a constant feature)")


class ModelRead(BaseModel):
    """A run's weights, in the standardized feature space."""

    run_id: str = Field(description="the run")
    n_features: int = Field(description="n_x")
    hidden_units: int = Field(description="n_h")
    hidden_activation: str = Field(description="relu or tanh")
    classes: list[StoredLabel] = Field(description="[negative, positive]: the dataset's own values")
    standardization: StandardizationRead | None = Field(
        description="apply it to raw features first; null if the run did not standardize"
    )
    W1: list[list[float]] = Field(description="(n_h, n_x)")
    b1: list[list[float]] = Field(description="(n_h, 1)")
    W2: list[list[float]] = Field(description="(1, n_h)")
    b2: list[list[float]] = Field(description="(1, 1)")

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


# about this many numbers of W1 per piece of model_json: ~1 MiB of JSON
PIECE_NUMBERS = 1 << 16


def model_json(run_id: str, model: Model) -> Iterator[bytes]:
    """ModelRead.of(run_id, model) as JSON, byte for byte what Pydantic writes, in
    pieces of about 1 MiB: W1 a block of rows at a time, never whole in memory
    as text or as Python floats. (orjson writes a float64 as Pydantic does; a
    float32 weight is written as its exact float64 value, as .tolist() gives.)"""
    P, s = model.params, model.standardization
    head = {
        "run_id": run_id,
        "n_features": model.n_features,
        "hidden_units": model.hidden_units,
        "hidden_activation": model.activation,
        "classes": list(model.classes),
        "standardization": None
        if s is None
        else {"mean": s.mean.ravel().tolist(), "scale": s.scale.ravel().tolist()},
    }
    yield orjson.dumps(head)[:-1] + b',"W1":['
    block = max(1, PIECE_NUMBERS // max(model.n_features, 1))
    for start in range(0, model.hidden_units, block):
        rows = _numbers(P.W1[start : start + block])[1:-1]
        yield rows if start == 0 else b"," + rows
    yield b'],"b1":' + _numbers(P.b1) + b',"W2":' + _numbers(P.W2)
    yield b',"b2":' + _numbers(P.b2) + b"}"


def _numbers(array: np.ndarray) -> bytes:
    return orjson.dumps(array.astype(np.float64), option=orjson.OPT_SERIALIZE_NUMPY)


def run_read(view: RunView) -> RunRead:
    """RunRead from a stored run: its columns by name, its progress and place."""
    run = view.run
    derived = {"progress", "queue_position", "eta_seconds", "warnings", "reproducibility"}
    columns = {name: getattr(run, name) for name in RunRead.model_fields if name not in derived}
    return RunRead.model_validate(
        {
            **columns,
            "progress": ProgressRead(epoch=run.epoch, epochs=run.epochs),
            "queue_position": view.queue_position,
            "eta_seconds": eta_seconds(run),
            "warnings": run.warnings or [],
            "reproducibility": ReproducibilityRead.of(run),
        }
    )
