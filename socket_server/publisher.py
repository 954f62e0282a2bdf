"""Publishing a game's messages in order, whatever the broker does meanwhile.

A stored change must reach everyone: a message the broker refuses (Redis unreachable,
its connection killed) is kept, with the game's later messages queued behind it, and a
background task publishes them oldest first until the broker takes them. Nobody waits
for that: the game's lock is not held, and the caller's request is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from socket_server.fanout.base import Broker

log = logging.getLogger("gamesocket.service")

# A publish the broker refused is tried again after this long, doubled up to the cap.
PUBLISH_RETRY_FIRST = 0.05
PUBLISH_RETRY_MAX = 2.0


class OrderedPublisher:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        # Per game, the messages the broker refused, oldest first: a background task
        # publishes them in order, and the game's later messages queue behind them.
        self._unsent: dict[str, deque[bytes]] = {}
        self._resenders: set[asyncio.Task[None]] = set()

    async def send(self, game_id: str, data: bytes) -> None:
        """Publish `data` after the game's earlier messages; never raises for the broker."""
        backlog = self._unsent.get(game_id)
        if backlog is None:
            try:  # not through `_try_publish`: one coroutine less on every message
                await self.broker.publish(game_id, data)
                return
            except Exception as error:  # the broker is unreachable
                log.warning(
                    "publish failed game=%s error=%r: retrying in the background", game_id, error
                )
            backlog = self._unsent[game_id] = deque()
            task = asyncio.create_task(self._resend(game_id, backlog))
            self._resenders.add(task)
            task.add_done_callback(self._resenders.discard)
        backlog.append(data)

    async def _try_publish(self, game_id: str, data: bytes) -> Exception | None:
        """None once the broker took `data`, else its error."""
        try:
            await self.broker.publish(game_id, data)
        except Exception as error:  # the broker is unreachable: the caller retries
            return error
        return None

    async def _resend(self, game_id: str, backlog: deque[bytes]) -> None:
        """Publish the game's refused messages, oldest first, until the broker takes them."""
        delay = PUBLISH_RETRY_FIRST
        try:
            while backlog:
                await asyncio.sleep(delay)
                error = await self._try_publish(game_id, backlog[0])
                if error is None:
                    backlog.popleft()
                    delay = 0.0
                    continue
                delay = min(max(delay * 2, PUBLISH_RETRY_FIRST), PUBLISH_RETRY_MAX)
                log.warning(
                    "publish retry failed game=%s queued=%d retry_in=%.2fs error=%r",
                    game_id,
                    len(backlog),
                    delay,
                    error,
                )
            log.info("published after retrying game=%s", game_id)
        finally:
            del self._unsent[game_id]

    async def flush(self, grace_seconds: float) -> None:
        """Give the background publishes `grace_seconds`; then drop what is left.

        Every socket is closed next, and clients resume from the store with `since`.
        """
        if not self._resenders:
            return
        _, pending = await asyncio.wait(set(self._resenders), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.error("shutdown: unpublished messages of %d game(s) dropped", len(pending))
