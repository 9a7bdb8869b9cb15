"""Who is asking: the owner behind `Authorization: Bearer KEY`, or "local" when auth is off.

`AuthGate` decides it for every request before any byte of the body is read
(an unauthenticated 60 MiB body is refused at its headers); the routes read
the owner it found (`owner_of`). `/health`, `/ready`, the docs pages, the
OpenAPI document, the dashboard's page shells and their assets (`OPEN_PATHS`,
`OPEN_PREFIXES`) need no key.

Verified keys are remembered for `key_cache_seconds` (by their hash, never in
clear), so a request does not hit the database to authenticate; a revoked
key stops working within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import in_request_shape, on_database_error, on_domain_error
from app.core.errors import Unauthorized
from app.db.models import OWNER_LOCAL
from app.services.keys import authenticate

bearer = HTTPBearer(auto_error=False, description="an API key from `twolayer keys create`")


class KeyCache:
    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, float]] = {}

    def get(self, digest: str) -> str | None:
        found = self._owners.get(digest)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, digest: str, owner: str, ttl: float) -> None:
        if len(self._owners) > 10_000:
            self._owners.clear()
        self._owners[digest] = (owner, time.monotonic() + ttl)


# The dashboard's page shells (/ui, app.api.ui) hold no owner data: a browser's
# navigation cannot send the key, so the pages' scripts send it with each call.
OPEN_PATHS = frozenset(
    {"/", "/health", "/ready", "/docs", "/redoc", "/openapi.json", "/ui"}
    | {"/v2/health/live", "/v2/health/ready"}  # probes, as /health and /ready
)
OPEN_PREFIXES = ("/static/", "/ui/")
_OWNER = "owner"  # where AuthGate leaves the owner, in the request's state


async def authenticate_headers(state: Any, headers: Headers) -> str:
    """The owner of the key in `headers`, or Unauthorized (401)."""
    if state.settings.auth == "off":
        return OWNER_LOCAL
    header = headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("an API key is required: Authorization: Bearer KEY")
    digest = hashlib.sha256(key.encode()).hexdigest()
    cache: KeyCache = state.key_cache
    owner = cache.get(digest)
    if owner is None:
        owner = await asyncio.to_thread(authenticate, db=state.db, key=key)
        if owner is None:
            raise Unauthorized("the API key is not valid, or was revoked")
        cache.put(digest, owner, state.settings.key_cache_seconds)
    return owner


class AuthGate:
    """Authenticates every request but the open ones from its headers alone,
    before the app (and so before anything reads the body): a request without a
    valid key is answered 401 with its body never read."""

    def __init__(self, app: ASGIApp, also_open: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.open_paths = OPEN_PATHS | also_open  # /metrics with TWOLAYER_METRICS_AUTH=off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            owner = await authenticate_headers(scope["app"].state, Headers(scope=scope))
        except Unauthorized as exc:
            request = Request(scope)
            response = in_request_shape(request, await on_domain_error(request, exc))
            await response(scope, receive, send)
            return
        except DBAPIError as exc:  # outside the app: its handlers cannot answer this
            request = Request(scope)
            response = in_request_shape(request, await on_database_error(request, exc))
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[_OWNER] = owner
        await self.app(scope, receive, send)


async def owner_of(request: Request) -> str:
    """The request's owner, as AuthGate found it (or Unauthorized, 401, when the
    app runs without the gate). Called by the plain routes too."""
    owner: str | None = request.scope.get("state", {}).get(_OWNER)
    if owner is not None:
        return owner
    return await authenticate_headers(request.app.state, request.headers)


async def get_owner(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    return await owner_of(request)


OwnerDep = Annotated[str, Depends(get_owner)]
