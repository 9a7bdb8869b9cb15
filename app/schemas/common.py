"""What every resource's schemas share: strict request bodies, problem details,
pages, and the helpers that state the engine's rules and the service's limits
in the JSON Schema."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt

from app.core.errors import DomainError
from app.core.ids import ID_PATTERN
from app.core.settings import Settings, get_settings
from app.core.text import LABEL_MAX, NAME_MAX, NO_NUL
from app.nn import Rule

T = TypeVar("T")

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
# the rules of app/core/text.py (every character but NUL, up to 200 of them)
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NO_NUL)]
Id = Annotated[str, Field(pattern=ID_PATTERN, description="an id given by this API")]
TextLabel = Annotated[str, Field(max_length=LABEL_MAX, pattern=NO_NUL)]
Label = bool | int | TextLabel  # bool first, so JSON true stays True and never becomes 1
# in answers: what is stored is returned as it is, never checked again (a row
# written under older rules must not make a list answer 500)
StoredLabel = bool | int | str


class Schema(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped
    (`explain_unknown_fields` names the closest known one)."""

    model_config = ConfigDict(extra="forbid")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The Pydantic model inside an annotation (X, X | None, list[X], ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def explain_unknown_fields(
    model: type[BaseModel] | None, errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pydantic's "Extra inputs are not permitted", said so a person can act on
    it: the unknown name, the closest known one, and the known ones. `model` is
    the request body's; errors elsewhere pass unchanged."""
    for error in errors:
        if error.get("type") != "extra_forbidden" or model is None:
            continue
        path = [p for p in error.get("loc", ()) if p != "body"]
        here: type[BaseModel] | None = model
        for part in path[:-1]:
            if isinstance(part, int):
                continue  # an item of a list: the list's model
            field = here.model_fields.get(part) if here is not None else None
            here = _model_in(field.annotation) if field is not None else None
        if here is None or not path:
            continue
        known = list(here.model_fields)
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        error["msg"] = f"unknown field {path[-1]!r}{hint} (known: {', '.join(known)})"
    return errors


def exactly_one(model: BaseModel, *fields: str) -> None:
    """ValueError unless exactly one of the fields is given (a oneOf of the schema)."""
    if sum(getattr(model, name) is not None for name in fields) != 1:
        raise ValueError(f"give exactly one of {', '.join(fields[:-1])} and {fields[-1]}")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (application/problem+json)."""

    type: str = Field("about:blank", description="what kind of problem: a path under /problems/")
    title: str = Field(description="the kind of problem, in words")
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="what went wrong this time, naming the input")
    errors: list[dict[str, Any]] | None = Field(
        None, description="for invalid input: each problem's location (loc), message and type"
    )


def problem_example(error: type[DomainError]) -> dict[str, Any]:
    return {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.example,
    }


def problem_answer(example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI response documented as problem+json, with its first example
    (named by its type); `add_example` adds more."""
    return add_example(
        {
            "description": example["title"],
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {},
                }
            },
        },
        example,
    )


def add_example(answer: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    examples = answer["content"]["application/problem+json"]["examples"]
    examples.setdefault(example["type"].rsplit("/", 1)[-1], {"value": example})
    return answer


def problems(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the domain errors an operation can answer, each
    documented as problem+json with a real example."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        example = problem_example(error)
        if error.status in responses:
            add_example(responses[error.status], example)
        else:
            responses[error.status] = problem_answer(example)
    return responses


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T] = Field(description="this page's rows")
    total: int = Field(description="rows in the whole list (all pages)")


def limits(**keywords: int | Callable[[Settings], int]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` stating limits (minItems, maxItems, maximum, …) in the
    JSON Schema. A callable is read from the settings of the app whose schema is
    being made, so the document states the limits the server enforces."""

    def extra(schema: dict[str, Any]) -> None:
        settings = get_settings()
        for key, value in keywords.items():
            schema[key] = value(settings) if callable(value) else value

    return extra


def check_rows(rows: list[list[float]], *, name: str, n_features: int | None = None) -> int:
    """The common width of `rows`, or ValueError naming the first ragged row."""
    return check_widths([len(row) for row in rows], name=name, n_features=n_features)


def check_widths(widths: Sequence[int], *, name: str, n_features: int | None = None) -> int:
    """`check_rows` on the rows' lengths alone (for rows already decoded into an array)."""
    if not widths:
        raise ValueError(f"{name} must hold at least one row")
    width = widths[0] if n_features is None else n_features
    if width == 0:
        raise ValueError(f"{name} rows must not be empty")
    for i, length in enumerate(widths):
        if length != width:
            raise ValueError(
                f"{name} must be rectangular: row {i} has {length} numbers, expected {width}"
            )
    return width


def rule_field(rule: Rule, default: Any, **extra: Any) -> tuple[Any, Any]:
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
        **extra,
    )
    return annotation, info
