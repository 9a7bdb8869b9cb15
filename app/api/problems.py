"""Errors as RFC 9457 problem+json: the one translation of domain errors,
validation errors and HTTP errors into answers (app.api.openapi documents them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DatabaseUnavailable, DomainError
from app.db.session import is_unavailable
from app.schemas.common import explain_unknown_fields

log = logging.getLogger("twolayer.api")
PROBLEM = "application/problem+json"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status, exc.title, exc.detail, type_=exc.type, errors=exc.errors, headers=exc.headers
    )


def body_model(request: Request) -> type[BaseModel] | None:
    """The Pydantic model of the request body of the route that answered, if any."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(body_field, "field_info", None), "annotation", None)
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if "Expected UploadFile" in msg:  # a form field sent as text where a file belongs
        field = error.get("loc", ("", ""))[-1]
        return f"{field} must be a file, not text: with curl, -F {field}=@data.csv (mind the @)"
    return msg


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = explain_unknown_fields(body_model(request), [dict(e) for e in exc.errors()])
    errors = [
        {"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type", "")} for e in raw
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


async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 while the database cannot be reached; any other database error is a 500."""
    if not is_unavailable(exc):
        return await on_unexpected_error(request, exc)
    log.warning("database unavailable: %s", exc)
    return await on_domain_error(request, DatabaseUnavailable())


async def on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return problem_response(500, "Internal server error", "an unexpected error occurred")


PROTOCOL_PREFIX = "/v2"  # the Open Inference Protocol's routes (app.api.v2)


def speaks_protocol(path: str) -> bool:
    return path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/")


def in_request_shape(request: Request, response: JSONResponse) -> JSONResponse:
    """Under /v2 an error is the protocol's `{"error": "…"}` (same status and
    headers), not problem+json; elsewhere the response as it is."""
    path, root = request.scope.get("path", ""), request.scope.get("root_path", "")
    if not speaks_protocol(path[len(root) :] if root and path.startswith(root) else path):
        return response
    detail = json.loads(bytes(response.body)).get("detail", "")
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
    }
    return JSONResponse({"error": detail}, status_code=response.status_code, headers=headers)


def _shaped(
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]],
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        return in_request_shape(request, await handler(request, exc))

    return answer


def add_problem_handlers(app: FastAPI) -> None:
    """Every error the app raises answers as problem+json (under /v2, in the
    Open Inference Protocol's shape)."""
    handlers: list[tuple[Any, Callable[[Request, Exception], Awaitable[JSONResponse]]]] = [
        (DomainError, on_domain_error),
        (RequestValidationError, on_validation_error),
        (StarletteHTTPException, on_http_error),
        (DBAPIError, on_database_error),
        (Exception, on_unexpected_error),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, _shaped(handler))
