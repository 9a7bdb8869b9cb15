"""Slow clients: the header timeout, in the HTTP protocol itself.

uvicorn has no header-read timeout: a client that sends one byte a second
holds a connection forever. `header_timeout_protocol` is uvicorn's httptools
protocol with one: a request's headers must be complete within `seconds` of
its first byte (for a connection's first request, of the connection itself),
or the connection is answered 408 and closed. The body's own timeout is
`BodyLimit`'s (app/api/body_limit.py), in the app.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BODY = b'{"type":"/problems/request-timeout","title":"Request timeout","status":408,'


def _answer(seconds: float) -> bytes:
    detail = f'"detail":"the request headers took longer than {seconds:g} s"}}'.encode()
    body = _BODY + detail
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header timeout of `header_timeout` seconds."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a kept-alive connection: from its first byte

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_answer(self.header_timeout))
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn's `http=`, with a header timeout of `seconds`."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})
