"""The ASGI application: `create_app()` wires settings, database, executor and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

import app as package
from app.api import (
    batches,
    datasets,
    docs,
    exports,
    health,
    metrics,
    predict,
    predict_files,
    registry,
    reruns,
    runs,
    sweeps,
    ui,
    v2,
)
from app.api.auth import AuthGate, KeyCache
from app.api.body_limit import BodyLimit
from app.api.observe import Observe
from app.api.openapi import build_openapi, operation_id
from app.api.problems import add_problem_handlers
from app.core.logging import configure_logging
from app.core.settings import Settings, configure, get_settings
from app.db.session import connect
from app.services.model_cache import ModelCache
from app.services.sweep_driver import SweepDriver
from app.worker.executor import Executor, make_executor

DESCRIPTION = """
Trains two-layer neural networks for binary classification (written from
scratch in NumPy) and serves their predictions.

**The tour**: press *Execute* on each of these in turn, their examples as
they stand: **POST /datasets/samples** (a generated dataset) → **POST
/runs** (a run named `moons-tour` on it) → **GET /runs** (`name`
`moons-tour`) until its status is `succeeded`, about a second → **POST
/predict** (`run_name` `moons-tour`). Then follow a run live with **GET
/runs/{run_id}/events**, or download its model file.

**The dashboard**: [/ui](/ui) lists your runs with their curves, starts new
ones and compares them, in this browser.
"""


def create_app(
    settings: Settings | None = None,
    *,
    executor_factory: Callable[[Settings], Executor] = make_executor,
) -> FastAPI:
    settings = settings or get_settings()
    configure(settings)  # schema validators read limits through get_settings()
    configure_logging(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A lifespan stops what it started, never what app.state holds by then: a
        # second lifespan of the app (schemathesis starts its own beside a
        # TestClient's) replaces app.state's, and the first database was never
        # disposed (its pooled psycopg connections were collected while open).
        # The stack ends them in reverse: driver, executor, database.
        with ExitStack() as started:
            db = connect(settings, name="twolayer-api")
            started.callback(db.dispose)
            app.state.settings, app.state.db = settings, db
            cache = ModelCache(settings.model_cache_size, settings.model_cache_bytes)
            app.state.model_cache, app.state.key_cache = cache, KeyCache()
            app.state.executor = executor = executor_factory(settings)
            executor.start(db)
            started.callback(executor.stop)
            driver = SweepDriver(db=db, settings=settings, executor=executor)
            driver.start()
            started.callback(driver.stop)
            yield

    app = FastAPI(
        title="twolayer",
        version=package.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package's own assets (app.api.docs)
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    add_problem_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        idle_seconds=settings.body_timeout_seconds,
        uploads=(datasets.UPLOAD_PATHS | predict_files.UPLOAD_PATHS, settings.max_upload_bytes),
    )
    # outermost of these: no body is read before the key is checked
    open_metrics = settings.metrics_enabled and settings.metrics_auth == "off"
    app.add_middleware(AuthGate, also_open=frozenset({metrics.PATH} if open_metrics else ()))
    # first: routes match in order (served by plain routes, documented by the routers)
    app.router.routes.extend([*predict.routes, *v2.routes, *datasets.routes])
    routers = (
        *(health.router, runs.router, batches.router, datasets.router, predict_files.router),
        *(registry.router, reruns.router, exports.router, v2.router, sweeps.router),
        *(docs.router, ui.router, ui.root_router),
    )
    for router in routers:
        app.include_router(router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    app.mount("/static", docs.static_files(), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = [*app.routes, *predict.docs.routes, *v2.docs.routes]
            app.openapi_schema = build_openapi(app, settings, routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # around everything, Starlette's error middleware included: every answer has its id
    build = app.build_middleware_stack

    def observed() -> ASGIApp:
        return Observe(build(), metrics=settings.metrics_enabled)

    app.build_middleware_stack = observed  # type: ignore[method-assign]
    return app
