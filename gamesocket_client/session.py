"""One game over a WebSocket that survives drops: resume with `since`, resend by `id`.

The rules a bot can rely on:

- `snapshot` and `version` are always the latest the server has told this session.
- `updates()` yields every change in version order, each once: an `Update` per version,
  or a `SnapshotEvent` where the server sent a whole `state` instead.
- After a drop with a close code worth retrying (`RETRY_CLOSE_CODES`, or no close at
  all) the session reconnects with `since=<version>`, with backoff, up to
  `Reconnect.attempts` failed attempts in a row. 4401/4403/4404 end it with an error.
- Every request carries an `id`; requests not yet answered are sent again with the
  same `id` after a reconnect, and the server applies each `id` at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gamesocket_client.errors import (
    CLOSED,
    CONNECTION_FAILED,
    CONNECTION_LOST,
    PROTOCOL_ERROR,
    RETRY_CLOSE_CODES,
    GameSocketError,
    close_error,
)
from gamesocket_client.messages import (
    Ack,
    Change,
    ErrorReply,
    Hello,
    Pong,
    Presence,
    ServerEvent,
    ServerMessage,
    Snapshot,
    SnapshotEvent,
    Update,
    parse_message,
)

log = logging.getLogger("gamesocket_client")

T = TypeVar("T")
ABNORMAL_CLOSURE = 1006
SLOW_DOWN_CLOSE = 4429
SLOW_DOWN_DELAY = 2.0  # the least wait after a flood close: reconnecting at once floods again


@dataclass(frozen=True)
class Reconnect:
    """How hard a session tries to come back after a drop.

    `attempts` failed attempts in a row end the session with `connection_lost` (0: never
    reconnect). The wait before attempt n is `initial_delay * factor**n`, capped at
    `max_delay`, times a random 0.5..1 so that many bots do not return in lockstep.
    """

    attempts: int = 8
    initial_delay: float = 0.25
    max_delay: float = 8.0
    factor: float = 2.0

    def delay(self, attempt: int, close_code: int | None = None) -> float:
        wait = min(self.max_delay, self.initial_delay * self.factor**attempt)
        if close_code == SLOW_DOWN_CLOSE:
            wait = max(wait, SLOW_DOWN_DELAY)
        return wait * random.uniform(0.5, 1.0)


@dataclass
class _Request:
    message: dict[str, Any]
    future: asyncio.Future[int]


@dataclass
class _Ping:
    sent_at: float
    future: asyncio.Future[float] | None  # None: a keep-alive nobody waits for


class _End:
    """Marks the end of a stream in a subscriber's queue."""


_END = _End()


class _Fanout(Generic[T]):
    """Copies each item to every current subscriber; late subscribers see only later ones."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[T | _End]] = set()
        self._ended = False

    def subscribe(self) -> asyncio.Queue[T | _End]:
        queue: asyncio.Queue[T | _End] = asyncio.Queue()
        if self._ended:
            queue.put_nowait(_END)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[T | _End]) -> None:
        self._queues.discard(queue)

    def publish(self, item: T | _End) -> None:
        for queue in self._queues:
            queue.put_nowait(item)

    def end(self) -> None:
        self._ended = True
        self.publish(_END)

    async def drain(
        self, queue: asyncio.Queue[T | _End], failure: Callable[[], GameSocketError | None]
    ) -> AsyncIterator[T]:
        """The items of a subscriber's queue until the end; then `failure()`, if any."""
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                error = failure()
                if error is not None:
                    raise error
                return
            yield item


