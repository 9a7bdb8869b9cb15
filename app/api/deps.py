"""Typed dependencies; tests swap them with app.dependency_overrides."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from app.core.settings import Settings
from app.db.session import Database
from app.services.runs import ModelCache
from app.worker.executor import Executor


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


def get_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_db)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="rows to skip")]
