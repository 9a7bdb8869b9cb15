"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import DatabaseDep, ExecutorDep
from app.schemas.health import HealthRead, ReadyRead
from app.services.health import check_ready

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health() -> HealthRead:
    """The process is alive (touches nothing)."""
    return HealthRead(status="ok")


@router.get(
    "/ready",
    summary="Readiness",
    response_model=ReadyRead,
    responses={
        503: {"description": "a part does not answer: `checks` says which", "model": ReadyRead}
    },
)
async def ready(db: DatabaseDep, executor: ExecutorDep) -> JSONResponse:
    """200 when the database and the executor answer, else 503 naming what failed."""
    report = await asyncio.to_thread(check_ready, db=db, executor=executor)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
