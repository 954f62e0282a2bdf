"""The socket's send side under the ASGI layer: one prebuilt frame written to many sockets.

Why: through ASGI each delivery to each socket is a `send` down Litestar and uvicorn (a
writer task woken per socket, a coroutine per call, an await on `writable`, websockets
framing the same text again): about 45 us of CPU per socket and message, where writing
bytes to a transport takes a few. So a message is framed once (`text_frame`: header
and payload, unmasked as a server's frames are: the bytes of websockets' `Frame.serialize`)
and the hub hands those same bytes to every socket's transport in a loop that never
yields. Everything written that way is written at once, in call order, so a socket
sees its messages in the order they were sent.

`FrameProtocol` is uvicorn's websockets-sansio protocol, so the handshake, pings, the
closing handshake and every unusual frame stay uvicorn's and websockets'; it puts
itself in the ASGI scope's extensions (`EXTENSION`), where `frame_protocol(socket)`
finds it, and adds `write_frame`. `runner.make_server` runs uvicorn with it.

What game clients send is small whole frames (a move is about 40 bytes): at a frame
boundary of websockets' parser, `data_received` queues those itself (masked,
unfragmented, text in valid UTF-8, at most 125 bytes and the size limit), as uvicorn
would, and hands the rest, from the first frame that is not one, to the parser. It
reads up to READ_AHEAD messages ahead of the app before it pauses the transport, where
uvicorn pauses and resumes it around every message.

An idle socket holds only what it needs (measured with tracemalloc): the protocol's
receive queue and `writable` event are `Inbox` and `Gate` (asyncio's Queue and Event
allocate four deques, about 3 KiB), and once the socket is accepted the handshake's
request and response (headers, about 3 KiB) are dropped, the parser included. The
protocol's attributes live in slots (1.2 KiB less than its own dict), the routes
take `LeanWebSocket`, without Litestar's two closures per socket (0.9 KiB), and the
keep-alive ping and the idle limit wait on the loop's `TimerWheel`, not on a loop
timer each (1 KiB).

Backpressure is read off the transport's write buffer: `write_frame` answers how many
of the frames written are still (partly) in it, not yet taken by the kernel.
`FrameSink` is one socket's send side on top of that, for the game sockets (hub.py)
and the lobby's alike: `send` writes a frame at once, and a socket more than
`max_send_backlog` frames behind is closed (1008), so a client that stops reading
holds a bounded buffer and nobody else waits for it. While a request is handled its
socket is corked (`cork`/`uncork`), so the request's own update and its `ack` leave in
one system call. Its `next_frame` reads the
protocol's receive queue directly (not through Litestar's wrapper) under one idle
timer per socket (`IdleWatch`), which moves only when it fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from litestar import WebSocket
from litestar.connection.websocket import DISCONNECT_MESSAGE
from litestar.datastructures import Headers
from litestar.exceptions import WebSocketDisconnect
from litestar.types import Receive, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Opcode, apply_mask
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.streams import StreamReader

from socket_server.protocol import CloseCode
from socket_server.timers import timer_wheel

log = logging.getLogger("gamesocket.ws")

EXTENSION = "gamesocket.frames"  # scope["extensions"][EXTENSION]["protocol"]
CLOSED = -1  # `write_frame`: the socket is closing or gone, nothing was written
CLOSE_TIMEOUT = 2.0  # seconds a close frame may take to get out before the drop
# Messages read ahead of the app before the socket stops reading (TCP pushes back).
READ_AHEAD = 16
# Frames kept back while a request is handled, at most (`FrameSink.cork`).
CORK_LIMIT = 64
# The first byte of an unfragmented text or binary frame.
_FIN_TEXT, _FIN_BINARY = 0x80 | Opcode.TEXT.value, 0x80 | Opcode.BINARY.value
_SMALL = 125  # the largest payload whose length fits the frame's second byte
# Frame headers by payload length: 7 bits, 16 bits, 64 bits (RFC 6455 5.2).
_TEXT_HEADER_SHORT, _TEXT_HEADER_16, _TEXT_HEADER_64 = (
    struct.Struct("!BB"),
    struct.Struct("!BBH"),
    struct.Struct("!BBQ"),
)
# The code of the parser's wait at a frame boundary (see `_at_frame_boundary`).
_AT_EOF = StreamReader.at_eof.__code__


def text_frame(data: bytes) -> bytes:
    """UTF-8 `data` as one complete, unmasked text frame (what a server sends): the bytes
    websockets' `Frame.serialize` makes, without its checks and buffer on the hot path."""
    size = len(data)
    if size < 126:
        return _TEXT_HEADER_SHORT.pack(_FIN_TEXT, size) + data
    if size < 65_536:
        return _TEXT_HEADER_16.pack(_FIN_TEXT, 126, size) + data
    return _TEXT_HEADER_64.pack(_FIN_TEXT, 127, size) + data


