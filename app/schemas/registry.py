"""The model registry's requests and answers: models, versions, aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import ALIAS, ALIAS_MAX, MODEL_NAME, MODEL_NAME_MAX, NO_NUL
from app.db.models import ModelVersion
from app.schemas.common import Id, Schema, StoredLabel
from app.schemas.runs import EXAMPLE_RUN_ID, TOUR_DATASET_ID
from app.services.registry import ModelView

EXAMPLE_MODEL = "moons"
DESCRIPTION_MAX = 2000

ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MODEL_NAME_MAX,
        pattern=f"^{MODEL_NAME}$",
        description="letters, digits and . _ -, starting with a letter or digit",
        examples=[EXAMPLE_MODEL],
    ),
]
AliasName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ALIAS_MAX,
        pattern=f"^{ALIAS}$",
        description="letters, digits, _ and -, starting with a letter or _; not 'latest'",
        examples=["champion"],
    ),
]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
VersionNumber = Annotated[int, Field(ge=1, le=999_999_999, description="a version number")]


class RegisteredModelCreate(Schema):
    """A new named model; its versions are registered after."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": EXAMPLE_MODEL, "description": "two moons"}]}
    )

    name: ModelName
    description: Description | None = Field(None, description="what it is for")


class RegisteredModelUpdate(Schema):
    """The model's description (PUT makes the model when it does not exist)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "two moons"}]})

    description: Description | None = Field(None, description="what it is for")


class ModelVersionCreate(Schema):
    """A succeeded run of yours, registered as the model's next version."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"run_id": EXAMPLE_RUN_ID}]})

    run_id: Id
    description: Description | None = Field(None, description="what this version is")


class AliasUpdate(Schema):
    """The version the alias points at from now on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 1}]})

    version: VersionNumber


class ModelVersionRead(BaseModel):
    """A version: its run and what the run was trained on and scored, fixed at
    registration."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "run_id": EXAMPLE_RUN_ID,
                    "description": None,
                    "dataset_id": TOUR_DATASET_ID,
                    "feature_names": ["x0", "x1"],
                    "label_name": "label",
                    "classes": [0, 1],
                    "standardized": True,
                    "hyperparameters": {"hidden_units": 16, "activation": "relu"},
                    "metrics": {"train": {"accuracy": 0.9975}},
                    "created_at": "2026-12-02T10:00:00Z",
                    "aliases": ["champion"],
                }
            ]
        }
    )

    version: int = Field(description="its number, 1 for the model's first")
    run_id: str = Field(description="the run whose weights this version is")
    description: str | None = Field(description="what it is, as given at registration")
    dataset_id: str = Field(description="the dataset the run was trained on")
    feature_names: list[str] = Field(description="the features, in the order instances give them")
    label_name: str = Field(description="the name of the predicted column")
    classes: list[StoredLabel] = Field(description="[negative, positive]")
    standardized: bool = Field(description="whether the model standardizes its inputs itself")
    hyperparameters: dict[str, Any] = Field(description="the run's, resolved")
    metrics: dict[str, Any] | None = Field(description="the run's final metrics")
    created_at: datetime = Field(description="when it was registered")
    aliases: list[str] = Field(description="the aliases pointing at this version")


class _ModelFields(BaseModel):
    name: str = Field(description="the model's name, unique among yours")
    description: str | None = Field(description="what it is for")
    created_at: datetime = Field(description="when it was made")
    updated_at: datetime = Field(
        description="when a version, an alias or the description last changed"
    )
    latest_version: int | None = Field(description="the newest version; null with none")
    aliases: dict[str, int] = Field(description="alias → version")


class RegisteredModelSummary(_ModelFields):
    """A model, without its versions (GET /models)."""

    version_count: int = Field(description="how many versions it has")


class RegisteredModelRead(_ModelFields):
    """A model, its versions (newest first) and its aliases."""

    versions: list[ModelVersionRead] = Field(description="newest first")


class AliasRead(BaseModel):
    model: str = Field(description="the model's name")
    alias: str = Field(description="the alias")
    version: int = Field(description="the version it points at")


def version_read(version: ModelVersion, aliases: list[str]) -> ModelVersionRead:
    """The read of a stored version: its columns by name, and its aliases."""
    names = [name for name in ModelVersionRead.model_fields if name != "aliases"]
    return ModelVersionRead.model_validate(
        {**{name: getattr(version, name) for name in names}, "aliases": aliases}
    )


def _model_fields(view: ModelView) -> dict[str, Any]:
    m = view.model
    return {
        "name": m.name,
        "description": m.description,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "latest_version": view.versions[0].version if view.versions else None,
        "aliases": view.aliases,
    }


def model_summary(view: ModelView) -> RegisteredModelSummary:
    return RegisteredModelSummary(**_model_fields(view), version_count=len(view.versions))


def model_read(view: ModelView) -> RegisteredModelRead:
    pointing: dict[int, list[str]] = {}
    for alias, version in view.aliases.items():
        pointing.setdefault(version, []).append(alias)
    versions = [version_read(v, pointing.get(v.version, [])) for v in view.versions]
    return RegisteredModelRead(**_model_fields(view), versions=versions)
