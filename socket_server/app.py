"""`create_app`: the Litestar application (REST, sockets of every game, web page)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Litestar, WebSocket, websocket
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from socket_server.asyncapi import asyncapi_json
from socket_server.changes import Refused
from socket_server.context import ServerContext
from socket_server.factory import GameSocketFactory
from socket_server.limits import limit_middleware
from socket_server.lobby import Lobby, lobby_socket
from socket_server.metrics import metrics_endpoint
from socket_server.openapi import openapi_config
from socket_server.protocol import CloseCode
from socket_server.rest import (
    ROUTES,
    complete_allow,
    http_error_handler,
    internal_error_handler,
    refusal_handler,
)
from socket_server.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


@websocket("/ws/{game_type:str}/{game_id:str}", name="ws-unknown-game-type")
async def unknown_game_type(
    socket: WebSocket[Any, Any, Any], game_type: FromPath[str], game_id: FromPath[str]
) -> None:
    """A game type no factory mounted: accepted only to be closed with 4404."""
    await socket.accept()
    await socket.close(CloseCode.NOT_FOUND)


def _dependencies(context: ServerContext) -> dict[str, Provide]:
    """What the REST handlers are given, by parameter name (Litestar's DI)."""
    parts: dict[str, Any] = {
        "service": context.service,
        "auth": context.auth,
        "settings": context.settings,
        "store": context.store,
        "broker": context.broker,
        "chat": context.chat,
        "rematches": context.rematches,
    }
    return {name: Provide(_constant(part), use_cache=True) for name, part in parts.items()}


def _constant(value: Any) -> Callable[[], Awaitable[Any]]:
    async def provide() -> Any:
        return value

    return provide


def _cors(settings: Settings) -> CORSConfig | None:
    """CORS for the pages of `GAMESOCKET_CORS_ORIGINS` (none: no CORS headers at all)."""
    if not settings.cors_origins:
        return None
    origins = ["*"] if "*" in settings.cors_origins else list(settings.cors_origins)
    # Tokens travel in `Authorization`, not cookies: no credentials mode is needed.
    return CORSConfig(allow_origins=origins, expose_headers=["Allow", "Retry-After"])


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    context = ServerContext.build(settings)
    lobby = Lobby(context)  # seeks and the lobby socket: socket_server/lobby.py
    app = Litestar(
        route_handlers=[
            *ROUTES,
            metrics_endpoint,
            asyncapi_json,  # the sockets' AsyncAPI document: socket_server/asyncapi.py
            unknown_game_type,
            lobby_socket,
            create_static_files_router(path="/", directories=[STATIC_DIR], html_mode=True),
        ],
        dependencies={
            **_dependencies(context),
            "lobby": Provide(_constant(lobby), use_cache=True),
        },
        # Socket caps (1013 beyond them) and REST rate limits (429): socket_server/limits.py
        middleware=limit_middleware(settings, context.auth),
        cors_config=_cors(settings),
        before_send=[complete_allow],
        lifespan=[context.lifespan, lobby.lifespan],
        state=State({"gamesocket": context, "lobby": lobby}),
        # /schema, /schema/openapi.json and the page /schema/swagger: socket_server/openapi.py
        openapi_config=openapi_config(),
        exception_handlers={
            Refused: refusal_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        logging_config=None,
    )
    factory = GameSocketFactory()
    factory.create_chess_socket(app)
    factory.create_connect4_socket(app)
    factory.create_tic_tac_toe_socket(app)
    return app
