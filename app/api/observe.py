"""Every request observed: its id, its metrics, its line in the access log.

`Observe` wraps the whole application, outside even Starlette's error
middleware, so that every answer carries `X-Request-ID`: the routes', the
problem+json errors', an unhandled error's 500, and the 401 and 413 that
AuthGate and BodyLimit send before the app is reached. The id is the
client's own `X-Request-ID` when it is a sane token (1–128 visible ASCII
characters), else a new one (uuid4, hex); it is in the context of everything
the request runs (app.core.logging.REQUEST_ID), so each log line written for
it carries it.

Requests are counted by the matched route's path template (`/runs/{run_id}`),
never by the raw path, whose ids would make the series unbounded; a path no
route matches is `unmatched`. Nothing of the headers is logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import REQUEST_ID
from app.core.metrics import HTTP_REQUESTS, HTTP_SECONDS, METHODS

log = logging.getLogger("twolayer.access")
HEADER = "x-request-id"
SANE = re.compile(r"[\x21-\x7e]{1,128}")
UNMATCHED = "unmatched"


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if SANE.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (or would have: a request
    answered before routing, a 401, is matched here), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    partial = None  # the path matches, the method does not (405)
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = candidate.matches(scope)
        if match == Match.FULL or (match == Match.PARTIAL and partial is None):
            found = getattr(candidate, "path_format", None) or getattr(candidate, "path", "")
            if match == Match.FULL:
                return str(found) or UNMATCHED
            partial = str(found) or None
    return partial or UNMATCHED


class Observe:
    def __init__(self, app: ASGIApp, *, metrics: bool) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = REQUEST_ID.set(rid)
        began = time.perf_counter()
        status = 500  # if nothing is sent: the client is gone, or the app broke

        async def identified(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, identified)
        finally:
            self.observe(scope, status, time.perf_counter() - began)
            REQUEST_ID.reset(token)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = route_template(scope)
        if self.metrics:
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route, method).observe(seconds)
        extra: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": scope.get("path", ""),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        log.info("%s %s %d %.1f ms", method, extra["path"], status, seconds * 1000, extra=extra)
