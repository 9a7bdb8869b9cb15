"""Errors as RFC 9457 problem+json: the one translation of domain errors,
validation errors and HTTP errors, and how the OpenAPI schema documents them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DomainError, problem
from app.schemas.common import Problem

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


def add_problem_handlers(app: FastAPI) -> None:
    """Every error the app raises answers as problem+json."""
    handlers: list[tuple[Any, Callable[[Request, Exception], Awaitable[JSONResponse]]]] = [
        (DomainError, on_domain_error),
        (RequestValidationError, on_validation_error),
        (StarletteHTTPException, on_http_error),
        (Exception, on_unexpected_error),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
