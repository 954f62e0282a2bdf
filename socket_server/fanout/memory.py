"""The in-process broker: one server process, no outside service."""

from __future__ import annotations

import inspect

from socket_server.fanout.base import MessageHandler, Presence, ResubscribeHandler


class MemoryBroker:
    """Publish calls the game's handler directly; presence lives in a dict."""

    def __init__(self) -> None:
        self._handlers: dict[str, MessageHandler] = {}
        self._presence: dict[str, Presence] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._handlers.clear()
        self._presence.clear()

    async def publish(self, game_id: str, data: bytes) -> None:
        handler = self._handlers.get(game_id)
        if handler is None:
            return
        result = handler(game_id, data)
        if inspect.isawaitable(result):
            await result

    async def subscribe(self, game_id: str, handler: MessageHandler) -> None:
        self._handlers[game_id] = handler

    async def unsubscribe(self, game_id: str) -> None:
        self._handlers.pop(game_id, None)

    def on_resubscribe(self, handler: ResubscribeHandler) -> None:
        # Publishing calls the handlers directly: no message is ever lost on the way.
        return None

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        # One process holds every lock there is: taking one again is its holder
        # refreshing it. Tasks inside the process are kept apart by the service.
        return True

    async def unlock(self, key: str) -> None:
        return None

    async def put_presence(self, game_id: str, presence: Presence) -> None:
        if presence.is_empty():
            self._presence.pop(game_id, None)
        else:
            self._presence[game_id] = presence

    async def get_presence(self, game_id: str) -> Presence:
        return self._presence.get(game_id, Presence())

    async def all_presence(self) -> dict[str, Presence]:
        return dict(self._presence)
