"""The typed events of GET /runs/{id}/events, and a reader of server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.db.models import RunStatus
from app.schemas.runs import RunHistory, RunMetrics


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    id: str | None
    data: str


def parse_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events of a text/event-stream (the WHATWG rules for event, id and data
    fields; comments and retry are ignored)."""
    event, id_ = "", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event or "message", id_, "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            id_ = value
    if data:
        yield ServerSentEvent(event or "message", id_, "\n".join(data))


class StateEvent(BaseModel):
    """`status` (the status changed), `queued` or `progress` (a beat): where the run stands."""

    kind: Literal["status", "queued", "progress"]
    id: int = Field(description="the last epoch sent")
    status: RunStatus
    epoch: int
    epochs: int
    queue_position: int | None = None
    eta_seconds: float | None = None


class EpochsEvent(BaseModel):
    """New epochs' figures, columnar as RunHistory."""

    kind: Literal["epochs"] = "epochs"
    id: int
    history: RunHistory


class EndEvent(BaseModel):
    """The last event: the run ended (`reason` "ended"), or the stream ends early
    because it was deleted ("deleted") or the key was revoked ("unauthorized")."""

    kind: Literal["end"] = "end"
    id: int
    reason: str
    status: RunStatus | None = None
    detail: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    error: str | None = None
    metrics: RunMetrics | None = None
    best_epoch: int | None = None
    warnings: list[str] = Field(default_factory=list)


RunEvent = StateEvent | EpochsEvent | EndEvent


def typed_event(sse: ServerSentEvent) -> RunEvent | None:
    """The typed event, or None for one this client does not know (a newer server's)."""
    data: dict[str, Any] = json.loads(sse.data)
    id_ = int(sse.id) if sse.id and sse.id.isdigit() else 0
    if sse.event in ("status", "queued", "progress"):
        return StateEvent.model_validate({**data, "kind": sse.event, "id": id_})
    if sse.event == "epochs":
        return EpochsEvent(id=id_, history=RunHistory.model_validate(data))
    if sse.event == "end":
        return EndEvent.model_validate({**data, "id": id_})
    return None
