"""How an update reaches every process that holds sockets of a game.

Each process subscribes once per game (when its first local socket of that game
opens), not once per socket; the process then writes the same bytes to each of its
sockets. The in-memory broker serves one process; the Redis broker several.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

# Called with (game_id, the serialised message) for every message of a subscribed game.
MessageHandler = Callable[[str, bytes], Awaitable[None] | None]


class Broker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, game_id: str, data: bytes) -> None:
        """Deliver `data` to every process subscribed to `game_id` (this one included)."""

    async def subscribe(self, game_id: str, handler: MessageHandler) -> None:
        """Start delivering `game_id`'s messages to `handler` (one handler per game)."""

    async def unsubscribe(self, game_id: str) -> None: ...
