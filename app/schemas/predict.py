"""Prediction requests and answers, and the decoder of large prediction bodies.

`PredictRequest` is the contract and holds every rule. A large body (over
`LARGE_BODY_BYTES`) is decoded by `parse_large`, which applies the same rules
with the same messages but never builds a Python float per number: the
`instances` array is decoded by orjson in pieces of about `PIECE_BYTES`,
each straight into float64, and the rest of the body (everything but that
array) is validated by the schema itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from app.core.settings import get_settings
from app.core.text import ALIAS_MAX, MODEL_NAME_MAX, MODEL_REF
from app.nn.model import DEFAULT_THRESHOLD, THRESHOLD
from app.schemas.common import (
    FiniteFloat,
    Id,
    Name,
    Schema,
    StoredLabel,
    check_widths,
    exactly_one,
    limits,
)
from app.schemas.runs import EXAMPLE_RUN_ID, TOUR_RUN_NAME

ModelRef = Annotated[
    str,
    Field(
        max_length=MODEL_NAME_MAX + 1 + ALIAS_MAX, pattern=MODEL_REF, examples=["moons@champion"]
    ),
]
TOUR_INSTANCES: Any = [[0.0, 1.0], [1.0, -0.5]]  # a point of each moon
Row = Annotated[
    list[FiniteFloat],
    Field(json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_features)),
]


class RunPredictRequest(Schema):
    """Rows of features to predict, with the run named by the path."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"instances": TOUR_INSTANCES, "threshold": 0.5}]},
    )

    instances: list[Row] = Field(
        description="m rows of n_features numbers, raw (the run's standardization is applied)",
        json_schema_extra=limits(minItems=1, maxItems=lambda s: s.max_predict_instances),
    )
    threshold: FiniteFloat = Field(
        DEFAULT_THRESHOLD,
        ge=THRESHOLD.ge,
        le=THRESHOLD.le,
        description=THRESHOLD.description,
    )
    explain: StrictBool = Field(
        False,
        description="also answer `gradients` (∂ŷ/∂x for each feature, in the features' own "
        "units) and `attributions` (x·∂ŷ/∂x) for each row",
    )

    @model_validator(mode="after")
    def _rectangular(self) -> RunPredictRequest:
        check_instances([len(row) for row in self.instances])
        return self


def check_instances(widths: Sequence[int]) -> int:
    """The rules of `instances`, on its rows' lengths: at most
    TWOLAYER_MAX_PREDICT_INSTANCES rows, rectangular, not empty. Its width."""
    limit = get_settings().max_predict_instances
    if len(widths) > limit:
        raise ValueError(f"instances has {len(widths)} rows, more than {limit}")
    return check_widths(widths, name="instances")


class PredictRequest(RunPredictRequest):
    """Rows of features to predict, and the run whose weights answer: by id, by
    name (the owner's newest run of that name), or a registered model's version
    (`name`, `name@3`, `name@champion`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"run_name": TOUR_RUN_NAME, "instances": TOUR_INSTANCES, "threshold": 0.5}
            ],
            "oneOf": [
                {"required": ["run_id"]},
                {"required": ["run_name"]},
                {"required": ["model"]},
            ],
        },
    )

    run_id: Id | None = Field(None, description="the run, by id (or give run_name or model)")
    run_name: Name | None = Field(
        None, description="the run, by name: your newest run of this name (or give run_id)"
    )
    model: ModelRef | None = Field(
        None,
        description="a registered model's version: `name` (its newest), `name@3`, or "
        "`name@alias`; resolved at each request, so a moved alias answers at once",
    )

    @model_validator(mode="after")
    def _one_run(self) -> PredictRequest:
        exactly_one(self, "run_id", "run_name", "model")
        return self


class PredictResponse(BaseModel):
    """ŷ for each row, and the class it predicts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"run_id": EXAMPLE_RUN_ID, "probabilities": [0.00685, 0.9945], "labels": [0, 1]}
            ]
        }
    )

    run_id: str = Field(description="the run whose weights answered")
    model: str | None = Field(
        None, description="`name@version` that answered, when the request named a model"
    )
    probabilities: list[float] = Field(description="ŷ = σ(Z2) for each row")
    labels: list[StoredLabel] = Field(
        description="for each row, the dataset's positive class where ŷ ≥ threshold, else "
        "the negative one"
    )
    gradients: list[list[float]] | None = Field(
        None,
        description="with explain: for each row, ∂ŷ/∂x_j for each feature j, in the "
        "features' own units (through the standardization); 0 where ŷ saturates",
    )
    attributions: list[list[float]] | None = Field(
        None,
        description="with explain: for each row, x_j·∂ŷ/∂x_j (gradient × input, measured "
        "from the origin of the features' units)",
    )


