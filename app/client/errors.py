"""The client's exceptions: an answer's problem+json (RFC 9457) as typed fields."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx


class TwolayerError(Exception):
    """Every error the client raises."""


class TwolayerConnectionError(TwolayerError):
    """The server could not be reached (after the retries), or the connection broke."""


class WaitTimeoutError(TwolayerError, TimeoutError):
    """Run.wait(timeout=...) ran out before the run ended."""


class APIError(TwolayerError):
    """The server answered an error: its status and problem+json fields."""

    def __init__(
        self,
        *,
        status: int,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        errors: list[dict[str, Any]] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors
        self.body = body
        self.headers = headers or {}
        super().__init__(f"{status} {title}: {detail}" if title else f"{status}: {detail}")


class BadRequestError(APIError):
    """400: malformed JSON, or a request the server cannot read."""


class AuthenticationError(APIError):
    """401: no API key, or one that is unknown or revoked."""


class PermissionDeniedError(APIError):
    """403."""


class NotFoundError(APIError):
    """404: no such dataset or run (or not yours)."""


class ConflictError(APIError):
    """409: the run has ended, has no weights yet, or the dataset is in use."""


class PayloadTooLargeError(APIError):
    """413: the body, the upload or the owner's storage is over its limit."""


class ValidationError(APIError):
    """422: invalid input; `errors` holds each problem's loc, msg and type."""


class RateLimitError(APIError):
    """429: too many active runs (or requests); `retry_after` in seconds, if given."""

    @property
    def retry_after(self) -> float | None:
        return retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    """5xx: the server failed or is unavailable (503 while its database is)."""


BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is not honoured)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error answer (its body must have been read)."""
    status = response.status_code
    cls = BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    body = response.content
    fields: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        fields = parsed
    errors = fields.get("errors")
    return cls(
        status=status,
        type=str(fields.get("type", "about:blank")),
        title=str(fields.get("title", response.reason_phrase)),
        detail=str(fields.get("detail", body.decode("utf-8", "replace")[:500])),
        errors=errors if isinstance(errors, list) else None,
        body=body,
        headers=dict(response.headers),
    )
