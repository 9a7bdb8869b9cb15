"""The request body's limits, enforced before and while it is read: its size (a
file upload's own, larger), and how long it may pause."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import in_request_shape, problem_response
from app.core.errors import DomainError, RequestTimeout, TooLarge

UPLOAD_ENVELOPE_BYTES = 1024 * 1024


class BodyLimit:
    """413 for a body over `max_bytes`: refused up front when Content-Length says
    so, and counted while streaming otherwise (chunked or lying bodies). 408 (and
    the connection closed) for a body that pauses longer than `idle_seconds`
    between two pieces; once the body is complete, nothing is timed (a stream's
    wait for the client to disconnect is not a body)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        idle_seconds: float = 30.0,
        uploads: tuple[frozenset[str], int] = (frozenset(), 0),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        # file uploads' paths have their own limit: the file's, plus the
        # multipart envelope and the form's other fields (UPLOAD_ENVELOPE_BYTES)
        self.upload_paths, self.upload_bytes = uploads[0], uploads[1] + UPLOAD_ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.max_bytes
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
                    response = in_request_shape(Request(scope), response)
                    await response(scope, receive, send)
                    return
        received = 0
        complete = False
        refused: DomainError | None = None
        answered = False

        async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
            assert refused is not None
            response = problem_response(
                refused.status,
                refused.title,
                refused.detail,
                type_=refused.type,
                headers=refused.headers,
            )
            await in_request_shape(Request(scope), response)(scope, receive, send)

        async def limited() -> MutableMapping[str, Any]:
            nonlocal received, complete, refused
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                refused = RequestTimeout(
                    f"the request body paused for longer than {self.idle_seconds:g} s"
                )
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    refused = TooLarge(
                        f"the request body is larger than the limit of {limit} bytes"
                    )
                    raise refused
            else:
                complete = True
            return message

        async def guarded(message: MutableMapping[str, Any]) -> None:
            # Whatever the app answers to a body it could not finish reading
            # (FastAPI turns the error into a 400), the client gets the 413 or 408.
            nonlocal answered
            if refused is None:
                await send(message)
            elif not answered:
                answered = True
                await refuse(scope, receive, send)

        try:
            await self.app(scope, limited, guarded)
        except (TooLarge, RequestTimeout):
            if not answered:
                answered = True
                await refuse(scope, receive, send)
