"""Liveness and readiness answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HealthRead(BaseModel):
    """The process answers."""

    status: Literal["ok"] = Field(description="always ok: the process is alive")


class ReadyRead(BaseModel):
    """Whether the service can do its work, part by part."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "checks": {"database": "ok", "executor": "ok"}}]
        }
    )

    status: Literal["ok", "unavailable"] = Field(description="ok when every check is")
    checks: dict[str, str] = Field(
        description="database and executor: ok, or error: what failed (the broker for "
        "celery, a live worker process for local)"
    )
