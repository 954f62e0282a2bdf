"""`create_app`: the Litestar application (REST, sockets of every game, web page)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Litestar, WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from socket_server.context import ServerContext
from socket_server.factory import CLOSE_NOT_FOUND, GameSocketFactory
from socket_server.metrics import metrics_endpoint
from socket_server.rest import (
    ROUTES,
    http_error_handler,
    internal_error_handler,
    service_error_handler,
)
from socket_server.service import ServiceError
from socket_server.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


@websocket("/ws/{game_type:str}/{game_id:str}", name="ws-unknown-game-type")
async def unknown_game_type(
    socket: WebSocket[Any, Any, Any], game_type: FromPath[str], game_id: FromPath[str]
) -> None:
    """A game type no factory mounted: accepted only to be closed with 4404."""
    await socket.accept()
    await socket.close(CLOSE_NOT_FOUND)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    context = ServerContext.build(settings)
    STATIC_DIR.mkdir(exist_ok=True)
    app = Litestar(
        route_handlers=[
            *ROUTES,
            metrics_endpoint,
            unknown_game_type,
            create_static_files_router(path="/", directories=[STATIC_DIR], html_mode=True),
        ],
        lifespan=[context.lifespan],
        state=State({"gamesocket": context}),
        openapi_config=OpenAPIConfig(
            title="gamesocket",
            version="1.0.0",
            path="/schema",
            # GET /schema is the document itself (PROTOCOL.md); the UI sits beside it.
            render_plugins=[
                JsonRenderPlugin(path=["/", "/openapi.json"]),
                SwaggerRenderPlugin(path="/swagger"),
            ],
        ),
        exception_handlers={
            ServiceError: service_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        logging_config=None,
    )
    factory = GameSocketFactory()
    factory.create_chess_socket(app)
    factory.create_connect4_socket(app)
    factory.create_tic_tac_toe_socket(app)
    logging.getLogger("gamesocket").setLevel(logging.INFO)
    return app