class FrameWriter(Protocol):
    """Where a socket's frames go (a `FrameProtocol`)."""

    def write_frame(self, frame: bytes) -> int: ...

    def frames_pending(self) -> int: ...

    def abort(self) -> None: ...

    async def receive(self) -> Any: ...  # the next ASGI receive event


# What uvicorn's protocol (0.54) sets on itself: 37 attributes, more than an instance
# dict with shared keys takes (30 in CPython 3.11), so each socket had a 1.5 KiB dict of
# its own. In slots they take 8 bytes each; one a later uvicorn adds goes to a dict
# again (a test in test_transport tells).
_UVICORN_ATTRIBUTES = (
    "config", "app", "loop", "logger", "root_path", "asgi_version", "app_state",
    "connections", "tasks", "default_headers", "transport", "server", "client", "scheme",
    "queue", "handshake_initiated", "handshake_complete", "close_sent", "disconnected",
    "close_timer", "close_timeout", "initial_response", "conn", "read_paused", "writable",
    "ping_interval", "ping_timeout", "ping_timer", "pong_timer", "pending_ping_payload",
    "ping_sent_at", "last_ping_rtt", "frames", "curr_msg_data_type", "request", "response",
    "scope",
)  # fmt: skip


class FrameProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol that also writes prebuilt frames."""

    __slots__ = (*_UVICORN_ATTRIBUTES, "inbox", "_pending", "_written", "_ping_tick")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The end offset of each written frame still in the write buffer; made on the
        # first write that leaves bytes behind (an idle socket has none).
        self._pending: deque[int] | None = None
        self._written = 0  # bytes written with `write_frame`
        self._ping_tick: int | None = None  # the next keep-alive ping's tick on the wheel
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            raise ValueError("prebuilt frames are not compressed: turn ws_per_message_deflate off")
        self.inbox = Inbox(self.loop)
        self.queue = self.inbox  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]

    # -- the keep-alive ping: uvicorn's, its timer on the loop's wheel -----------------
    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self._ping_tick = timer_wheel(self.loop).add(self.loop.time() + delay, self)

    def on_timer(self) -> None:
        self._ping_tick = None
        self.send_keepalive_ping()

    def stop_keepalive(self) -> None:
        if self._ping_tick is not None:
            timer_wheel(self.loop).discard(self._ping_tick, self)
            self._ping_tick = None
        super().stop_keepalive()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:  # the app runs: it may find this protocol
            self.scope["extensions"][EXTENSION] = {"protocol": self}

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self._forget_handshake()

    def receive(self) -> Coroutine[Any, Any, Any]:
        """uvicorn's `receive`: the next event off the queue, reading resumed once the
        queue is empty (`_drained`). The queue's own coroutine is handed back, not
        awaited in one of this method's: no frame of it waits for the socket's lifetime."""
        return self.inbox.get(self._drained)

    def _drained(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        """Small whole text or binary frames (what game clients send) go straight to
        the receive queue; anything else, from the first frame that is not one, goes
        through websockets' parser as before."""
        taken = self._take_small_frames(data) if self._at_frame_boundary() else 0
        if taken < len(data):
            super().data_received(data[taken:] if taken else data)

    def _at_frame_boundary(self) -> bool:
        """The parser waits for a new frame with nothing buffered, in an open socket
        with no fragmented message under way, which uvicorn still reads."""
        conn = self.conn
        waiting = conn.parser.gi_yieldfrom  # type: ignore[attr-defined]
        return (
            waiting is not None
            and waiting.gi_code is _AT_EOF
            and not conn.reader.buffer
            and conn.state is OPEN
            and conn.current_size is None
            and not self.close_sent
            and not self.frames
        )

    def _take_small_frames(self, data: bytes) -> int:
        """Queue the leading whole, masked, unfragmented small text or binary frames of
        `data` (text in valid UTF-8, within the size limit) as uvicorn would; how many
        bytes they took."""
        limit = min(_SMALL, self.config.ws_max_size)
        taken, end = 0, len(data)
        while end - taken >= 6:
            first, length = data[taken], data[taken + 1] ^ 0x80  # the mask bit must be set
            start = taken + 6
            if length > limit or start + length > end or first not in (_FIN_TEXT, _FIN_BINARY):
                break
            payload = apply_mask(data[start : start + length], data[taken + 2 : start])
            if first == _FIN_BINARY:
                self.inbox.put_nowait({"type": "websocket.receive", "bytes": payload})
            else:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    break  # websockets' parser closes with 1007
                self.inbox.put_nowait({"type": "websocket.receive", "text": text})
            taken = start + length
        if taken and len(self.inbox) >= READ_AHEAD and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        return taken

    def _forget_handshake(self) -> None:
        """Drop the handshake's request and response, which uvicorn keeps, and the
        parser that read the request, whose frame keeps it too: a fresh frame parser
        takes over. Only at a frame boundary: a client sends no frame before it hears
        the handshake's answer (RFC 6455 4.1), so nothing may be buffered yet."""
        del self.request, self.response
        if not self.conn.reader.buffer:
            self.conn.parser = WebSocketProtocol.parse(self.conn)
            next(self.conn.parser)

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

    def abort(self) -> None:
        """Drop the connection now, and whatever its transport still buffers."""
        self.transport.abort()

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


