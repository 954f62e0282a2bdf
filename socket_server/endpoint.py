"""One socket's session: admission, `hello` and `state`, the receive loop, dispatch.

No game logic: every request is handed to the service (or the AI turns) through a
dispatch table from message type to handler, and answered with `ack` or `error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from litestar import WebSocket

from socket_server import protocol
from socket_server.auth import AuthError
from socket_server.changes import Refused
from socket_server.hub import Connection
from socket_server.limits import TokenBucket
from socket_server.protocol import (
    AiMove,
    Chat,
    ClaimVictory,
    ClientMessage,
    CloseCode,
    Draw,
    ErrorCode,
    Join,
    Move,
    Mute,
    Ping,
    ProtocolError,
    Resign,
    Sync,
    You,
)
from socket_server.snapshot import with_clock_now
from socket_server.store.base import Actor, GameRecord, may_see
from socket_server.transport import frame_protocol, text_frame

if TYPE_CHECKING:
    from socket_server.context import ServerContext

log = logging.getLogger("gamesocket.ws")

CLOSE_WAIT = 5.0  # seconds a closing socket may take to send its close frame
MAX_SINCE_DIGITS = 18  # a `since` with more digits (or any other text) is ignored


class NotAdmitted(Exception):
    """The socket may not watch this game: it is closed with `code`."""

    def __init__(self, code: CloseCode) -> None:
        super().__init__(code.name)
        self.code = code


def origin_allowed(socket: WebSocket[Any, Any, Any], allowed: tuple[str, ...]) -> bool:
    """A browser's socket (it sends `Origin`) from a page the server allows.

    With no list every socket is let in; with one, a socket without `Origin` (a bot,
    not a browser) still is, and so is the server's own page (same host).
    """
    origin = _header(socket, b"origin")
    if not allowed or "*" in allowed or origin is None:
        return True
    origin = origin.rstrip("/").lower()
    if origin in (entry.rstrip("/").lower() for entry in allowed):
        return True
    host = (_header(socket, b"host") or "").lower()
    return bool(host) and origin.partition("://")[2] == host


def _header(socket: WebSocket[Any, Any, Any], name: bytes) -> str | None:
    """A request header, read off the scope (`socket.headers` would keep a parsed copy
    of them all for the socket's lifetime)."""
    for key, value in socket.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


# A state-changing request: (endpoint, connection, message, when its frame arrived in
# epoch ms) -> the version it reached.
Handler = Callable[["GameEndpoint", Connection, Any, int], Awaitable[int]]


class Arrival(NamedTuple):
    """When a frame arrived: for latency (perf counter) and for clocks (epoch ms)."""

    perf: float
    epoch_ms: int


class GameEndpoint:
    """The sockets of one game type: `/ws/{game_type}/{game_id}`."""

    def __init__(self, context: ServerContext, game_type: str) -> None:
        self.context = context
        self.game_type = game_type
        self._requests: set[asyncio.Task[None]] = set()  # running `ai_move` requests

    async def handle(self, socket: WebSocket[Any, Any, Any], game_id: str) -> None:
        """One socket from its handshake to its close: admission, `hello` and `state`,
        then the receive loop, awaited here (not a level further down: each coroutine
        that waits while the socket is open keeps its frame, a few hundred bytes)."""
        await socket.accept()
        connection = await self._open(socket, game_id)
        if connection is None:
            return
        code: int | None = None
        try:
            await self._greet(socket, connection)
            code = await self._receive_loop(connection)
        except Exception:
            log.exception(
                "socket failed game=%s user=%s", connection.game_id, connection.actor.user_id
            )
            code = CloseCode.INTERNAL_ERROR
        finally:
            await self._close(connection, code)

    async def _open(self, socket: WebSocket[Any, Any, Any], game_id: str) -> Connection | None:
        """The admitted socket's connection, attached to the hub; None (the socket
        closed) when it may not watch the game or admission failed."""
        try:
            actor, record = await self._admit(socket, game_id)
        except NotAdmitted as refusal:
            await socket.close(refusal.code)
            return None
        except Exception:
            log.exception("socket admission failed game=%s", game_id)
            await socket.close(CloseCode.INTERNAL_ERROR)
            return None
        settings = self.context.settings
        connection = Connection(
            socket,
            game_id,
            self.game_type,
            actor,
            settings.max_send_backlog,
            self.context.hub.fill_gap,
            frame_protocol(socket),
        )
        await self.context.hub.attach(connection, record.seats)
        del record  # the game as read on admission: not kept for the socket's lifetime
        socket.scope["headers"] = []  # read for admission only: not kept either
        return connection

    async def _admit(
        self, socket: WebSocket[Any, Any, Any], game_id: str
    ) -> tuple[Actor, GameRecord]:
        """Who the caller is, and the game; `NotAdmitted` if they may not watch it."""
        if not origin_allowed(socket, self.context.settings.cors_origins):
            raise NotAdmitted(CloseCode.FORBIDDEN)
        token = socket.query_params.get("token")
        actor = Actor.ANONYMOUS
        if token:
            try:
                actor = await self.context.auth.verify(token)
            except AuthError:
                raise NotAdmitted(CloseCode.UNAUTHORIZED) from None
        try:
            record, _ = await self.context.service.load(game_id, fresh=True)
        except Refused:
            raise NotAdmitted(CloseCode.NOT_FOUND) from None
        if record.game_type != self.game_type:
            raise NotAdmitted(CloseCode.NOT_FOUND)
        if not may_see(record, actor):
            anonymous = actor.user_id is None
            raise NotAdmitted(CloseCode.UNAUTHORIZED if anonymous else CloseCode.FORBIDDEN)
        return actor, record

    async def _greet(self, socket: WebSocket[Any, Any, Any], connection: Connection) -> None:
        """`hello`, then the `state` (or the updates after the client's `since`)."""
        seats = self.context.hub.seats_of(connection)
        role: Literal["player", "spectator"] = "player" if seats else "spectator"
        user_id = connection.actor.user_id
        log.debug("socket open game=%s user=%s role=%s", connection.game_id, user_id, role)
        you = You(user_id=user_id, seat=seats[0] if seats else None, role=role)
        hello = text_frame(protocol.hello(connection.game_id, you))
        await self._sync(connection, _since(socket.query_params.get("since")), hello)

    async def _close(self, connection: Connection, code: int | None) -> None:
        await connection.finish(code, CLOSE_WAIT)
        await self.context.hub.detach(connection)
        log.debug(
            "socket closed game=%s user=%s code=%s",
            connection.game_id,
            connection.actor.user_id,
            connection.close_code or "client",
        )

    async def _sync(self, connection: Connection, since: int | None, *first: bytes) -> None:
        """Bring the client to the current version: missed updates, or one `state`,
        written after the frames `first` (`hello`) in one write.

        The updates only while they are few enough to replay (`max_replay_updates`) and
        fewer than the socket may fall behind by (`max_send_backlog`): a client further
        behind gets the `state` (which PROTOCOL.md allows), so it can always resume.
        """
        frames = list(first)
        record, state = await self.context.service.load(connection.game_id, fresh=True)
        current = record.version
        missed = await self._missed(connection, since, current)
        if missed is not None:
            frames.extend(missed)
        elif since != current:
            service = self.context.service
            snapshot = with_clock_now(await service.built_snapshot(record, state), record)
            personal = service.personal(snapshot, record, connection.actor)
            frames.append(text_frame(protocol.state(personal)))
        connection.send_all(frames)
        connection.start_updates(current)

    async def _missed(
        self, connection: Connection, since: int | None, current: int
    ) -> list[bytes] | None:
        """The update frames after `since` up to `current`, if they may be replayed."""
        if since is None or since >= current or not self._replayable(connection, current - since):
            return None
        missed = await self.context.hub.updates_between(connection.game_id, since, current)
        return [frame for _, frame in missed] if len(missed) == current - since else None

    def _replayable(self, connection: Connection, gap: int) -> bool:
        """A gap of `gap` versions may be sent update by update to this socket."""
        return gap <= self.context.settings.max_replay_updates and gap < connection.room()

    async def _receive_loop(self, connection: Connection) -> int | None:
        """Read client messages until the client leaves (None) or a close code is due."""
        settings = self.context.settings
        bucket = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        refused = 0  # messages refused in a row by the rate limit
        while not connection.cut_off:
            try:
                frame = await connection.next_frame(settings.idle_timeout_seconds)
            except TimeoutError:
                return CloseCode.IDLE
            if frame is None:
                return None if not connection.cut_off else connection.close_code
            received_at = Arrival(time.perf_counter(), int(time.time() * 1000))
            if _size(frame) > settings.max_message_bytes:
                return CloseCode.MESSAGE_TOO_BIG
            if not bucket.take():
                refused += 1
                if refused > settings.rate_limit_burst:
                    return CloseCode.FLOOD
                self._refuse(connection, ErrorCode.RATE_LIMITED, "too many messages: slow down")
                continue
            refused = 0
            await self._dispatch(connection, frame, received_at)
        return connection.close_code

    def _refuse(
        self, connection: Connection, code: ErrorCode, message: str, ref: str | None = None
    ) -> None:
        """Answer a message with an error: logged, and counted by code."""
        log.info(
            "refused game=%s user=%s code=%s message=%s",
            connection.game_id,
            connection.actor.user_id,
            code,
            message,
        )
        self.context.metrics.rejected.labels(code).inc()
        connection.send_bytes(protocol.error(code, message, ref))

    async def _dispatch(
        self, connection: Connection, frame: str | bytes, received_at: Arrival
    ) -> None:
        try:
            message = protocol.decode_client_message(frame)
        except ProtocolError as error:
            self._refuse(connection, error.code, error.message, error.ref)
            return
        if isinstance(message, Ping):
            connection.send_bytes(protocol.PONG)
        elif isinstance(message, Sync):
            await self._sync(connection, message.since)
        elif isinstance(message, AiMove):
            # The search may take a while: the socket keeps reading meanwhile.
            task = asyncio.create_task(self._run(connection, message, received_at))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        else:
            # The request's own update and its ack (or error) go out in one write.
            connection.cork()
            try:
                await self._run(connection, message, received_at)
            finally:
                connection.uncork()

    async def _run(
        self, connection: Connection, message: ClientMessage, received_at: Arrival
    ) -> None:
        """One state-changing request through its handler; `ack` or `error`."""
        handler = HANDLERS[type(message)]
        try:
            version = await handler(self, connection, message, received_at.epoch_ms)
        except Refused as refusal:
            self._refuse(connection, refusal.code, refusal.message, message.id)
            return
        except Exception:
            log.exception(
                "request failed game=%s user=%s", connection.game_id, connection.actor.user_id
            )
            self._refuse(connection, ErrorCode.INTERNAL, "internal error", message.id)
            return
        if isinstance(message, Move):
            # A move's latency is taken once the service has stored and published it.
            self.context.metrics.move_latency.observe(time.perf_counter() - received_at.perf)
        if message.id is not None:
            connection.send_bytes(protocol.ack(message.id, version))

    # -- the handlers -------------------------------------------------------------------
    def _move(
        self, connection: Connection, message: Move, arrived_ms: int
    ) -> Coroutine[Any, Any, int]:
        return self.context.service.move(
            connection.actor,
            connection.game_id,
            message.move,
            at_ms=arrived_ms,
            version=message.version,
            request_id=message.id,
        )

    async def _join(self, connection: Connection, message: Join, _arrived_ms: int) -> int:
        service = self.context.service
        return await service.join(connection.actor, connection.game_id, message.seat, message.id)

    async def _resign(self, connection: Connection, message: Resign, _arrived_ms: int) -> int:
        return await self.context.service.resign(connection.actor, connection.game_id, message.id)

    async def _draw(self, connection: Connection, message: Draw, _arrived_ms: int) -> int:
        service = self.context.service
        return await service.draw(connection.actor, connection.game_id, message.action, message.id)

    async def _abort(
        self, connection: Connection, message: protocol.Abort, _arrived_ms: int
    ) -> int:
        return await self.context.service.abort(connection.actor, connection.game_id, message.id)

    async def _claim_victory(
        self, connection: Connection, message: ClaimVictory, _arrived_ms: int
    ) -> int:
        service = self.context.service
        return await service.claim_victory(connection.actor, connection.game_id, message.id)

    async def _ai_move(self, connection: Connection, message: AiMove, _arrived_ms: int) -> int:
        ai_turns = self.context.ai_turns
        return await ai_turns.ai_move(
            connection.actor, connection.game_id, message.level, message.id
        )

    async def _chat(self, connection: Connection, message: Chat, _arrived_ms: int) -> int:
        chat = self.context.chat
        return await chat.post(
            connection.actor, connection.game_id, message.text, message.room, message.id
        )

    async def _rematch(
        self, connection: Connection, message: protocol.Rematch, _arrived_ms: int
    ) -> int:
        """Extension: as POST /api/games/{id}/rematch; the old game's version."""
        await self.context.rematches.ask(connection.actor, connection.game_id)
        record, _ = await self.context.service.load(connection.game_id)
        return record.version

    async def _mute(self, connection: Connection, message: Mute, _arrived_ms: int) -> int:
        """Extension: this socket stops (or resumes) getting `user_id`'s chat."""
        connection.mute(message.user_id, message.muted)
        record, _ = await self.context.service.load(connection.game_id)
        return record.version


HANDLERS: dict[type[ClientMessage], Handler] = {
    ClaimVictory: GameEndpoint._claim_victory,
    Move: GameEndpoint._move,
    Join: GameEndpoint._join,
    Resign: GameEndpoint._resign,
    Draw: GameEndpoint._draw,
    protocol.Abort: GameEndpoint._abort,
    AiMove: GameEndpoint._ai_move,
    Chat: GameEndpoint._chat,
    Mute: GameEndpoint._mute,
    protocol.Rematch: GameEndpoint._rematch,
}


def _since(raw: str | None) -> int | None:
    """The `since` query parameter: ASCII digits (at most 18), else as if absent."""
    text = (raw or "").strip()
    if not text or len(text) > MAX_SINCE_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _size(frame: str | bytes) -> int:
    """The frame's payload in bytes (UTF-8), without encoding an ASCII text again."""
    if isinstance(frame, bytes):
        return len(frame)
    return len(frame) if frame.isascii() else len(frame.encode())
