"""This process's sockets, per game, and the delivery of broker messages to them.

One broker subscription per game per process. A message arrives as bytes, is framed
once (transport.py) and those same bytes are written to the transport of every socket
of the game in one loop that never yields. A slow client only fills its own transport
buffer; a socket more than `max_send_backlog` frames behind is closed (1008), never
slowing the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import WebSocket

from socket_server import protocol
from socket_server.fanout.base import Broker, Presence
from socket_server.protocol import CloseCode, read_header
from socket_server.service import GameService
from socket_server.snapshot import with_clock_now
from socket_server.store.base import Actor, Seat, seats_held_by
from socket_server.transport import FrameSink, FrameWriter, cancel_task, text_frame

log = logging.getLogger("gamesocket.ws")

HISTORY_SIZE = 128  # recent updates kept per game for `since` replays
PRESENCE_DELAY = 0.1  # seconds: presence changes within this window make one message
# A presence message goes to every socket of its game, so a large audience hears it less
# often (PROTOCOL: "may be throttled"): at most about this many presence sends a second
# per game while a seat goes online or offline (5,000 spectators: one a second) ...
PRESENCE_SENDS_PER_SECOND = 5000
# ... and this many while only the spectator count changes (5,000 spectators connecting:
# one every 5 s, where the sends cost about as much as the connections themselves).
SPECTATOR_COUNT_SENDS_PER_SECOND = 1000
NOBODY: frozenset[str] = frozenset()  # no user muted (shared by every socket)


@dataclass(frozen=True)
class Catchup:
    """What brings a socket from one version to a later one: the updates in between, or,
    when the gap is longer than a replay may be, one `state` at `version` (as frames)."""

    updates: list[tuple[int, bytes]] = field(default_factory=list)  # (version, frame)
    state: bytes | None = None  # a frame
    version: int = 0


# (game_id, after, upto) -> what brings a socket from version `after` to `upto`
GapFiller = Callable[[str, int, int], Awaitable[Catchup]]


class Connection(FrameSink):
    """One game socket's send side (`FrameSink`: written at once, closed 1008 when too
    far behind), in version order: updates are held back until the first snapshot or
    replay, and a gap is filled before any later update."""

    __slots__ = (
        "_fill_gap",
        "_filling",
        "_gap_task",
        "_held",
        "_held_messages",
        "actor",
        "game_id",
        "game_type",
        "last_version",
        "muted",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        game_id: str,
        game_type: str,
        actor: Actor,
        max_backlog: int,
        fill_gap: GapFiller,
        frames: FrameWriter,
    ) -> None:
        super().__init__(socket, frames, max_backlog)
        self.game_id = game_id
        self.game_type = game_type
        self.actor = actor
        self._fill_gap = fill_gap
        # Everything the game's channel sends (updates, presence, ...) is held back until
        # the first snapshot or replay was sent and set `last_version`: a client hears
        # `hello`, then `state`, then the rest.
        self.last_version: int | None = None
        self._held: list[tuple[int, bytes]] = []
        self._held_messages: list[bytes] = []
        self._filling = False
        self._gap_task: asyncio.Task[None] | None = None
        # Users whose chat this socket does not get (`mute`, for this session only).
        self.muted = NOBODY

    def describe(self) -> str:
        return f"game={self.game_id} user={self.actor.user_id}"

    def mute(self, user_id: str, muted: bool) -> None:
        """Stop (or resume) sending `user_id`'s chat to this socket."""
        self.muted = self.muted | {user_id} if muted else self.muted - {user_id}

    def broadcast(self, frame: bytes) -> None:
        """A message of the game's channel that is not an update (presence, thinking, ...)."""
        if self.last_version is None:
            self._held_messages.append(frame)
        else:
            self.send(frame)

    def deliver_update(self, version: int, frame: bytes) -> None:
        """Send an update so this socket sees versions in order, each once."""
        if self.last_version is None or self._filling:
            self._held.append((version, frame))
            return
        if version <= self.last_version:
            return
        if version > self.last_version + 1:
            self._held.append((version, frame))
            self._filling = True
            self._gap_task = asyncio.create_task(self._fill(self.last_version, version - 1))
            return
        self.last_version = version
        self.send(frame)

    def catch_up(self, version: int) -> None:
        """The game is stored at `version`: fill in what this socket missed up to it."""
        if self.last_version is None or self._filling or version <= self.last_version:
            return
        self._filling = True
        self._gap_task = asyncio.create_task(self._fill(self.last_version, version))

    def start_updates(self, version: int) -> None:
        """The client holds the game at `version`: send what was held back after it."""
        self.last_version = (
            version if self.last_version is None else max(version, self.last_version)
        )
        held, self._held_messages = self._held_messages, []
        for frame in held:
            self.send(frame)
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for version, frame in sorted(held, key=lambda item: item[0]):
            self.deliver_update(version, frame)

    async def _fill(self, after: int, upto: int) -> None:
        try:
            catchup = await self._fill_gap(self.game_id, after, upto)
            if catchup.state is not None and catchup.version > (self.last_version or 0):
                self.last_version = catchup.version
                self.send(catchup.state)
            for version, frame in catchup.updates:
                if self.last_version is not None and version == self.last_version + 1:
                    self.last_version = version
                    self.send(frame)
        except Exception:
            log.exception("gap fill failed game=%s", self.game_id)
            self.close(CloseCode.INTERNAL_ERROR)
            return
        finally:
            self._filling = False
        self._release_held()

    async def stop(self) -> None:
        """Cancel the closing and any gap fill (the socket is gone or closing)."""
        await super().stop()
        await cancel_task(self._gap_task)


