"""Who is asking: the owner behind `Authorization: Bearer KEY`, or "local" when auth is off.

Verified keys are remembered for `key_cache_seconds` (by their hash, never in
clear), so a request does not hit the database to authenticate; a revoked
key stops working within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


async def owner_of(request: Request) -> str:
    """The request's owner, or Unauthorized (401). Called by the plain routes too."""
    state = request.app.state
    if state.settings.auth == "off":
        return OWNER_LOCAL
    header = request.headers.get("authorization", "")
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


async def get_owner(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    return await owner_of(request)


OwnerDep = Annotated[str, Depends(get_owner)]
