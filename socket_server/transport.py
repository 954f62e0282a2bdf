"""The socket's send side under the ASGI layer: one prebuilt frame written to many sockets.

Why: through ASGI each delivery to each socket is a `send` down Litestar and uvicorn (a
writer task woken per socket, a coroutine per call, an await on `writable`, websockets
framing the same text again): about 45 us of CPU per socket and message, where writing
bytes to a transport takes a few. So a message is framed once (`text_frame`: header
and payload, unmasked as a server's frames are, by websockets' own `Frame.serialize`)
and the hub hands those same bytes to every socket's transport in a loop that never
yields. Everything written that way is written at once, in call order, so a socket
sees its messages in the order they were sent.

`FrameProtocol` is uvicorn's websockets-sansio protocol, so the handshake, the receive
side, pings and the closing handshake stay uvicorn's and Litestar's; it only puts
itself in the ASGI scope's extensions (`EXTENSION`), where `frame_protocol(socket)`
finds it, and adds `write_frame`. `runner.make_server` runs uvicorn with it.

Backpressure is read off the transport's write buffer: `write_frame` answers how many
of the frames written are still (partly) in it, not yet taken by the kernel. The hub
closes a socket more than `max_send_backlog` frames behind (1008), so a client that
stops reading holds a bounded buffer and nobody else waits for it.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from litestar import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

EXTENSION = "gamesocket.frames"  # scope["extensions"][EXTENSION]["protocol"]
CLOSED = -1  # `write_frame`: the socket is closing or gone, nothing was written


def text_frame(data: bytes) -> bytes:
    """UTF-8 `data` as one complete, unmasked text frame (what a server sends)."""
    return Frame(Opcode.TEXT, data).serialize(mask=False)


class FrameWriter(Protocol):
    """Where a socket's frames go (a `FrameProtocol`)."""

    def write_frame(self, frame: bytes) -> int: ...

    def frames_pending(self) -> int: ...


class FrameProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol that also writes prebuilt frames."""

    # The end offset of each written frame still in the write buffer; made on the
    # first write that leaves bytes behind (an idle socket has none).
    _pending: deque[int] | None = None
    _written = 0  # bytes written with `write_frame`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            raise ValueError("prebuilt frames are not compressed: turn ws_per_message_deflate off")

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:  # the app runs: it may find this protocol
            self.scope["extensions"][EXTENSION] = {"protocol": self}

    def write_frame(self, frame: bytes) -> int:
        """Write `frame` now: the frames written but not yet taken by the kernel, or
        `CLOSED`. Call it only once the app accepted the socket."""
        transport = self.transport
        if self.close_sent or transport.is_closing():
            return CLOSED
        transport.write(frame)
        self._written += len(frame)
        if self._pending is None:
            if not transport.get_write_buffer_size():
                return 0  # the kernel took it all: the usual case
            self._pending = deque()
        self._pending.append(self._written)
        return self.frames_pending()

    def frames_pending(self) -> int:
        """How many written frames the kernel has not fully taken yet."""
        pending = self._pending
        if pending is None:
            return 0
        sent = self._written - self.transport.get_write_buffer_size()
        while pending and pending[0] <= sent:
            pending.popleft()
        if not pending:
            self._pending = None
            return 0
        return len(pending)


def frame_protocol(socket: WebSocket[Any, Any, Any]) -> FrameProtocol:
    """The socket's `FrameProtocol`; RuntimeError if the server runs another."""
    found: Any = (socket.scope.get("extensions") or {}).get(EXTENSION)
    if found is None:
        raise RuntimeError(
            "gamesocket writes frames itself: run the app with socket_server.runner"
            " (uvicorn with ws=socket_server.transport.FrameProtocol)"
        )
    protocol: FrameProtocol = found["protocol"]
    return protocol
