"""`GameSocketFactory`: mounts a game's WebSocket route and registers the game type.

A user adds a game by writing a `GameState` subclass (and optionally an `Agent`) and
calling `GameSocketFactory().create_socket(app, agent_class, state_schema, prefix)`
on an app made by `create_app`. The built-in games are mounted the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from litestar import Litestar, WebSocket, websocket
from litestar.params import FromPath

from agents import get_agent
from agents.base import Agent
from games import ChessState, Connect4State, GameState, TicTacToeState, register_game
from socket_server.auth import AuthError
from socket_server.hub import Connection
from socket_server.protocol import (
    PONG,
    PROTOCOL_VERSION,
    AiMove,
    Draw,
    Join,
    Move,
    Ping,
    ProtocolError,
    Resign,
    Sync,
    ack_message,
    decode_client_message,
    encode,
    error_message,
)
from socket_server.service import DEFAULT_AI_MOVE_LEVEL, ServiceError
from socket_server.snapshot import build_snapshot
from socket_server.store.base import Actor, GameRecord, Seat, may_see

if TYPE_CHECKING:
    from socket_server.context import ServerContext

log = logging.getLogger("gamesocket.ws")

# Builds the agent for one level (an `Agent` subclass is such a callable).
AgentClass = Callable[[int], Agent]

CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_FLOOD = 4429
CLOSE_WAIT = 5.0  # seconds a closing socket may take to flush its queue


class TokenBucket:
    """`rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class GameSocketServer:
    """One game type's sockets: connections per game, agents per game, broadcast."""

    def __init__(
        self,
        context: ServerContext,
        state_schema: type[GameState],
        agent_class: AgentClass | None,
        route_prefix: str,
    ) -> None:
        self.context = context
        self.state_schema = state_schema
        self.game_type = state_schema.game_type
        self.agent_class = agent_class
        self.route_prefix = route_prefix.rstrip("/")
        self.agents: dict[str, dict[int, Agent]] = {}  # game_id -> level -> agent
        self._requests: set[asyncio.Task[None]] = set()  # running `ai_move` requests

    # -- the seed's surface ---------------------------------------------------------
    @property
    def active_connections(self) -> dict[str, set[Connection]]:
        """This process's open sockets per game of this type."""
        return {
            game_id: set(channel.connections)
            for game_id, channel in self.context.hub.channels.items()
            if channel.game_type == self.game_type
        }

    @property
    def connection_games(self) -> dict[Connection, str]:
        return {
            connection: game_id
            for game_id, connections in self.active_connections.items()
            for connection in connections
        }

    async def register_connection(
        self, connection: Connection, seats: dict[str, Seat] | None = None
    ) -> None:
        """Start delivering the game's messages to `connection` (seats: as just read)."""
        if seats is None:
            seats = (await self.context.service.load(connection.game_id))[0].seats
        await self.context.hub.attach(connection, seats)

    async def unregister_connection(self, connection: Connection) -> None:
        await self.context.hub.detach(connection)

    async def broadcast_to_thread(self, game_id: str, message: Mapping[str, Any] | bytes) -> None:
        """Send one message to every socket of the game on every process (encoded once)."""
        data = message if isinstance(message, bytes) else encode(dict(message))
        await self.context.broker.publish(game_id, data)

    def get_or_create_agent(
        self, game_id: str, config_overrides: Mapping[str, Any] | None = None
    ) -> Agent:
        if self.agent_class is None:
            raise ServiceError("bad_message", f"{self.game_type} has no AI")
        level = int((config_overrides or {}).get("level", DEFAULT_AI_MOVE_LEVEL))
        per_level = self.agents.setdefault(game_id, {})
        agent = per_level.get(level)
        if agent is None:
            agent = per_level[level] = self.agent_class(level)
        return agent

    def cleanup(self, game_id: str | None = None) -> None:
        """Forget the agents of one game (it ended) or of every game."""
        if game_id is None:
            self.agents.clear()
        else:
            self.agents.pop(game_id, None)

    def _agent_for(self, game_id: str, level: int) -> Agent:
        return self.get_or_create_agent(game_id, {"level": level})

    # -- the socket -----------------------------------------------------------------
    async def handle(self, socket: WebSocket[Any, Any, Any], game_id: str) -> None:
        context = self.context
        await socket.accept()
        try:
            actor, admitted = await self._admit(socket, game_id)
        except Exception:
            log.exception("socket admission failed game=%s", game_id)
            admitted = CLOSE_INTERNAL
        if isinstance(admitted, int):
            await socket.close(admitted)
            return
        settings = context.settings
        connection = Connection(
            socket,
            game_id,
            self.game_type,
            actor,
            settings.max_send_backlog,
            context.hub.updates_between,
        )
        await self.register_connection(connection, admitted.seats)
        del admitted  # the game as read on admission: not kept for the socket's lifetime
        seats = context.hub.seats_of(connection)
        role = "player" if seats else "spectator"
        log.info("socket open game=%s user=%s role=%s", game_id, actor.user_id, role)
        code: int | None = None
        try:
            connection.start()
            you = {"user_id": actor.user_id, "seat": seats[0] if seats else None, "role": role}
            connection.send_bytes(
                encode(
                    {"type": "hello", "protocol": PROTOCOL_VERSION, "game_id": game_id, "you": you}
                )
            )
            await self._sync(connection, _since(socket.query_params.get("since")))
            code = await self._receive_loop(socket, connection)
        except Exception:
            log.exception("socket failed game=%s user=%s", game_id, actor.user_id)
            code = CLOSE_INTERNAL
        finally:
            if code is not None:
                connection.close(code)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(connection.wait_written(), CLOSE_WAIT)
            await connection.stop()
            await self.unregister_connection(connection)
            log.info(
                "socket closed game=%s user=%s code=%s",
                game_id,
                actor.user_id,
                connection.close_code or "client",
            )

    async def _admit(
        self, socket: WebSocket[Any, Any, Any], game_id: str
    ) -> tuple[Actor, GameRecord | int]:
        """Who the caller is, and the game, or the close code if they may not watch it."""
        token = socket.query_params.get("token")
        actor = Actor.ANONYMOUS
        if token:
            try:
                actor = await self.context.auth.verify(token)
            except AuthError:
                return actor, CLOSE_UNAUTHORIZED
        try:
            record, _ = await self.context.service.load(game_id, fresh=True)
        except ServiceError:
            return actor, CLOSE_NOT_FOUND
        if record.game_type != self.game_type:
            return actor, CLOSE_NOT_FOUND
        if not may_see(record, actor):
            return actor, CLOSE_UNAUTHORIZED if actor.user_id is None else CLOSE_FORBIDDEN
        return actor, record

    async def _sync(self, connection: Connection, since: int | None) -> None:
        """Bring the client to the current version: missed updates, or one `state`."""
        record, state = await self.context.service.load(connection.game_id, fresh=True)
        current = record.version
        if since is not None and since < current:
            missed = await self.context.hub.updates_between(connection.game_id, since, current)
            if len(missed) == current - since:
                for _, text in missed:
                    connection.send(text)
                connection.start_updates(current)
                return
        if since != current:
            connection.send_bytes(encode({"type": "state", **build_snapshot(record, state)}))
        connection.start_updates(current)

    async def _receive_loop(
        self, socket: WebSocket[Any, Any, Any], connection: Connection
    ) -> int | None:
        """Read client messages until the client leaves (None) or a close code is due."""
        settings = self.context.settings
        bucket = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        refused = 0  # messages refused in a row by the rate limit
        reader = asyncio.current_task()
        while True:
            if connection.cut_off:
                return connection.close_code
            # Awaited in place (no task per frame); a cut-off cancels this wait.
            connection.waiting_reader = reader
            try:
                async with asyncio.timeout(settings.idle_timeout_seconds):
                    event = await socket.receive()
            except TimeoutError:
                return CLOSE_IDLE
            except asyncio.CancelledError:
                if not connection.cut_off or reader is None:
                    raise
                reader.uncancel()
                return connection.close_code
            finally:
                connection.waiting_reader = None
            received_at = time.perf_counter()
            if event["type"] == "websocket.disconnect":
                return None
            received: Any = event
            frame: str | bytes = received.get("text") or received.get("bytes") or b""
            size = len(frame.encode()) if isinstance(frame, str) else len(frame)
            if size > settings.max_message_bytes:
                return CLOSE_TOO_BIG
            if not bucket.take():
                refused += 1
                if refused > settings.rate_limit_burst:
                    return CLOSE_FLOOD
                self._refuse(connection, "rate_limited", "too many messages: slow down", None)
                continue
            refused = 0
            await self._dispatch(connection, frame, received_at)

    def _refuse(self, connection: Connection, code: str, message: str, ref: str | None) -> None:
        """Answer a message with an error: logged, and counted by code."""
        log.info(
            "refused game=%s user=%s code=%s message=%s",
            connection.game_id,
            connection.actor.user_id,
            code,
            message,
        )
        self.context.metrics.rejected.labels(code).inc()
        connection.send_bytes(error_message(code, message, ref))

    async def _dispatch(
        self, connection: Connection, frame: str | bytes, received_at: float
    ) -> None:
        try:
            message = decode_client_message(frame)
        except ProtocolError as error:
            self._refuse(connection, error.code, error.message, error.ref)
            return
        if isinstance(message, Ping):
            connection.send_bytes(PONG)
            return
        if isinstance(message, Sync):
            await self._sync(connection, message.since)
            return
        if isinstance(message, AiMove):
            # The search may take a while: the socket keeps reading meanwhile.
            task = asyncio.create_task(self._run(connection, message, received_at))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            return
        await self._run(connection, message, received_at)

    async def _run(self, connection: Connection, message: Any, received_at: float) -> None:
        """One state-changing request through the service; `ack` or `error`.

        A move's latency is taken once the service has stored and published it.
        """
        service = self.context.service
        actor, game_id, ref = connection.actor, connection.game_id, message.id
        try:
            if isinstance(message, Move):
                version = await service.move(
                    actor, game_id, message.move, version=message.version, request_id=ref
                )
                self.context.metrics.move_latency.observe(time.perf_counter() - received_at)
            elif isinstance(message, Join):
                version = await service.join(actor, game_id, message.seat, ref)
            elif isinstance(message, Resign):
                version = await service.resign(actor, game_id, ref)
            elif isinstance(message, Draw):
                version = await service.draw(actor, game_id, message.action, ref)
            elif isinstance(message, AiMove):
                version = await service.ai_move(actor, game_id, message.level, ref)
            else:
                version = await service.abort(actor, game_id, ref)
        except ServiceError as error:
            self._refuse(connection, error.code, error.message, ref)
            return
        except Exception:
            log.exception("request failed game=%s user=%s", game_id, actor.user_id)
            self._refuse(connection, "internal", "internal error", ref)
            return
        if ref is not None:
            connection.send_bytes(ack_message(ref, version))


def _since(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


class GameSocketFactory:
    """Mounts games on an app made by `create_app` (which holds the server context)."""

    def create_socket(
        self,
        app: Litestar,
        agent_class: AgentClass | None,
        state_schema: type[GameState],
        route_prefix: str,
    ) -> GameSocketServer:
        context: ServerContext = app.state["gamesocket"]
        register_game(state_schema)
        server = GameSocketServer(context, state_schema, agent_class, route_prefix)
        context.service.register_game_type(
            state_schema,
            server._agent_for if agent_class is not None else None,
            server.cleanup,
        )
        context.game_servers[server.game_type] = server

        @websocket(f"{server.route_prefix}/{{game_id:str}}", name=f"ws-{server.game_type}")
        async def game_socket(socket: WebSocket[Any, Any, Any], game_id: FromPath[str]) -> None:
            await server.handle(socket, game_id)

        app.register(game_socket)
        return server

    def create_chess_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, _builtin_agent("chess"), ChessState, "/ws/chess")

    def create_connect4_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, _builtin_agent("connect4"), Connect4State, "/ws/connect4")

    def create_tic_tac_toe_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, _builtin_agent("tictactoe"), TicTacToeState, "/ws/tictactoe")


def _builtin_agent(game_type: str) -> AgentClass:
    def make(level: int) -> Agent:
        return get_agent(game_type, level)

    return make
