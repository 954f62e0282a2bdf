"""`GameSocketFactory`: mounts a game's WebSocket route and registers the game type.

A user adds a game by writing a `GameState` subclass (and optionally an `Agent`) and
calling `GameSocketFactory().create_socket(app, agent_class, state_schema, prefix)`
on an app made by `create_app`. The built-in games are mounted the same way. Each
call returns a `GameSocketServer`: the seed's surface, thin, over the server's rooms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Litestar, WebSocket, websocket
from litestar.params import FromPath

from agents import ChessAgent, Connect4Agent, TicTacToeAgent
from agents.base import Agent
from games import ChessState, Connect4State, GameState, TicTacToeState
from socket_server import protocol
from socket_server.changes import DEFAULT_AI_LEVEL
from socket_server.context import ServerContext
from socket_server.endpoint import GameEndpoint
from socket_server.hub import Connection
from socket_server.registry import AgentBuilder
from socket_server.store.base import Seat
from socket_server.transport import LeanWebSocket


class GameSocketServer:
    """One game type's sockets: connections per game, agents per game, broadcast."""

    def __init__(
        self,
        context: ServerContext,
        state_schema: type[GameState],
        agent_class: AgentBuilder | None,
        route_prefix: str,
    ) -> None:
        self.context = context
        self.state_schema = state_schema
        self.game_type = state_schema.game_type
        self.agent_class = agent_class
        self.route_prefix = route_prefix.rstrip("/")
        self.endpoint = GameEndpoint(context, self.game_type)

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

    @property
    def agents(self) -> dict[str, dict[int, Agent]]:
        """game_id -> level -> agent, for this type's games that have agents now."""
        agents = self.context.ai_turns.agents
        return {game_id: agents[game_id] for game_id in list(agents) if self._is_mine(game_id)}

    def _is_mine(self, game_id: str) -> bool:
        cached = self.context.service.cached(game_id)
        return cached is not None and cached[0].game_type == self.game_type

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
        data = message if isinstance(message, bytes) else protocol.encode(dict(message))
        await self.context.broker.publish(game_id, data)

    def get_or_create_agent(
        self, game_id: str, config_overrides: Mapping[str, Any] | None = None
    ) -> Agent:
        level = int((config_overrides or {}).get("level", DEFAULT_AI_LEVEL))
        return self.context.ai_turns.agent_for(game_id, self.game_type, level)

    def cleanup(self, game_id: str | None = None) -> None:
        """Forget the agents of one game, or of every game of this type."""
        if game_id is not None:
            self.context.ai_turns.release(game_id)
            return
        for mine in list(self.agents):
            self.context.ai_turns.release(mine)


class GameSocketFactory:
    """Mounts games on an app made by `create_app` (which holds the server context)."""

    def create_socket(
        self,
        app: Litestar,
        agent_class: AgentBuilder | None,
        state_schema: type[GameState],
        route_prefix: str,
    ) -> GameSocketServer:
        context: ServerContext = app.state["gamesocket"]
        context.game_types.register(state_schema, agent_class)
        server = GameSocketServer(context, state_schema, agent_class, route_prefix)
        endpoint = server.endpoint

        @websocket(
            f"{server.route_prefix}/{{game_id:str}}",
            name=f"ws-{server.game_type}",
            websocket_class=LeanWebSocket,
        )
        async def game_socket(socket: WebSocket[Any, Any, Any], game_id: FromPath[str]) -> None:
            await endpoint.handle(socket, game_id)

        app.register(game_socket)
        return server

    def create_chess_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, ChessAgent, ChessState, "/ws/chess")

    def create_connect4_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, Connect4Agent, Connect4State, "/ws/connect4")

    def create_tic_tac_toe_socket(self, app: Litestar) -> GameSocketServer:
        return self.create_socket(app, TicTacToeAgent, TicTacToeState, "/ws/tictactoe")
