"""The in-process broker: no outside service.

One `MemoryBroker` serves one server process. Several handles may share one
`MemoryBackplane` and then behave towards each other as `RedisBroker`s on one Redis
do (each handle standing for a process, a "node"): one handler per game and handle,
locks with one holder and a TTL, presence per handle summed over the handles.

Delivery stays synchronous: `publish` calls the handlers itself (awaiting those that
return an awaitable) and returns once they are done. Messages of a game reach every
handle in publish order: a publish made while that game's messages are being delivered
(from a handler, or from another task while a handler is suspended) is queued behind
them and delivered by the same loop, instead of overtaking them at some handles.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from socket_server.fanout.base import (
    BroadcastHandler,
    MessageHandler,
    Presence,
    ResubscribeHandler,
)

log = logging.getLogger("gamesocket.fanout")

# Redis takes TTLs in whole milliseconds and never less than one.
_MIN_TTL = 0.001


def _copy(presence: Presence) -> Presence:
    return Presence(players=dict(presence.players), spectators=presence.spectators)


@dataclass
class _Pending:
    """A published message and the handles it still has to reach."""

    data: bytes
    recipients: deque[MemoryBroker] = field(default_factory=deque)


class MemoryBackplane:
    """What the handles sharing it have in common: subscriptions, locks, presence."""

    def __init__(self) -> None:
        # game id -> handle -> that handle's handler of the game
        self.subscriptions: dict[str, dict[MemoryBroker, MessageHandler]] = {}
        # lock key -> (holder, expiry on time.monotonic())
        self.locks: dict[str, tuple[MemoryBroker, float]] = {}
        # game id -> handle -> that handle's open sockets of the game (never empty)
        self.presence: dict[str, dict[MemoryBroker, Presence]] = {}
        # game id -> seat -> when a socket of that seat last closed (epoch ms)
        self.seats_left_at: dict[str, dict[str, int]] = {}
        # game id -> messages not yet delivered to every recipient; a game has an
        # entry exactly while some call is delivering its messages.
        self._pending: dict[str, deque[_Pending]] = {}
        # handle -> its handler of broker-wide messages
        self.broadcast_handlers: dict[MemoryBroker, BroadcastHandler] = {}
        # handle -> its handler of lobby messages
        self.lobby_handlers: dict[MemoryBroker, BroadcastHandler] = {}
        # Deliveries carried on after the call delivering them was cancelled.
        self._tasks: set[asyncio.Task[None]] = set()

    # -- fan-out -----------------------------------------------------------------------

    async def publish(self, game_id: str, data: bytes) -> None:
        # The recipients are the handles subscribed now (as Redis sends a message to
        # the connections subscribed when it runs the PUBLISH).
        recipients = deque(self.subscriptions.get(game_id, ()))
        if not recipients:
            return
        message = _Pending(data, recipients)
        queue = self._pending.get(game_id)
        if queue is not None:
            # Being delivered (this is a handler publishing, or another task's handler
            # is suspended): it goes out right after the messages before it.
            queue.append(message)
            return
        self._pending[game_id] = deque([message])
        await self._deliver(game_id)

    async def _deliver(self, game_id: str) -> None:
        """Deliver `game_id`'s queued messages, in order, until none is left."""
        queue = self._pending[game_id]
        try:
            while queue:
                message = queue[0]
                while message.recipients:
                    handle = message.recipients.popleft()
                    # Looked up at delivery: a handle that unsubscribed meanwhile gets
                    # nothing, one that subscribed another handler gets that one.
                    handler = self.subscriptions.get(game_id, {}).get(handle)
                    if handler is None:
                        continue
                    # As RedisBroker does: a failing handler is logged and stops nothing
                    # else. Called here, not in a helper coroutine: one less per message.
                    try:
                        pending = handler(game_id, message.data)
                        if pending is not None:
                            await pending
                    except Exception:
                        log.exception("message handler of game %s failed", game_id)
                queue.popleft()
        finally:
            if queue:  # cancelled mid-way: what is left must still go out, in order
                task = asyncio.get_running_loop().create_task(self._deliver(game_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                del self._pending[game_id]

    async def publish_lobby(self, data: bytes) -> None:
        await self._broadcast(self.lobby_handlers, data)

    @staticmethod
    async def _broadcast(handlers: dict[MemoryBroker, BroadcastHandler], data: bytes) -> None:
        for handler in list(handlers.values()):
            try:
                result = handler(data)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("lobby handler failed")

    async def publish_all(self, data: bytes) -> None:
        for handler in list(self.broadcast_handlers.values()):
            try:
                result = handler(data)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("broadcast handler failed")

    def subscribe(self, handle: MemoryBroker, game_id: str, handler: MessageHandler) -> None:
        self.subscriptions.setdefault(game_id, {})[handle] = handler

    def unsubscribe(self, handle: MemoryBroker, game_id: str) -> None:
        handlers = self.subscriptions.get(game_id)
        if handlers is not None:
            handlers.pop(handle, None)
            if not handlers:
                del self.subscriptions[game_id]

    # -- locks -------------------------------------------------------------------------

    def try_lock(self, handle: MemoryBroker, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        held = self.locks.get(key)
        if held is not None and held[0] is not handle and held[1] > now:
            return False
        # Free, lapsed, or this handle's own: taken (again) for a fresh TTL.
        self.locks[key] = (handle, now + max(_MIN_TTL, ttl_seconds))
        return True

    def unlock(self, handle: MemoryBroker, key: str) -> None:
        held = self.locks.get(key)
        if held is not None and held[0] is handle:
            del self.locks[key]

    # -- presence ----------------------------------------------------------------------

    def put_presence(self, handle: MemoryBroker, game_id: str, presence: Presence) -> None:
        if presence.is_empty():
            entries = self.presence.get(game_id)
            if entries is not None:
                entries.pop(handle, None)
                if not entries:
                    del self.presence[game_id]
        else:
            # A copy, as Redis stores a serialised one: later changes to the caller's
            # object are not recorded behind its back.
            self.presence.setdefault(game_id, {})[handle] = _copy(presence)

    def get_presence(self, game_id: str) -> Presence:
        total = Presence()
        for presence in self.presence.get(game_id, {}).values():
            total = total.add(presence)
        return total

    def all_presence(self) -> dict[str, Presence]:
        totals = {game_id: self.get_presence(game_id) for game_id in sorted(self.presence)}
        return {game_id: total for game_id, total in totals.items() if not total.is_empty()}

    # -- handles -----------------------------------------------------------------------

    def remove(self, handle: MemoryBroker) -> None:
        """Drop everything of `handle`: its subscriptions, locks and presence."""
        for game_id in list(self.subscriptions):
            self.unsubscribe(handle, game_id)
        self.broadcast_handlers.pop(handle, None)
        self.lobby_handlers.pop(handle, None)
        for key in [key for key, (holder, _) in self.locks.items() if holder is handle]:
            del self.locks[key]
        for game_id in list(self.presence):
            self.put_presence(handle, game_id, Presence())


class MemoryBroker:
    """One handle ("node") on a `MemoryBackplane`; its own backplane if none is given.

    Alone on its backplane it serves one process: every lock is its own (taking one
    again refreshes it) and the presence is that process's.
    """

    def __init__(self, backplane: MemoryBackplane | None = None) -> None:
        self.backplane = backplane if backplane is not None else MemoryBackplane()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        # Like a stopped RedisBroker's: its locks are released and its presence
        # removed at once, not when a TTL runs out.
        self.backplane.remove(self)

    def publish(self, game_id: str, data: bytes) -> Coroutine[Any, Any, None]:
        # The backplane's coroutine itself, not awaited in one of this method's.
        return self.backplane.publish(game_id, data)

    async def subscribe(self, game_id: str, handler: MessageHandler) -> None:
        self.backplane.subscribe(self, game_id, handler)

    async def unsubscribe(self, game_id: str) -> None:
        self.backplane.unsubscribe(self, game_id)

    async def publish_all(self, data: bytes) -> None:
        await self.backplane.publish_all(data)

    async def subscribe_all(self, handler: BroadcastHandler) -> None:
        self.backplane.broadcast_handlers[self] = handler

    async def publish_lobby(self, data: bytes) -> None:
        await self.backplane.publish_lobby(data)

    async def subscribe_lobby(self, handler: BroadcastHandler) -> None:
        self.backplane.lobby_handlers[self] = handler

    def on_resubscribe(self, handler: ResubscribeHandler) -> None:
        # Publishing calls the handlers directly: no message is ever lost on the way.
        return None

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        return self.backplane.try_lock(self, key, ttl_seconds)

    async def unlock(self, key: str) -> None:
        self.backplane.unlock(self, key)

    async def put_presence(self, game_id: str, presence: Presence) -> None:
        self.backplane.put_presence(self, game_id, presence)

    async def get_presence(self, game_id: str) -> Presence:
        return self.backplane.get_presence(game_id)

    async def all_presence(self) -> dict[str, Presence]:
        return self.backplane.all_presence()

    async def note_seat_left(self, game_id: str, seat: str, at_ms: int) -> None:
        left = self.backplane.seats_left_at.setdefault(game_id, {})
        left[seat] = max(at_ms, left.get(seat, 0))

    async def seats_left_at(self, game_id: str) -> dict[str, int]:
        return dict(self.backplane.seats_left_at.get(game_id, {}))
