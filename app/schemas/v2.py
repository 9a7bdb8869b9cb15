"""The Open Inference Protocol's (KServe V2 REST) requests and answers, as this
service speaks it: one input tensor of features, outputs `probability` and
`label` (and `gradient`, asked for by name), JSON tensor data only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import NAME_MAX, NO_NUL
from app.schemas.common import Schema, StrictFloat
from app.services.inference import DATATYPES, INPUT, OUTPUTS, Datatype, InputName, OutputName

Parameters = dict[str, Any]


class InferInput(Schema):
    """An input tensor: `input`, shape [m, n_features], FP64 or FP32, its data flat
    (row-major) or as rows."""

    name: InputName = Field(description="the model's one input")
    shape: list[int] = Field(max_length=8, description="[m, n_features]")
    datatype: Datatype = Field(description=f"one of {', '.join(DATATYPES)}")
    parameters: Parameters | None = Field(None, description="accepted; none is needed")
    data: list[StrictFloat] | list[list[StrictFloat]] = Field(
        description="the m·n_features numbers, row-major, flat or as m rows"
    )


class InferOutputRequest(Schema):
    """An output asked for by name; without `outputs`, all of the defaults are sent."""

    name: OutputName = Field(description="probability, label, gradient (∂ŷ/∂x) or attribution")
    parameters: Parameters | None = Field(
        None, description='accepted; "binary_data": true is refused (JSON data only)'
    )


class InferRequest(Schema):
    """POST /v2/models/{name}[/versions/{version}]/infer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "request-1",
                    "inputs": [
                        {
                            "name": INPUT,
                            "shape": [2, 2],
                            "datatype": "FP64",
                            "data": [0.0, 1.0, 1.0, -0.5],
                        }
                    ],
                    "parameters": {"threshold": 0.5},
                }
            ]
        }
    )

    id: str | None = Field(None, max_length=NAME_MAX, pattern=NO_NUL, description="echoed back")
    parameters: Parameters | None = Field(
        None, description="`threshold` (0 to 1, default 0.5) decides the label"
    )
    inputs: list[InferInput] = Field(min_length=1, max_length=1, description="the one input")
    outputs: list[InferOutputRequest] | None = Field(
        None, max_length=8, description=f"the outputs to send (default: {', '.join(OUTPUTS)})"
    )


class OutputTensor(BaseModel):
    name: str = Field(description="probability, label or gradient")
    datatype: str = Field(description="FP64 or FP32; the label's INT64, BOOL or BYTES")
    shape: list[int] = Field(description="[m] ([m, n_features] for the gradient)")
    data: list[Any] = Field(description="row-major")


class InferResponse(BaseModel):
    model_name: str = Field(description="the registered model")
    model_version: str = Field(description="the version that answered")
    id: str | None = Field(None, description="the request's id, when it gave one")
    outputs: list[OutputTensor] = Field(description="in the order asked for")


class MetadataTensor(BaseModel):
    name: str = Field(description="the tensor's name")
    datatype: str = Field(description="its element type")
    shape: list[int] = Field(description="-1 for any size")


class ModelMetadata(BaseModel):
    name: str = Field(description="the registered model's name")
    versions: list[str] = Field(description="its versions (newest first), or the one asked for")
    platform: str = Field(description="what serves it")
    inputs: list[MetadataTensor] = Field(description="the input tensor")
    outputs: list[MetadataTensor] = Field(description="the outputs it can send")


class ModelReady(BaseModel):
    name: str = Field(description="the registered model's name")
    ready: bool = Field(description="true: it can answer infer requests")


class ServerMetadata(BaseModel):
    name: str = Field(description="the server")
    version: str = Field(description="its version")
    extensions: list[str] = Field(description="the protocol extensions it speaks (none)")


class ServerLive(BaseModel):
    live: bool = Field(description="the process answers")


class ServerReady(BaseModel):
    ready: bool = Field(description="the database answers")


class ProtocolError(BaseModel):
    """An error, as the protocol has it."""

    error: str = Field(description="what went wrong")
