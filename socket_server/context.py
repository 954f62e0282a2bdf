"""Everything one server process holds: settings, store, broker, auth, the rooms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import agents
from socket_server.ai_turns import AiTurns
from socket_server.auth import Authenticator
from socket_server.chat import ChatRooms
from socket_server.clocks import ClockTimers
from socket_server.fanout import Broker, create_broker
from socket_server.hub import Hub
from socket_server.metrics import Metrics
from socket_server.protocol import CloseCode
from socket_server.registry import GameTypes
from socket_server.rematch import Rematches
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store import GameStore, create_store

log = logging.getLogger("gamesocket")


@dataclass
class ServerContext:
    settings: Settings
    store: GameStore
    broker: Broker
    auth: Authenticator
    game_types: GameTypes
    service: GameService
    ai_turns: AiTurns
    clocks: ClockTimers
    hub: Hub
    metrics: Metrics
    chat: ChatRooms
    rematches: Rematches
    _stopping: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings) -> ServerContext:
        store = create_store(settings)
        broker = create_broker(settings)
        metrics = Metrics()
        game_types = GameTypes()
        service = GameService(store, broker, settings, game_types, metrics)
        ai_turns = AiTurns(service, broker, settings, game_types, metrics)
        clocks = ClockTimers(service)
        hub = Hub(service, broker)
        auth = Authenticator(settings)
        chat = ChatRooms(service, broker)
        rematches = Rematches(service, broker)
        return cls(
            settings,
            store,
            broker,
            auth,
            game_types,
            service,
            ai_turns,
            clocks,
            hub,
            metrics,
            chat,
            rematches,
        )

    async def start(self) -> None:
        await self.store.open()
        await self.broker.start()
        await self.hub.start()
        await self.auth.start()
        if self.settings.ai_warm_up:
            self.ai_turns.warm_up()
        resumed = await self.ai_turns.resume()
        timed = await self.clocks.resume()
        if self.settings.redis_url:
            # Several processes: take over the AI games and clocks of one that died.
            self.ai_turns.start_sweep()
            self.clocks.start_sweep()
        log.info(
            "server started store=%s resumed_ai_games=%d timed_games=%d",
            type(self.store).__name__,
            resumed,
            timed,
        )

    async def begin_shutdown(self) -> None:
        """Finish in-flight changes, stop the AI, close every socket with 1001 (once)."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._shut_sockets())
        await self._stopping

    async def _shut_sockets(self) -> None:
        self.ai_turns.stop_taking_turns()
        await self.service.shutdown()
        await self.ai_turns.shutdown()
        await self.clocks.shutdown()
        await self.hub.close_all(CloseCode.GOING_AWAY)

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
