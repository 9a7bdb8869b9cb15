from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import DatabaseDep, ExecutorDep
from app.services.health import check_ready

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive (touches nothing)."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency does not answer"}})
async def ready(db: DatabaseDep, executor: ExecutorDep) -> JSONResponse:
    """200 when the database and the executor answer, else 503 naming what failed."""
    report = await asyncio.to_thread(check_ready, db=db, executor=executor)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
