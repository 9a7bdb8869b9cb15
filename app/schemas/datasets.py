"""Dataset requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from app.core.settings import get_settings
from app.nn import check_labels
from app.nn.samples import MIN_SAMPLES, SampleKind
from app.schemas.common import (
    FiniteFloat,
    Label,
    Name,
    Schema,
    StoredLabel,
    check_rows,
    limits,
)
from app.schemas.runs import TOUR_DATASET_ID, TOUR_DATASET_NAME, TOUR_SAMPLE

Row = Annotated[
    list[FiniteFloat],
    Field(json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_features)),
]
FeatureNames = Annotated[
    list[Name], Field(json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_features))
]


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

    name: Name = Field(description="a name for people")
    features: list[Row] = Field(
        description="m rows of n_x finite numbers, all of one width",
        json_schema_extra=limits(minItems=MIN_SAMPLES, maxItems=lambda s: s.max_samples),
    )
    labels: list[Label] = Field(
        description="one per row: two distinct values of one type (bool, integer or "
        "string); sorted, the second is the positive class",
        json_schema_extra=limits(minItems=MIN_SAMPLES, maxItems=lambda s: s.max_samples),
    )
    feature_names: FeatureNames | None = Field(
        None, description="one per column; default x0, x1, …"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DatasetCreate:
        settings = get_settings()
        m = len(self.features)
        if m < MIN_SAMPLES:
            raise ValueError(f"features must hold at least {MIN_SAMPLES} rows, got {m}")
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

    model_config = ConfigDict(json_schema_extra={"examples": [TOUR_SAMPLE]})

    kind: SampleKind = Field(description="the shape of the two classes in the plane")
    n_samples: StrictInt = Field(
        400,
        ge=MIN_SAMPLES,
        description="samples, split evenly between the classes",
        json_schema_extra=limits(maximum=lambda s: s.max_samples),
    )
    noise: FiniteFloat = Field(0.1, ge=0, le=10, description="σ of Gaussian noise on x0, x1")
    seed: StrictInt = Field(0, ge=0, lt=2**63, description="the same seed, the same dataset")
    name: Name | None = Field(None, description="default: the parameters, in words")

    @model_validator(mode="after")
    def _limit(self) -> SampleDatasetCreate:
        limit = get_settings().max_samples
        if self.n_samples > limit:
            raise ValueError(f"n_samples {self.n_samples} is more than the limit {limit}")
        return self


class DatasetRead(BaseModel):
    """A stored dataset (its data stays on the server)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": TOUR_DATASET_ID,
                    "name": TOUR_DATASET_NAME,
                    "n_samples": 400,
                    "n_features": 2,
                    "feature_names": ["x0", "x1"],
                    "label_name": "label",
                    "classes": [0, 1],
                    "class_counts": [200, 200],
                    "sha256": "e89310d92b4e8ea926d398ee2f12d33c40a520bcf371995811b665a6f2f19d75",
                    "created_at": "2026-12-01T12:00:00.000000Z",
                }
            ]
        },
    )

    id: str = Field(description="the dataset's id")
    name: str = Field(description="its name")
    n_samples: int = Field(description="m, rows")
    n_features: int = Field(description="n_x, columns")
    feature_names: list[str] = Field(description="one per column")
    label_name: str = Field(description="the label column's name (in data.csv, data.parquet)")
    classes: list[StoredLabel] = Field(
        description="[negative, positive]: the labels' two values, sorted"
    )
    class_counts: list[int] = Field(description="samples of each class, in the order of classes")
    sha256: str = Field(description="of the data (shape, classes, features, labels)")
    created_at: datetime = Field(description="when it was stored")
