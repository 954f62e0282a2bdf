"""Running the app under uvicorn with the settings the protocol needs.

`GracefulServer` closes every socket with 1001 (after in-flight moves finish) before
uvicorn's own shutdown, which would otherwise close them with 1012.

`build_app(settings, ["module:attr", ...])` is `gamesocket serve --app`: the app of
`create_app`, handed to each named callable, which mounts its games on it with
`GameSocketFactory().create_socket(app, ...)`. No launcher script is needed, so none
can forget the `if __name__ == "__main__":` guard that the search pool's spawned
workers need when they re-import the main module.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

import uvicorn
from litestar import Litestar

from socket_server.app import create_app
from socket_server.context import ServerContext
from socket_server.http_protocol import guarded_http_protocol
from socket_server.settings import Settings
from socket_server.transport import FrameProtocol

# How long an idle HTTP connection is kept open. A client must drop its idle connections
# sooner, or a request it sends as the server closes one fails (the project's own client
# drops them after 2 s: gamesocket_client.rest.IDLE_CONNECTION_SECONDS).
KEEP_ALIVE_SECONDS = 5


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
        # httptools with a deadline and a size bound on each request (http_protocol.py).
        http=guarded_http_protocol(settings.handshake_timeout_seconds),
        # websockets-sansio that also writes prebuilt frames (transport.py).
        ws=FrameProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=10,
        # The client address (limits per address) is X-Forwarded-For from these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # uvicorn's loggers keep no handlers of their own: their lines go where the
        # root logger's go (`gamesocket serve`: the log thread).
        log_config=None,
        log_level=log_level,
    )
    return GracefulServer(config, app.state["gamesocket"])


class AppSpecError(ValueError):
    """A `--app module:attr` that names nothing to call."""


def _import_module(spec: str, name: str) -> Any:
    # As uvicorn does: modules in the current directory are found first.
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if name == missing or name.startswith(missing + "."):
            raise AppSpecError(f"--app {spec}: there is no module {missing!r}") from None
        raise  # the module itself imports something missing: its own traceback says what


def load_app_hook(spec: str) -> Callable[[Litestar], Any]:
    """The callable `spec` (`module:attr`, attr may be dotted) names; AppSpecError if none."""
    name, _, attr = spec.partition(":")
    if not name or not attr:
        raise AppSpecError(f"--app takes MODULE:ATTR (a function of the app), not {spec!r}")
    target: Any = _import_module(spec, name)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AppSpecError(f"--app {spec}: {name} has no attribute {attr!r}")
        target = getattr(target, part)
    if isinstance(target, Litestar) or not callable(target):
        raise AppSpecError(
            f"--app {spec}: {attr} must be a function taking the app made by create_app"
            f" (it mounts games on it), not {type(target).__name__}"
        )
    hook: Callable[[Litestar], Any] = target
    return hook


def build_app(settings: Settings, specs: Iterable[str] | None = None) -> Litestar:
    """`create_app(settings)`, then each `module:attr` of `specs` called with it."""
    hooks = [load_app_hook(spec) for spec in specs or ()]  # all found before any is run
    app = create_app(settings)
    for hook in hooks:
        hook(app)
    return app