@dataclass
class GameChannel:
    game_id: str
    game_type: str
    seats: dict[str, Seat]  # as of the last update this process delivered
    connections: set[Connection] = field(default_factory=set)
    history: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=HISTORY_SIZE))
    presence_task: asyncio.Task[None] | None = None
    # Set by every change; the publishing task runs again while it is set, so a change
    # that lands while a publish is in flight is never lost.
    presence_dirty: bool = False
    # Set by a change that may turn a seat online or offline (not just the count).
    presence_seated: bool = False


class Hub:
    def __init__(self, service: GameService, broker: Broker) -> None:
        self.service = service
        self.broker = broker
        self.channels: dict[str, GameChannel] = {}
        # Other sockets of this process that hear announcements (the lobby's).
        self._broadcast_listeners: list[Callable[[bytes], None]] = []
        broker.on_resubscribe(self._catch_up)

    async def _catch_up(self, game_ids: list[str]) -> None:
        """The broker may have lost these games' messages: bring every socket up to date.

        A gap is otherwise only seen when the next update arrives, which for a game's
        last move never happens.
        """
        for game_id in game_ids:
            if game_id not in self.channels:
                continue
            record, _ = await self.service.load(game_id, fresh=True)
            channel = self.channels.get(game_id)
            for connection in channel.connections if channel is not None else ():
                connection.catch_up(record.version)

    async def attach(self, connection: Connection, seats: dict[str, Seat]) -> None:
        """Deliver the game's messages to `connection`; `seats` as the caller read them."""
        channel = self.channels.get(connection.game_id)
        if channel is None:
            channel = GameChannel(connection.game_id, connection.game_type, dict(seats))
            self.channels[connection.game_id] = channel
            await self.broker.subscribe(connection.game_id, self._on_message)
        channel.connections.add(connection)
        seated = bool(seats_held_by(channel.seats, connection.actor.user_id))
        if seated:
            # A player is online at once for every process (a claim of victory against
            # them must fail now, not after the next presence round).
            await self.broker.put_presence(connection.game_id, self.local_presence(channel.game_id))
        self.presence_changed(connection.game_id, seated=seated)

    async def detach(self, connection: Connection) -> None:
        channel = self.channels.get(connection.game_id)
        if channel is None or connection not in channel.connections:
            return
        channel.connections.discard(connection)
        left_at = int(time.time() * 1000)
        seats = seats_held_by(channel.seats, connection.actor.user_id)
        for seat in seats:
            await self.broker.note_seat_left(connection.game_id, seat, left_at)
        if not channel.connections:
            del self.channels[connection.game_id]
            if channel.presence_task is not None:
                channel.presence_task.cancel()
            await self.broker.unsubscribe(connection.game_id)
            await self.broker.put_presence(connection.game_id, Presence())
            return
        self.presence_changed(connection.game_id, seated=bool(seats))

    def _on_message(self, game_id: str, data: bytes) -> None:
        channel = self.channels.get(game_id)
        if channel is None:
            return
        header = read_header(data)
        self.service.note_published(game_id, header, data)
        frame = text_frame(data)
        fanout = self.service.metrics.fanout
        if header.type == "chat":
            self._deliver_chat(channel, header, frame)
            return
        if header.type == "update" and header.version is not None:
            channel.history.append((header.version, frame))
            started = time.perf_counter()
            for connection in channel.connections:
                connection.deliver_update(header.version, frame)
            fanout.observe(time.perf_counter() - started)
            if header.seats is not None and header.seats != channel.seats:
                channel.seats = header.seats
                self.presence_changed(game_id, seated=True)
            return
        started = time.perf_counter()
        for connection in channel.connections:
            connection.broadcast(frame)
        fanout.observe(time.perf_counter() - started)

    @staticmethod
    def _deliver_chat(channel: GameChannel, header: protocol.Header, frame: bytes) -> None:
        """A chat message to the sockets that read its room and have not muted its author.

        `players` is read by every socket of the game; `spectators` only by those whose
        user holds no seat (as this process last heard of the seats).
        """
        spectators_only = header.room != "players"
        for connection in channel.connections:
            if header.user_id in connection.muted:
                continue
            if spectators_only and seats_held_by(channel.seats, connection.actor.user_id):
                continue
            connection.broadcast(frame)

    async def start(self) -> None:
        """Receive the broker-wide messages (announcements) for every socket here."""
        await self.broker.subscribe_all(self._on_broadcast)

    def on_broadcast(self, listener: Callable[[bytes], None]) -> None:
        """Hand every broker-wide message (announcement) to `listener` as well, as the
        frame the game sockets get."""
        self._broadcast_listeners.append(listener)

    def _on_broadcast(self, data: bytes) -> None:
        frame = text_frame(data)
        for channel in list(self.channels.values()):
            for connection in channel.connections:
                connection.broadcast(frame)
        for listener in self._broadcast_listeners:
            listener(frame)

    def recent_updates(self, game_id: str, after: int, upto: int) -> list[tuple[int, bytes]] | None:
        """Updates after..upto (frames) from this process's history, if it holds all."""
        channel = self.channels.get(game_id)
        if channel is None:
            return None
        wanted = [(v, f) for v, f in channel.history if after < v <= upto]
        if len(wanted) != upto - after:
            return None
        return wanted

    async def updates_between(self, game_id: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        """The updates after..upto as frames: this process's history, else the service's
        replay."""
        recent = self.recent_updates(game_id, after, upto)
        if recent is not None:
            return recent
        replayed = await self.service.replay_updates(game_id, after, upto)
        return [(v, text_frame(data)) for v, data in replayed]

    async def fill_gap(self, game_id: str, after: int, upto: int) -> Catchup:
        """What a socket at `after` misses up to `upto`: the updates, if the gap is at
        most `max_replay_updates` long (and the store holds them all), else one `state`."""
        if upto - after <= self.service.settings.max_replay_updates:
            updates = await self.updates_between(game_id, after, upto)
            if len(updates) == upto - after:
                return Catchup(updates)
        record, state = await self.service.load(game_id, fresh=True)
        snapshot = with_clock_now(await self.service.built_snapshot(record, state), record)
        return Catchup(state=text_frame(protocol.state(snapshot)), version=record.version)

    # -- presence -------------------------------------------------------------------
    def presence_changed(self, game_id: str, *, seated: bool) -> None:
        """Presence changed: `seated` when a seat may have gone online or offline, not
        only the spectator count."""
        channel = self.channels.get(game_id)
        if channel is None or self.service.closing:
            return
        channel.presence_dirty = True
        channel.presence_seated = channel.presence_seated or seated
        if channel.presence_task is None or channel.presence_task.done():
            channel.presence_task = asyncio.create_task(self._publish_presence(game_id))

    def local_presence(self, game_id: str) -> Presence:
        presence = Presence()
        channel = self.channels.get(game_id)
        if channel is None:
            return presence
        for connection in channel.connections:
            seats = self.seats_of(connection)
            if seats:
                for seat in seats:
                    presence.players[seat] = presence.players.get(seat, 0) + 1
            else:
                presence.spectators += 1
        return presence

    def seats_of(self, connection: Connection) -> list[str]:
        """The seats the connection's user holds, as this process last heard."""
        channel = self.channels.get(connection.game_id)
        if channel is None:
            return []
        return seats_held_by(channel.seats, connection.actor.user_id)

    async def _publish_presence(self, game_id: str) -> None:
        while True:
            channel = self.channels.get(game_id)
            if channel is None or not channel.presence_dirty or self.service.closing:
                return
            channel = await self._presence_due(game_id)
            if channel is None:
                return
            channel.presence_dirty = channel.presence_seated = False
            await self.broker.put_presence(game_id, self.local_presence(game_id))
            total = await self.broker.get_presence(game_id)
            seat_names = self.service.game_types.state_class(channel.game_type).seats
            online = {seat: total.players.get(seat, 0) > 0 for seat in seat_names}
            message = protocol.presence(game_id, online, total.spectators)
            await self.broker.publish(game_id, message)

    async def _presence_due(self, game_id: str) -> GameChannel | None:
        """Wait until the game's next presence message is due (None: the game's last
        socket left): PRESENCE_DELAY after a change, longer for a large audience, and
        longer still while only the spectator count changed. A seat's change during a
        long wait shortens it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(PRESENCE_DELAY)
            channel = self.channels.get(game_id)
            if channel is None:
                return None
            rate = (
                PRESENCE_SENDS_PER_SECOND
                if channel.presence_seated
                else SPECTATOR_COUNT_SENDS_PER_SECOND
            )
            if loop.time() - started >= len(channel.connections) / rate:
                return channel

    def socket_counts(self) -> tuple[int, int]:
        """This process's open sockets: (players, spectators)."""
        players = spectators = 0
        for channel in self.channels.values():
            for connection in channel.connections:
                if seats_held_by(channel.seats, connection.actor.user_id):
                    players += 1
                else:
                    spectators += 1
        return players, spectators

    async def close_all(self, code: int) -> None:
        """Close every socket of this process (shutdown) and wait for the close frames."""
        connections = [c for channel in self.channels.values() for c in channel.connections]
        for connection in connections:
            connection.close(code)
        if connections:
            # A client that stopped reading must not hold up the shutdown.
            await asyncio.wait(
                [asyncio.create_task(c.wait_written()) for c in connections], timeout=5
            )
