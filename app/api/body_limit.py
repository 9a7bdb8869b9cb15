"""The request body limit, enforced before and while the body is read."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import problem_response
from app.core.errors import TooLarge


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
