"""Typed dependencies; tests swap them with app.dependency_overrides.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in its
thread pool, a thread hop per dependency on every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from app.core.settings import Settings
from app.db.session import Database
from app.services.model_cache import ModelCache
from app.worker.executor import Executor


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


async def get_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


@dataclass(frozen=True)
class Predictor:
    """What prediction needs, in one dependency (each one costs on the hot path)."""

    db: Database
    cache: ModelCache


def get_predictor(request: Request) -> Predictor:
    """Called directly by the /predict routes, not through Depends: resolving a
    dependency is measurable on that path."""
    return Predictor(db=request.app.state.db, cache=request.app.state.model_cache)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_db)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="rows to skip")]