# ------------------------------------------------------------ large bodies

M = TypeVar("M", bound=RunPredictRequest)
LARGE_BODY_BYTES = 256 * 1024  # above it, a body is decoded by parse_large
PIECE_BYTES = 1024 * 1024  # the instances array is decoded about this much at a time
_KEY = re.compile(rb'"instances"\s*:\s*\[')
_END = re.compile(rb"\]\s*\]")
_STANDIN = b"[[0.0]]"  # what the schema sees in place of the array


def parse_large(model: type[M], body: bytes | bytearray) -> tuple[M, np.ndarray]:
    """The request, and its instances as a float64 (m, n) array, from a large body;
    ValidationError as `model.model_validate_json(body)` would raise it.

    The array is found in the text: the first `"instances": [[` up to the first
    `]]` after it. When that span is a plain array of rows of JSON numbers, it is
    decoded piece by piece, and the body with the span replaced by a stand-in is
    validated by `model`, which then holds no other `instances`. Otherwise (any
    doubt: other value types, a duplicated key, malformed JSON) the whole body
    is validated by `model`, exactly as a small one. A bytearray body is
    emptied once its array is decoded.
    """
    found = _decode(model, body)
    if found is None:
        request = model.model_validate_json(body)
        return request, np.asarray(request.instances, dtype=np.float64)
    return found


def _decode(model: type[M], body: bytes | bytearray) -> tuple[M, np.ndarray] | None:
    key = _KEY.search(body)
    if key is None:
        return None
    start = key.end() - 1  # the array's "["
    end = _END.search(body, start)
    if end is None:
        return None
    rest = bytes(body[:start]) + _STANDIN + bytes(body[end.end() :])
    if len(_KEY.findall(rest)) != 1:
        return None
    rows = _rows(body, start + 1, end.end() - 1)
    if rows is None:
        return None
    widths, pieces = rows
    problem: ValidationError | None = None
    try:
        request = model.model_validate_json(rest)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return None  # malformed: said of the body itself, where it is
        if any(error["loc"] for error in exc.errors()):
            raise  # a field's errors: the schema stops there, before its model checks
        problem = exc  # a check after the fields': instances' own comes first
    if isinstance(body, bytearray):
        body.clear()  # decoded: its memory goes back before the pieces are joined
    try:
        check_instances(widths)
    except ValueError as exc:
        raise ValidationError.from_exception_data(
            model.__name__,
            [{"type": "value_error", "loc": (), "input": None, "ctx": {"error": exc}}],
        ) from None
    if problem is not None:
        raise problem
    return request, np.concatenate(pieces)


def _rows(body: bytes | bytearray, start: int, stop: int) -> tuple[list[int], list[Any]] | None:
    """The rows' lengths and float64 pieces of `body[start:stop]`, the inside of an
    array of rows, decoded about PIECE_BYTES at a time (each cut right after a
    row's "]"); None unless it is rows of JSON numbers."""
    limit = get_settings().max_predict_instances
    widths: list[int] = []
    pieces: list[np.ndarray] = []
    convert = True  # until the rows are ragged or too many: they will be refused
    at = start
    while at < stop:
        cut = stop if stop - at <= PIECE_BYTES else body.find(b"]", at + PIECE_BYTES, stop) + 1
        cut = stop if cut <= 0 else cut
        text = bytes(body[at:cut])
        if at > start:  # a piece after the first starts with its row's comma
            text = text.lstrip()
            if not text.startswith(b","):
                return None
            text = text[1:]
        try:
            rows = orjson.loads(b"[" + text + b"]")
        except orjson.JSONDecodeError:
            return None
        if any(type(row) is not list for row in rows):
            return None
        if not set(map(type, chain.from_iterable(rows))) <= {int, float}:
            return None  # bool, strings, null, ...: the schema's own conversions and errors
        lengths = [len(row) for row in rows]
        widths += lengths
        if convert and rows:
            convert = len(set(lengths)) == 1 and lengths[0] == widths[0] and len(widths) <= limit
        if convert and rows:
            pieces.append(np.array(rows, dtype=np.float64))
        at = cut
    return widths, pieces
