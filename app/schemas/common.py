from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt

from app.core.ids import ID_PATTERN
from app.nn import Rule

T = TypeVar("T")

NO_NUL = r"^[^\x00]*$"  # text columns (PostgreSQL's above all) cannot hold NUL

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Id = Annotated[str, Field(pattern=ID_PATTERN, description="an id given by this API")]
TextLabel = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
Label = bool | int | TextLabel  # bool first, so JSON true stays True and never becomes 1


class Schema(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting problem+json answers."""
    return {status: {"model": Problem} for status in statuses}


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


def check_rows(rows: list[list[float]], *, name: str, n_features: int | None = None) -> int:
    """The common width of `rows`, or ValueError naming the first ragged row."""
    if not rows:
        raise ValueError(f"{name} must hold at least one row")
    width = len(rows[0]) if n_features is None else n_features
    if width == 0:
        raise ValueError(f"{name} rows must not be empty")
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{name} must be rectangular: row {i} has {len(row)} numbers, expected {width}"
            )
    return width


def rule_field(rule: Rule, default: Any) -> tuple[Any, Any]:
    """A Pydantic field (type, FieldInfo) from an engine rule: the same range or
    choices, default and description, so the API and the engine never disagree."""
    annotation: Any
    if rule.kind == "choice":
        annotation = Literal[rule.choices]
    elif rule.kind == "bool":
        annotation = StrictBool
    elif rule.kind == "int":
        annotation = StrictInt
    else:
        annotation = StrictFloat
    if rule.nullable:
        annotation = annotation | None
    info = Field(
        default,
        ge=rule.ge,
        gt=rule.gt,
        le=rule.le,
        lt=rule.lt,
        description=rule.description,
    )
    return annotation, info
