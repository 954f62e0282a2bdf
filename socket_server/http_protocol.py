"""uvicorn's HTTP protocol (httptools) with a deadline and a size bound on each request.

uvicorn starts its keep-alive timer only after a response, so a connection that never
completes a request (a silent TCP connection, a half-sent WebSocket upgrade) would be
kept open forever, holding a descriptor; and a request head of any size is buffered
(the WebSocket handshake parser then gives up on a line over 8 KiB without a reply).
`GuardedHttpToolsProtocol`:

- closes the connection when a request is not complete (head, and body if it has one;
  for a WebSocket the upgrade request) `request_timeout` seconds after the connection
  opened or the request's first byte arrived;
- answers 414 to a request target over `MAX_URL_BYTES`, and 431 to a header line over
  `MAX_HEADER_BYTES`, more than `MAX_HEADERS` headers or a head over `MAX_HEAD_BYTES`,
  then closes the connection.

`guarded_http_protocol(timeout)` is the class to hand to `uvicorn.Config(http=...)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from socket_server.protocol import ErrorCode

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 8 * 1024  # one header line (the WebSocket handshake parser's limit)
MAX_HEADERS = 100
MAX_HEAD_BYTES = 16 * 1024  # the request line and every header together

REFUSALS = {
    414: "the request target is too long",
    431: "the request header fields are too large",
}


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing (uvicorn then calls
    `send_400_response`, which answers with the status noted before)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout: float = 10.0  # seconds; 0: no deadline

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its head
        self._head_bytes = 0  # bytes received since the request's first byte (in its head)
        self._header_bytes = 0  # the header lines parsed so far
        self._refusal: int | None = None  # the status a callback stopped the parser for

    # -- the deadline -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None and self.request_timeout > 0:
            self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """No complete request in time: the connection is closed (without an answer)."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    # -- uvicorn's entry point and the parser's callbacks ----------------------------------
    def data_received(self, data: bytes) -> None:
        # Bytes of a next request (or stray bytes between requests) start its deadline.
        self._arm()
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._answer(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._stop(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        line = len(name) + len(value) + 4  # "name: value\r\n"
        self._header_bytes += line
        too_many = len(self.headers) >= MAX_HEADERS
        if (
            line > MAX_HEADER_BYTES
            or too_many
            or len(self.url) + self._header_bytes > MAX_HEAD_BYTES
        ):
            self._stop(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self.parser.should_upgrade() and self._should_upgrade():
            self._disarm()  # the WebSocket protocol takes the connection over now
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _stop(self, status: int) -> None:
        self._refusal = status
        raise HeadTooLarge(REFUSALS[status])

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is also how a callback stops it."""
        if self._refusal is not None:
            self._answer(self._refusal)
        else:
            super().send_400_response(msg)

    def _answer(self, status: int) -> None:
        """A JSON error with `status`, then the connection is closed."""
        self._in_head = False
        self._disarm()
        body = msgspec.json.encode(
            {"error": {"code": ErrorCode.BAD_MESSAGE, "message": REFUSALS[status]}}
        )
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def guarded_http_protocol(request_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` class with this deadline (one class per server)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"request_timeout": request_timeout},
    )