class Inbox:
    """What uvicorn's protocol uses of its receive `asyncio.Queue` (`put_nowait`, `get`,
    `empty`) for its one reader, without the Queue's three deques and Event."""

    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: list[Any] = []
        # Kept: Python 3.11's `get_running_loop` makes a getpid system call each time.
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, drained: Callable[[], None]) -> Any:
        """The next item; `drained` is called once it was the last one (passed per call,
        not kept: no lasting reference back to the protocol that owns this queue)."""
        while not self._items:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.pop(0)
        if not self._items:
            drained()
        return item


class Gate:
    """What uvicorn's protocol uses of its `writable` `asyncio.Event` (`set`, `clear`,
    `wait`), without the Event's deque of waiters."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> None:
        if self._open:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


class FrameSink:
    """One socket's send side: every frame is written to its transport at once.

    Nothing waits: `send` writes a prebuilt frame or, while the socket is more than
    `max_backlog` frames behind, closes it (1008) and stops its reader.
    """

    __slots__ = (
        "_closer",
        "_corked",
        "_frames",
        "_idle",
        "close_code",
        "cut_off",
        "max_backlog",
        "socket",
        "waiting_reader",
    )

    def __init__(
        self, socket: WebSocket[Any, Any, Any], frames: FrameWriter, max_backlog: int
    ) -> None:
        self.socket = socket
        self.max_backlog = max_backlog
        self._frames = frames
        self.close_code: int | None = None
        self._closer: asyncio.Task[None] | None = None
        # Set when the socket fell too far behind: the reader stops waiting for the client.
        self.cut_off = False
        # The task reading this socket, while it waits for a frame (cancelled on cut-off).
        self.waiting_reader: asyncio.Task[Any] | None = None
        self._idle: IdleWatch | None = None  # made by the first `next_frame`
        self._corked: list[bytes] | None = None  # frames kept back by `cork`

    def describe(self) -> str:
        """Who the socket is, for log lines."""
        return "socket"

    def send(self, frame: bytes) -> None:
        """Write a prebuilt frame (`text_frame`) now (once uncorked, if corked)."""
        if self.close_code is not None:
            return
        corked = self._corked
        if corked is not None:
            corked.append(frame)
            if len(corked) >= CORK_LIMIT:
                self.uncork()
            return
        if self._frames.write_frame(frame) > self.max_backlog:
            self._overflow()

    def cork(self) -> None:
        """Keep frames back until `uncork`, which writes them in one system call: a
        request's own update and its `ack` leave together. At most CORK_LIMIT wait."""
        if self._corked is None:
            self._corked = []

    def uncork(self) -> None:
        corked, self._corked = self._corked, None
        if corked:
            self.send_all(corked)

    def send_bytes(self, data: bytes) -> None:
        self.send(text_frame(data))

    def send_all(self, frames: list[bytes]) -> None:
        """Write `frames` now, in one write (one system call); for the backlog they
        count as one frame until the kernel took them all."""
        if frames:
            self.send(frames[0] if len(frames) == 1 else b"".join(frames))

    def room(self) -> int:
        """How many more frames the socket may fall behind by now."""
        return self.max_backlog - self._frames.frames_pending()

    def close(self, code: int) -> None:
        """Close after the frames already sent (the close frame follows them)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._closer = asyncio.create_task(self._close_socket())

    def _overflow(self) -> None:
        log.warning("slow consumer closed %s", self.describe())
        self.cut_off = True
        if self.waiting_reader is not None:
            self.waiting_reader.cancel()
        self.close(CloseCode.SLOW_CONSUMER)

    async def _close_socket(self) -> None:
        try:
            await asyncio.wait_for(
                self.socket.close(self.close_code or CloseCode.NORMAL), CLOSE_TIMEOUT
            )
        except TimeoutError:
            # A client that stopped reading may never let the close frame out: what its
            # transport still buffers is dropped with the connection, not kept for it.
            self._frames.abort()
        except Exception:
            log.debug("no close frame sent (the client is gone) %s", self.describe())

    async def next_frame(self, idle_seconds: float) -> str | bytes | None:
        """The client's next frame; None once it left or the socket was cut off;
        TimeoutError after `idle_seconds` without one.

        Read off the protocol's queue, not through Litestar's receive wrapper; the idle
        limit is one timer for the socket's lifetime (`IdleWatch`), not a timeout armed
        and cancelled around every wait.
        """
        idle = self._idle
        if idle is None:  # the first frame: this task reads the socket from now on
            reader = asyncio.current_task()
            assert reader is not None, "a socket is read by a task"
            idle = self._idle = IdleWatch(reader)
        reader = idle.reader
        # Awaited in place (no task per frame); a cut-off or the idle limit cancels it.
        self.waiting_reader = reader
        idle.waiting(idle_seconds)
        try:
            event: Any = await self._frames.receive()
        except asyncio.CancelledError:
            if not (self.cut_off or idle.expired):
                raise
            _uncancel(reader, int(self.cut_off) + int(idle.expired))
            if self.cut_off:
                return None
            raise TimeoutError from None
        finally:
            idle.got()
            self.waiting_reader = None
        if event["type"] == "websocket.disconnect":
            return None
        frame: str | bytes = event.get("text") or event.get("bytes") or b""
        return frame

    async def finish(self, code: int | None, wait: float) -> None:
        """Close with `code` (None: the client closed), waiting up to `wait` seconds for
        the close frame, then `stop`."""
        if code is not None:
            self.close(code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_written(), wait)
        await self.stop()

    async def stop(self) -> None:
        """Cancel the closing and the idle timer (the socket is gone or closing)."""
        if self._idle is not None:
            self._idle.stop()
        await cancel_task(self._closer)

    async def wait_written(self) -> None:
        """Wait until the close frame was sent (or could not be)."""
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer


class IdleWatch:
    """The idle limit of one socket's reader: one timer (on the loop's `TimerWheel`) for
    the socket's lifetime, moved only when it fires.

    The reader calls `waiting(seconds)` before each wait for a frame and `got()` once
    it has one; after `seconds` in one wait the reader is cancelled and `expired` set.
    A timer that fires early (the reader was busy, or began its wait after the timer
    was set) is set again for the current wait's deadline.
    """

    __slots__ = ("_loop", "_seconds", "_since", "_tick", "_waiting", "_wheel", "expired", "reader")

    def __init__(self, reader: asyncio.Task[Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self._wheel = timer_wheel(self._loop)
        self.reader = reader
        self._seconds = 0.0
        self._since = 0.0
        self._waiting = False
        self.expired = False
        self._tick: int | None = None  # the wheel's tick of the timer, None: not set

    def waiting(self, seconds: float) -> None:
        self._since = self._loop.time()
        self._seconds = seconds
        self._waiting = True
        self.expired = False
        if self._tick is None:
            self._tick = self._wheel.add(self._since + seconds, self)

    def got(self) -> None:
        self._waiting = False

    def on_timer(self) -> None:
        self._tick = None
        if self.reader.done():  # the socket was never stopped: let the timer go
            return
        now = self._loop.time()
        if self._waiting and now >= self._since + self._seconds:
            self.expired = True
            self.reader.cancel()
            return
        start = self._since if self._waiting else now
        self._tick = self._wheel.add(start + self._seconds, self)

    def stop(self) -> None:
        if self._tick is not None:
            self._wheel.discard(self._tick, self)
            self._tick = None


def _uncancel(reader: asyncio.Task[Any], ours: int) -> None:
    """Take back the `ours` cancellations of `reader` made here; one made elsewhere as
    well (a shutdown) goes on."""
    for _ in range(ours):
        reader.uncancel()
    if reader.cancelling():
        raise asyncio.CancelledError


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` if it still runs, and wait for it to end."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class LeanWebSocket(WebSocket[Any, Any, Any]):
    """Litestar's `WebSocket` without its wrappers of `receive` and `send`: two closures
    per socket, kept for its lifetime (about 0.9 KiB with their cells), that track the
    connection's state for `receive_*` and `iter_*`. The game and lobby sockets read
    their frames off the transport (`FrameSink.next_frame`), so only the handshake and
    the close go through ASGI: `accept` checks the handshake itself."""

    __slots__ = ()

    def receive_wrapper(self, receive: Receive) -> Receive:
        return receive

    def send_wrapper(self, send: Send) -> Send:
        return send

    async def accept(
        self,
        subprotocols: str | None = None,
        headers: Headers | dict[str, Any] | list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Accept the socket (no subprotocol or headers are ever chosen here); a client
        that left during the handshake raises `WebSocketDisconnect`, as Litestar's does."""
        if subprotocols is not None or headers:
            raise ValueError("the server's sockets take no subprotocol or extra headers")
        if (await self.receive())["type"] != "websocket.connect":
            raise WebSocketDisconnect(detail=DISCONNECT_MESSAGE)
        await self.send({"type": "websocket.accept", "subprotocol": None, "headers": []})


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
