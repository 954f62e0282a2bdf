"""What the broker tests share: a recording handler, polling, numbered messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Inbox:
    """Records what a broker handle's handlers receive, per game."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = {}
        self._arrived = asyncio.Event()

    def handler(self, game_id: str, data: bytes) -> None:
        self.received.setdefault(game_id, []).append(data)
        self._arrived.set()

    def of(self, game_id: str) -> list[bytes]:
        return self.received.get(game_id, [])

    async def wait_for(self, game_id: str, count: int, within: float = 10.0) -> list[bytes]:
        async with asyncio.timeout(within):
            while len(self.of(game_id)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(game_id)


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll `check` until it holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


def numbered(count: int, start: int = 0) -> list[bytes]:
    return [f"{i}".encode() for i in range(start, start + count)]
