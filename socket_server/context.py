"""Everything one server process holds: settings, store, broker, auth, service, sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import agents
from socket_server.auth import Authenticator
from socket_server.fanout import Broker, create_broker
from socket_server.hub import Hub
from socket_server.metrics import Metrics
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store import GameStore, create_store

if TYPE_CHECKING:
    from socket_server.factory import GameSocketServer

log = logging.getLogger("gamesocket")

CLOSE_SHUTDOWN = 1001


@dataclass
class ServerContext:
    settings: Settings
    store: GameStore
    broker: Broker
    auth: Authenticator
    service: GameService
    hub: Hub
    metrics: Metrics
    game_servers: dict[str, GameSocketServer] = field(default_factory=dict)
    _stopping: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings) -> ServerContext:
        store = create_store(settings)
        broker = create_broker(settings)
        metrics = Metrics()
        service = GameService(store, broker, settings, metrics)
        hub = Hub(service, broker)
        return cls(settings, store, broker, Authenticator(settings), service, hub, metrics)

    async def start(self) -> None:
        await self.store.open()
        await self.broker.start()
        await self.auth.start()
        resumed = await self.service.resume_ai_games()
        if self.settings.redis_url:
            # Several processes: take over the AI games of one that died.
            self.service.start_ai_sweep()
        log.info("server started store=%s resumed_ai_games=%d", type(self.store).__name__, resumed)

    async def begin_shutdown(self) -> None:
        """Finish in-flight changes, stop the AI, close every socket with 1001 (once)."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._shut_sockets())
        await self._stopping

    async def _shut_sockets(self) -> None:
        await self.service.shutdown()
        await self.hub.close_all(CLOSE_SHUTDOWN)
        for server in self.game_servers.values():
            server.cleanup()

    async def stop(self) -> None:
        await self.begin_shutdown()
        agents.shutdown()  # search workers and engine processes
        await self.broker.stop()
        await self.auth.close()
        await self.store.close()
        log.info("server stopped")

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()
