"""Running the app under uvicorn with the settings the protocol needs.

`GracefulServer` closes every socket with 1001 (after in-flight moves finish) before
uvicorn's own shutdown, which would otherwise close them with 1012.
"""

from __future__ import annotations

import socket

import uvicorn
from litestar import Litestar

from socket_server.app import create_app
from socket_server.context import ServerContext
from socket_server.settings import Settings


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, context: ServerContext) -> None:
        super().__init__(config)
        self.context = context

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.context.begin_shutdown()
        await super().shutdown(sockets)


def make_server(
    settings: Settings, app: Litestar | None = None, *, log_level: str = "info"
) -> GracefulServer:
    app = app or create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # uvicorn's loggers keep no handlers of their own: their lines go where the
        # root logger's go (`gamesocket serve`: the log thread).
        log_config=None,
        log_level=log_level,
    )
    return GracefulServer(config, app.state["gamesocket"])
