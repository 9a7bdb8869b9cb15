"""Domain errors raised by services, and their one translation to problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a client caused or can act on; `status` is its HTTP status."""

    status: int = 400
    title: str = "Bad request"
    type: str = "about:blank"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class NotFound(DomainError):
    status, title, type = 404, "Not found", "/problems/not-found"


class Conflict(DomainError):
    status, title, type = 409, "Conflict", "/problems/conflict"


class DatasetInUse(Conflict):
    type = "/problems/dataset-in-use"


class RunHasNoModel(Conflict):
    type = "/problems/run-has-no-model"


class RunEnded(Conflict):
    type = "/problems/run-ended"


class Unauthorized(DomainError):
    status, title, type = 401, "Unauthorized", "/problems/unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class TooManyRuns(DomainError):
    status, title, type = 429, "Too many runs", "/problems/too-many-runs"


class Invalid(DomainError):
    status, title, type = 422, "Unprocessable content", "/problems/invalid"


class TooLarge(DomainError):
    status, title, type = 413, "Content too large", "/problems/too-large"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body
