"""The ASGI application: `create_app()` wires settings, database, executor and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import app as package
from app.api import datasets, health, predict, runs
from app.api.auth import KeyCache
from app.core.errors import DomainError, TooLarge, problem
from app.core.logging import configure_logging
from app.core.settings import Settings, configure, get_settings
from app.db.session import Database
from app.schemas.common import Problem
from app.services.runs import ModelCache
from app.worker.executor import Executor, make_executor

log = logging.getLogger("twolayer.api")
PROBLEM = "application/problem+json"

DESCRIPTION = """
Trains two-layer neural networks for binary classification (written from
scratch in NumPy) and serves their predictions.

Try it in order: **POST /datasets/samples** (a generated dataset) → **POST
/runs** with its `id` → **GET /runs/{id}** until `succeeded` → **POST
/predict** with the run's `id`.
"""


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem(status, title, detail, type_=type_, errors=errors),
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status, exc.title, exc.detail, type_=exc.type, errors=exc.errors, headers=exc.headers
    )


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")).removeprefix("Value error, "),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            400,
            "Malformed JSON",
            "the request body is not valid JSON",
            type_="/problems/malformed-json",
            errors=errors,
        )
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return problem_response(
        422, "Unprocessable content", detail, type_="/problems/validation", errors=errors
    )


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem_response(
        exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return problem_response(500, "Internal server error", "an unexpected error occurred")


PROBLEM_TITLES = {
    400: "Malformed JSON or body",
    401: "No valid API key",
    404: "Not found (or another owner's)",
    409: "Conflict",
    413: "Body too large",
    422: "Invalid input",
    429: "Too many queued or running runs",
}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Every error answer is problem+json; say so, and list the ones every
    operation can give (401 when secured, 400/413/422 with a body)."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
        Problem.model_json_schema()
    )
    problem_content = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            statuses = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            if operation.get("security"):
                statuses.add(401)
            if "requestBody" in operation:
                statuses |= {400, 413, 422}
            if operation.get("parameters"):
                statuses.add(422)
            if method == "post" and path == "/runs":
                statuses.add(429)
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": PROBLEM_TITLES.get(status, "Error"),
                    "content": problem_content,
                }
    spec["components"]["schemas"].pop("HTTPValidationError", None)
    spec["components"]["schemas"].pop("ValidationError", None)
    return spec


class BodyLimit:
    """413 for a body over `max_bytes`: refused up front when Content-Length says
    so, and counted while streaming otherwise (chunked or lying bodies)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    status = 413 if declared > limit else 400
                    response = problem_response(
                        status,
                        "Content too large" if status == 413 else "Bad request",
                        f"the request body is larger than the limit of {limit} bytes"
                        if status == 413
                        else "invalid Content-Length",
                        type_="/problems/too-large" if status == 413 else "about:blank",
                    )
                    await response(scope, receive, send)
                    return
        received = 0
        exceeded = False
        answered = False

        async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
            response = problem_response(
                413,
                "Content too large",
                f"the request body is larger than the limit of {limit} bytes",
                type_="/problems/too-large",
            )
            await response(scope, receive, send)

        async def limited() -> MutableMapping[str, Any]:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise TooLarge(f"the request body is larger than the limit of {limit} bytes")
            return message

        async def guarded(message: MutableMapping[str, Any]) -> None:
            # Whatever the app answers to a body it could not finish reading
            # (FastAPI turns the error into a 400), the client gets the 413.
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await too_large(scope, receive, send)

        try:
            await self.app(scope, limited, guarded)
        except TooLarge:
            if not answered:
                await too_large(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    executor_factory: Callable[[Settings], Executor] = make_executor,
) -> FastAPI:
    settings = settings or get_settings()
    configure(settings)  # schema validators read limits through get_settings()
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db = Database(settings.database_url)
        app.state.model_cache = ModelCache(settings.model_cache_size)
        app.state.key_cache = KeyCache()
        app.state.executor = executor_factory(settings)
        app.state.executor.start()
        try:
            yield
        finally:
            app.state.executor.stop()
            app.state.db.dispose()

    app = FastAPI(
        title="twolayer",
        version=package.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    handlers: list[tuple[Any, Callable[[Request, Exception], Awaitable[JSONResponse]]]] = [
        (DomainError, on_domain_error),
        (RequestValidationError, on_validation_error),
        (StarletteHTTPException, on_http_error),
        (Exception, on_unexpected_error),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.router.routes.extend(predict.routes)  # first: routes match in order
    for router in (health.router, runs.router, datasets.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=[*app.routes, *predict.docs.routes],
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
