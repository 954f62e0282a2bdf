"""How an update reaches every process that holds sockets of a game.

Each process subscribes once per game (when its first local socket of that game
opens), not once per socket; the process then writes the same bytes to each of its
sockets. The in-memory broker serves one process; the Redis broker several. The
broker also carries what must be shared between processes: AI-turn locks and presence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

# Called with (game_id, the serialised message) for every message of a subscribed game.
MessageHandler = Callable[[str, bytes], Awaitable[None] | None]
# Called with the ids of the games resubscribed after the broker lost its connection:
# what was published to them meanwhile never arrived.
ResubscribeHandler = Callable[[list[str]], Awaitable[None] | None]
# Called with the serialised message for every broker-wide message (announcements).
BroadcastHandler = Callable[[bytes], Awaitable[None] | None]


@dataclass
class Presence:
    """Open sockets of one game: per seat (players) and spectators."""

    players: dict[str, int] = field(default_factory=dict)  # seat -> open sockets
    spectators: int = 0

    def is_empty(self) -> bool:
        return self.spectators == 0 and not any(self.players.values())

    def add(self, other: Presence) -> Presence:
        players = dict(self.players)
        for seat, count in other.players.items():
            players[seat] = players.get(seat, 0) + count
        return Presence(players=players, spectators=self.spectators + other.spectators)


class Broker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, game_id: str, data: bytes) -> None:
        """Deliver `data` to every process subscribed to `game_id` (this one included)."""

    async def subscribe(self, game_id: str, handler: MessageHandler) -> None:
        """Start delivering `game_id`'s messages to `handler` (one handler per game)."""

    async def unsubscribe(self, game_id: str) -> None: ...

    async def publish_all(self, data: bytes) -> None:
        """Deliver `data` to the broadcast handler of every process (this one included)."""

    async def subscribe_all(self, handler: BroadcastHandler) -> None:
        """Deliver every `publish_all` message to `handler` (one handler per process)."""

    async def publish_lobby(self, data: bytes) -> None:
        """Deliver `data` to the lobby handler of every process (this one included)."""

    async def subscribe_lobby(self, handler: BroadcastHandler) -> None:
        """Deliver every `publish_lobby` message to `handler` (one handler per process)."""

    def on_resubscribe(self, handler: ResubscribeHandler) -> None:
        """Call `handler` whenever messages of subscribed games may have been lost."""

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        """Take `key` for this process unless another live process holds it.

        Used so that exactly one search runs per game across all processes. A lock
        lapses after `ttl_seconds` unless taken again (which refreshes it) by its holder.
        """

    async def unlock(self, key: str) -> None: ...

    async def put_presence(self, game_id: str, presence: Presence) -> None:
        """Record this process's sockets of `game_id` (an empty Presence removes them)."""

    async def get_presence(self, game_id: str) -> Presence:
        """Sockets of `game_id` summed over every live process."""

    async def note_seat_left(self, game_id: str, seat: str, at_ms: int) -> None:
        """Record that a socket of `seat` closed at `at_ms` (epoch ms) on this process."""

    async def seats_left_at(self, game_id: str) -> dict[str, int]:
        """Per seat, when a socket of it last closed on any process (epoch ms)."""

    async def all_presence(self) -> dict[str, Presence]:
        """Every game with open sockets on any live process (for /api/connections)."""
