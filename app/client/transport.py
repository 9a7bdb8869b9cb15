"""HTTP with retries: which failures are sent again, how long to wait, and when
an answer becomes an exception (docs/design.md, "The Python client")."""

from __future__ import annotations

import time
from typing import Any

import httpx2 as httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.client.errors import TwolayerConnectionError, error_for, retry_after

# sent again whatever the method: refused before anything was done
NOT_PROCESSED_STATUSES = frozenset({429})
# sent again only when sending twice is harmless: the server may have acted
# (a 503 while the database is away can come after a commit whose answer was lost)
REPEATABLE_STATUSES = frozenset({500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that change nothing (a prediction) or give the same answer when sent
# again (a sample dataset's id is derived from its parameters)
REPEATABLE_POSTS = frozenset({"/predict", "/datasets/samples"})
MAX_RETRY_AFTER_SECONDS = 60.0
backoff = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def pause(seconds: float) -> None:
    """Every wait between two tries (tests replace it to stay fast)."""
    time.sleep(seconds)


def repeatable(method: str, path: str = "") -> bool:
    """Whether sending the request twice does no harm."""
    return method in IDEMPOTENT or (method == "POST" and path in REPEATABLE_POSTS)


def should_retry_status(method: str, status: int, path: str = "") -> bool:
    return status in NOT_PROCESSED_STATUSES or (
        repeatable(method, path) and status in REPEATABLE_STATUSES
    )


def should_retry_error(method: str, exc: BaseException, path: str = "") -> bool:
    """A connection that never opened was certainly not processed; any other
    transport failure (a read error, a timeout) only for a repeatable request."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return repeatable(method, path) and isinstance(exc, httpx.TransportError)


def wait_seconds(state: RetryCallState) -> float:
    """Retry-After when the answer gives it (capped), else exponential backoff."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        response: httpx.Response = outcome.result()
        after = retry_after(response.headers.get("retry-after"))
        if after is not None:
            return min(after, MAX_RETRY_AFTER_SECONDS)
    return float(backoff(state))


class Transport:
    """An httpx2 client that retries and raises the client's exceptions."""

    def __init__(self, http: httpx.Client, *, max_retries: int) -> None:
        self.http = http
        self.max_retries = max_retries

    def retrying(self, method: str, path: str = "") -> Retrying:
        def last(state: RetryCallState) -> Any:
            assert state.outcome is not None
            return state.outcome.result()  # the last answer, or its exception raised

        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_seconds,
            retry=retry_if_exception(lambda e: should_retry_error(method, e, path))
            | retry_if_result(lambda r: should_retry_status(method, r.status_code, path)),
            sleep=lambda seconds: pause(seconds),
            retry_error_callback=last,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The answer (2xx or 3xx), after the retries; an error answer raised as APIError."""

        def send() -> httpx.Response:
            return self.http.request(method, url, **kwargs)

        try:
            response: httpx.Response = self.retrying(method.upper(), url.split("?")[0])(send)
        except httpx.TransportError as exc:
            raise TwolayerConnectionError(
                f"{method} {self.http.base_url.join(url)}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise error_for(response)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.request(method, url, **kwargs).json()