def ws_base_url(base_url: str) -> str:
    """`http(s)://host[/prefix]` (or `ws(s)://...`) as the `ws(s)://` base of the sockets."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _encode(message: dict[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class GameSession:
    """A socket on one game: the latest snapshot, its changes, and requests that resend.

    `async with GameSession(url, "tictactoe", game_id, token=t) as session:` connects
    (waits for `hello` and the first snapshot) and closes on exit. `on_event` is called
    on the reader for every `ServerEvent` (presence, thinking, chat, other notices,
    errors that answer no request); keep it quick, or use `events()` instead.
    """

    def __init__(
        self,
        base_url: str,
        game_type: str,
        game_id: str,
        *,
        token: str | None = None,
        reconnect: Reconnect | None = None,
        on_event: Callable[[ServerEvent], None] | None = None,
        keepalive: float | None = 20.0,
        open_timeout: float = 10.0,
        max_size: int = 2**24,
    ) -> None:
        self.game_type = game_type
        self.game_id = game_id
        self.token = token
        self.hello: Hello | None = None
        self.presence: Presence | None = None
        self.reconnects = 0  # connections re-established after a drop
        self.last_close_code: int | None = None  # of the latest drop (1006: no close frame)
        self._base = ws_base_url(base_url)
        self._policy = reconnect or Reconnect()
        self._on_event = on_event
        self._keepalive = keepalive
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._snapshot: Snapshot | None = None
        self._connection: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, _Request] = {}
        self._held: list[tuple[int, asyncio.Future[int]]] = []  # acked, update not yet in
        self._pings: deque[_Ping] = deque()
        self._updates: _Fanout[Change] = _Fanout()
        self._events: _Fanout[ServerEvent] = _Fanout()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(6)
        self._runner: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: GameSocketError | None = None
        self._sync_wanted = False
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            Hello: self._on_hello,
            Snapshot: self._on_state,
            Update: self._on_update,
            Ack: self._on_ack,
            ErrorReply: self._on_error,
            Pong: self._on_pong,
        }

    # -- state ---------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (available once `connect()` has returned)."""
        if self._snapshot is None:
            raise RuntimeError("the session is not connected yet")
        return self._snapshot

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def user_id(self) -> str | None:
        return self.hello.you.user_id if self.hello is not None else None

    @property
    def my_seats(self) -> list[str]:
        """The seats this session's user holds in the latest snapshot."""
        return self.snapshot.seats_of(self.user_id)

    @property
    def my_turn(self) -> bool:
        snapshot = self.snapshot
        return snapshot.status == "active" and snapshot.turn in self.my_seats

    @property
    def connected(self) -> bool:
        """Whether a socket is up now (False while reconnecting and once closed)."""
        return self._connection is not None

    @property
    def closed(self) -> bool:
        return self._runner is not None and self._runner.done()

    @property
    def failure(self) -> GameSocketError | None:
        """Why the session ended, if the server or the network ended it."""
        return self._failure

    # -- life cycle ----------------------------------------------------------------------
    async def __aenter__(self) -> GameSession:
        return await self.connect()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> GameSession:
        """Open the socket; return once `hello` and the first snapshot have arrived.

        The first connection is not retried: a wrong URL or a refused token should fail
        at once, not after a minute of backoff.
        """
        if self._runner is not None:
            raise RuntimeError("connect() was already called")
        connection = await self._open(since=None)
        try:
            await asyncio.wait_for(self._first_snapshot(connection), self._open_timeout)
        except TimeoutError:
            await connection.close()
            raise GameSocketError(CONNECTION_FAILED, "no snapshot after hello") from None
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._runner = asyncio.create_task(self._run(connection))
        if self._keepalive:
            self._keeper = asyncio.create_task(self._keep_alive(self._keepalive))
        return self

    async def close(self) -> None:
        """Close the socket; unanswered requests fail with `closed`, streams end."""
        if self._runner is None or self._runner.done():
            return
        self._closing = True
        if self._keeper is not None:
            self._keeper.cancel()
        if self._connection is not None:
            await self._connection.close()
        self._runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._runner

    async def wait_closed(self) -> None:
        """Until the session has ended (see `failure` for why)."""
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._runner)

    # -- requests ------------------------------------------------------------------------
    async def join(self, seat: str | None = None, *, id: str | None = None) -> int:
        """Take `seat` (the first free one if None); the version of the ack."""
        return await self.request("join", id=id, seat=seat)

    async def move(
        self, move: str | int, *, version: int | None = None, id: str | None = None
    ) -> int:
        """Play `move` for the caller's seat; with `version`, only at that version."""
        return await self.request("move", id=id, move=move, version=version)

    async def ai_move(self, level: int | None = None, *, id: str | None = None) -> int:
        """Let the server's AI play the caller's seat once; answers after its move."""
        return await self.request("ai_move", id=id, level=level)

    async def resign(self, *, id: str | None = None) -> int:
        return await self.request("resign", id=id)

    async def draw(self, action: str, *, id: str | None = None) -> int:
        """`offer`, `accept` or `decline` a draw."""
        return await self.request("draw", id=id, action=action)

    async def abort(self, *, id: str | None = None) -> int:
        """Abort a game before its first move (a server extension)."""
        return await self.request("abort", id=id)

    async def claim_victory(self, *, id: str | None = None) -> int:
        return await self.request("claim_victory", id=id)

    async def chat(self, text: str, room: str | None = None, *, id: str | None = None) -> int:
        return await self.request("chat", id=id, text=text, room=room)

    async def request(self, kind: str, *, id: str | None = None, **fields: Any) -> int:
        """Send a `kind` message with an `id`; the version its `ack` carries.

        Raises `GameSocketError` for the server's `error` with that `ref`, or when the
        session ends first. Until answered it is resent, same `id`, after each
        reconnect. Cancelling the wait stops the resending (it may have landed already).
        """
        self._check_open()
        request_id = id if id is not None else f"{self._id_prefix}-{next(self._ids)}"
        if request_id in self._pending:
            raise ValueError(f"a request with id {request_id!r} is already waiting")
        message = {"type": kind, "id": request_id, **_without_none(fields)}
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with self._send_lock:  # never interleaved with a resend after a reconnect
            self._pending[request_id] = _Request(message, future)
            await self._send_now(message)
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def sync(self, *, full: bool = False) -> None:
        """Ask for what was missed since `version` (with `full`, a whole `state`).

        Whatever it brings arrives through `updates()` like any change.
        """
        self._check_open()
        message = {"type": "sync"} if full else {"type": "sync", "since": self.version}
        async with self._send_lock:
            await self._send_now(message)

    async def ping(self) -> float:
        """Round trip to the server in seconds (a `ping` answered by `pong`)."""
        self._check_open()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._send_ping(future)
        return await future

    # -- streams -------------------------------------------------------------------------
    async def updates(self, *, start: bool = True) -> AsyncIterator[Change]:
        """Every change from now on, in version order; first the current snapshot.

        With `start` the stream begins with a `SnapshotEvent(reason="start")` of the
        snapshot it starts from. The stream ends when the session is closed, or raises
        the `GameSocketError` that ended the session.
        """
        queue = self._updates.subscribe()
        try:
            if start and self._snapshot is not None:
                yield SnapshotEvent(snapshot=self._snapshot, reason="start")
            async for item in self._updates.drain(queue, lambda: self._failure):
                yield item
        finally:
            self._updates.unsubscribe(queue)

    async def events(self) -> AsyncIterator[ServerEvent]:
        """Presence, thinking, chat, unmatched errors and other notices, from now on."""
        queue = self._events.subscribe()
        try:
            async for event in self._events.drain(queue, lambda: self._failure):
                yield event
        finally:
            self._events.unsubscribe(queue)

    # -- connecting ----------------------------------------------------------------------
    def _url(self, since: int | None) -> str:
        query = urlencode(_without_none({"token": self.token, "since": since}))
        path = f"{self._base}/ws/{self.game_type}/{self.game_id}"
        return f"{path}?{query}" if query else path

    async def _open(self, since: int | None) -> ClientConnection:
        """A new socket whose `hello` has arrived; close codes raise as `close_error`."""
        try:
            connection = await websockets.connect(
                self._url(since), open_timeout=self._open_timeout, max_size=self._max_size
            )
        except (OSError, InvalidHandshake, TimeoutError) as error:
            raise GameSocketError(CONNECTION_FAILED, f"cannot connect: {error!r}") from error
        try:
            hello = await asyncio.wait_for(self._receive(connection), self._open_timeout)
        except TimeoutError:
            await connection.close()
            raise GameSocketError(CONNECTION_FAILED, "no hello from the server") from None
        except BaseException:
            await connection.close()
            raise
        if not isinstance(hello, Hello):
            await connection.close()
            raise GameSocketError(PROTOCOL_ERROR, f"expected hello, got {hello!r}")
        self.hello = hello
        return connection

    async def _first_snapshot(self, connection: ClientConnection) -> None:
        while self._snapshot is None:
            self._dispatch(await self._receive(connection))

    async def _receive(self, connection: ClientConnection) -> ServerMessage:
        """The next message; a closed socket raises `close_error` with its close code."""
        try:
            frame = await connection.recv()
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else ABNORMAL_CLOSURE
            reason = closed.rcvd.reason if closed.rcvd is not None else ""
            raise close_error(code, reason) from None
        try:
            return parse_message(frame)
        except msgspec.DecodeError as error:
            raise GameSocketError(PROTOCOL_ERROR, f"unreadable frame: {error}") from None

    async def _run(self, connection: ClientConnection) -> None:
        """The reader: dispatch messages; after a drop, reconnect or end the session."""
        try:
            while True:
                close_code = await self._read(connection)
                if self._closing:
                    return
                connection = await self._recover(close_code)
        except GameSocketError as error:
            self._failure = error
        except Exception as error:  # a bug here must still settle every waiting caller
            log.exception("the session's reader failed")
            self._failure = GameSocketError(PROTOCOL_ERROR, f"the reader failed: {error!r}")
        finally:
            self._connection = None
            self._finish()

    async def _read(self, connection: ClientConnection) -> int | None:
        """Dispatch messages until the socket closes; its close code."""
        while True:
            try:
                message = await self._receive(connection)
            except GameSocketError as error:
                if error.code == PROTOCOL_ERROR:
                    log.warning("%s", error.message)
                    continue
                return error.close_code
            self._dispatch(message)
            if self._sync_wanted:
                self._sync_wanted = False
                await self.sync()

    async def _recover(self, close_code: int | None) -> ClientConnection:
        """A resumed connection after a drop, or the error that ends the session."""
        self._connection = None
        self.last_close_code = close_code
        if close_code not in RETRY_CLOSE_CODES:
            raise close_error(close_code)
        for attempt in range(self._policy.attempts):
            await asyncio.sleep(self._policy.delay(attempt, close_code))
            try:
                connection = await self._open(since=self.version)
            except GameSocketError as error:
                if error.close_code is not None and error.close_code not in RETRY_CLOSE_CODES:
                    raise
                close_code = error.close_code or close_code
                log.info("reconnect attempt %d failed: %s", attempt + 1, error.message)
                continue
            await self._resume(connection)
            return connection
        raise GameSocketError(
            CONNECTION_LOST,
            f"gave up after {self._policy.attempts} reconnect attempts",
            close_code=close_code,
        )

    async def _resume(self, connection: ClientConnection) -> None:
        """Make `connection` current and resend, same ids, all that is unanswered."""
        async with self._send_lock:
            self._connection = connection
            self.reconnects += 1
            for request in list(self._pending.values()):
                await self._send_on(connection, request.message)
            now = time.monotonic()
            for ping in self._pings:  # their pongs were lost with the old socket
                ping.sent_at = now
                await self._send_on(connection, {"type": "ping"})

    async def _keep_alive(self, interval: float) -> None:
        """A `ping` every `interval` s: the server closes silent sockets (4408)."""
        while True:
            await asyncio.sleep(interval)
            await self._send_ping(None)

    # -- sending -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._runner is None:
            raise RuntimeError("the session is not connected: call connect() first")
        if self._runner.done():
            raise self._failure or GameSocketError(CLOSED, "the session is closed")

    async def _send_now(self, message: dict[str, Any]) -> None:
        """Send on the current socket, if any (the caller holds the send lock).

        With no socket, or a dying one, the message waits: a pending request is resent
        on the next connection, and other messages are not worth keeping.
        """
        if self._connection is not None:
            await self._send_on(self._connection, message)

    async def _send_on(self, connection: ClientConnection, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(_encode(message))

    async def _send_ping(self, future: asyncio.Future[float] | None) -> None:
        # Pongs carry no ref: they answer pings in order, so both go under the lock.
        async with self._send_lock:
            self._pings.append(_Ping(time.monotonic(), future))
            await self._send_now({"type": "ping"})

    # -- receiving -----------------------------------------------------------------------
    def _dispatch(self, message: ServerMessage) -> None:
        handler = self._handlers.get(type(message), self._emit)
        handler(message)

    def _on_hello(self, hello: Hello) -> None:
        self.hello = hello

    def _on_state(self, snapshot: Snapshot) -> None:
        current = self._snapshot
        if current is not None and snapshot.version == current.version:
            self._snapshot = snapshot  # nothing changed in between: no stream item
            return
        self._advance(snapshot, SnapshotEvent(snapshot=snapshot, reason="state"))

    def _on_update(self, update: Update) -> None:
        current = self._snapshot
        if current is None or update.version == current.version + 1:
            self._advance(update.snapshot, update)
        elif update.version > current.version + 1:
            # Ahead of a version never seen: ask for the gap, which resends this one too.
            log.warning("update %d after %d: asking for the gap", update.version, current.version)
            self._sync_wanted = True
        # Older or equal: already seen (a resume may repeat the newest one): dropped.

    def _advance(self, snapshot: Snapshot, change: Change) -> None:
        self._snapshot = snapshot
        self._updates.publish(change)
        still_held = []
        for version, future in self._held:
            if version > snapshot.version:
                still_held.append((version, future))
            elif not future.done():
                future.set_result(version)
        self._held = still_held

    def _on_ack(self, ack: Ack) -> None:
        request = self._pending.pop(ack.ref, None)
        if request is None or request.future.done():
            return  # a late duplicate, or a wait that was given up
        if self._snapshot is not None and ack.version > self._snapshot.version:
            # Answer once the snapshot shows it: after `await move()`, `snapshot` has it.
            self._held.append((ack.version, request.future))
        else:
            request.future.set_result(ack.version)

    def _on_error(self, error: ErrorReply) -> None:
        request = self._pending.pop(error.ref, None) if error.ref is not None else None
        if request is None:
            self._emit(error)
        elif not request.future.done():
            failure = GameSocketError(error.code, error.message, ref=error.ref)
            request.future.set_exception(failure)

    def _on_pong(self, pong: Pong) -> None:
        if not self._pings:
            return
        ping = self._pings.popleft()
        if ping.future is not None and not ping.future.done():
            ping.future.set_result(time.monotonic() - ping.sent_at)

    def _emit(self, event: ServerEvent) -> None:
        if isinstance(event, Presence):
            self.presence = event
        self._events.publish(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("the on_event callback failed")

    def _finish(self) -> None:
        """The session is over: settle every wait and end every stream."""
        error = self._failure or GameSocketError(CLOSED, "the session is closed")
        for request in self._pending.values():
            if not request.future.done():
                request.future.set_exception(error)
        self._pending.clear()
        for version, future in self._held:  # acknowledged: they did succeed
            if not future.done():
                future.set_result(version)
        self._held.clear()
        for ping in self._pings:
            if ping.future is not None and not ping.future.done():
                ping.future.set_exception(error)
        self._pings.clear()
        if self._keeper is not None:
            self._keeper.cancel()
        self._updates.end()
        self._events.end()
