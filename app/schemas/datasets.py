from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from app.core.settings import get_settings
from app.nn import check_labels
from app.nn.samples import SampleKind
from app.schemas.common import FiniteFloat, Label, Name, Schema, check_rows


class DatasetCreate(Schema):
    """A dataset given inline: `features` holds m rows of n_x numbers (samples are rows)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "and-gate",
                    "features": [[0, 0], [0, 1], [1, 0], [1, 1], [0.1, 0.1], [0.9, 0.9]],
                    "labels": ["off", "off", "off", "on", "off", "on"],
                    "feature_names": ["a", "b"],
                }
            ]
        }
    )

    name: Name
    features: list[list[FiniteFloat]]
    labels: list[Label]
    feature_names: list[Name] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DatasetCreate:
        settings = get_settings()
        m = len(self.features)
        if m < 2:
            raise ValueError(f"features must hold at least 2 rows, got {m}")
        if m > settings.max_samples:
            raise ValueError(f"features has {m} rows, more than the limit {settings.max_samples}")
        n = check_rows(self.features, name="features")
        if n > settings.max_features:
            raise ValueError(
                f"features has {n} columns, more than the limit {settings.max_features}"
            )
        if len(self.labels) != m:
            raise ValueError(f"labels has {len(self.labels)} values but features has {m} rows")
        check_labels(self.labels)
        if self.feature_names is not None and len(self.feature_names) != n:
            raise ValueError(
                f"feature_names has {len(self.feature_names)} names but features has {n} columns"
            )
        return self


class SampleDatasetCreate(Schema):
    """A generated two-class dataset, to try the service from Swagger UI."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "moons", "n_samples": 400, "noise": 0.1, "seed": 0}]
        },
    )

    kind: SampleKind
    n_samples: StrictInt = Field(400, ge=2)
    noise: FiniteFloat = Field(0.1, ge=0, le=10)
    seed: StrictInt = Field(0, ge=0, lt=2**63)
    name: Name | None = None

    @model_validator(mode="after")
    def _limit(self) -> SampleDatasetCreate:
        limit = get_settings().max_samples
        if self.n_samples > limit:
            raise ValueError(f"n_samples {self.n_samples} is more than the limit {limit}")
        return self


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    n_samples: int
    n_features: int
    feature_names: list[str]
    classes: list[Label]
    class_counts: list[int]
    sha256: str
    created_at: datetime
