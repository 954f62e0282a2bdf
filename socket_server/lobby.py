"""The lobby: seeks (quick pairing) and the lobby socket `/ws/lobby`.

A seek is stored and paired by the store's database (`store/seeks.py`: one transaction
per seek, the pool serialised), never by the process that happens to be faster; the
pairing's game is then created through the service with both seats set. What the lobby
shows travels on the broker's lobby channel as one JSON event, so every process's
lobby sockets hear of games and seeks appearing and going, and a seek owner's sockets
of its pairing: `{"added": [...], "removed": [ids], "paired": [{"user_id", ...}]}`.

A waiting seek stays alive while its owner fetches it (`GET /api/seeks/{id}`) or has a
lobby socket open on any process (each process refreshes the seeks of its watchers);
unseen for `seek_ttl_seconds` it lapses (`expired`), swept by every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from socket_server import protocol
from socket_server.auth import AuthError
from socket_server.changes import Refused, check_rated_player
from socket_server.protocol import (
    CloseCode,
    ErrorCode,
    LobbyHello,
    LobbyList,
    LobbyUpdate,
    LobbyYou,
    Paired,
    SeekReply,
    SeekView,
    Snapshot,
)
from socket_server.store.base import Actor, GameRecord, StoreUnavailable
from socket_server.store.seeks import Placed, SeekRecord, seeks_for
from socket_server.timecontrol import BadTimeControl, Clock
from socket_server.transport import FrameSink, LeanWebSocket, frame_protocol, text_frame

if TYPE_CHECKING:
    from games import GameState
    from socket_server.context import ServerContext

log = logging.getLogger("gamesocket.lobby")

LOBBY_GAMES = 100  # public waiting games listed on connect, newest first
CLOSE_WAIT = 5.0  # seconds a closing lobby socket may take to send its close frame
# Games and seeks coming and going within this long reach the sockets as one
# `lobby_update` (an id added and removed within it, not at all): with many watchers
# and many seeks a message per change would cost watchers x changes sends.
BATCH_SECONDS = 0.1


class LobbyEvent(msgspec.Struct, omit_defaults=True):
    """What one lobby change tells every process (the broker's lobby channel)."""

    added: list[dict[str, Any]] = msgspec.field(default_factory=list)
    removed: list[str] = msgspec.field(default_factory=list)
    paired: list[dict[str, str]] = msgspec.field(default_factory=list)


def seek_view(seek: SeekRecord, name: str) -> SeekView:
    """The seek as the lobby shows it, with its owner's display name."""
    return SeekView(seek.seek_id, seek.game_type, seek.clock, seek.rated, name)


def seek_reply(seek: SeekRecord) -> SeekReply:
    return SeekReply(seek.seek_id, seek.status, seek.game_id)


def check_seek(actor: Actor, game_type: str, clock: Any, rated: bool, types: Any) -> None:
    """A seek as asked for, or `Refused` (unauthorized, bad_message)."""
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in to seek a game")
    entry = types.get(game_type)
    if entry is None:
        raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {game_type!r}")
    if rated:
        check_rated_player(actor)
    if clock is not None:
        try:
            Clock.from_request(clock, entry.state_class.seats)
        except BadTimeControl as error:
            raise Refused(ErrorCode.BAD_MESSAGE, str(error)) from None


def drawn_seats(seats: tuple[str, ...], first: str, second: str) -> dict[str, str]:
    """The two users in the game's seats, in an order drawn at random."""
    users = [first, second]
    if secrets.randbelow(2):
        users.reverse()
    return dict(zip(seats, users, strict=True))


class LobbySocket(FrameSink):
    """One open lobby socket: its frames written at once, as a game socket's are (closed
    with 1008 once more than `max_send_backlog` frames behind)."""

    __slots__ = ("actor",)

    def __init__(self, socket: WebSocket[Any, Any, Any], actor: Actor, max_backlog: int) -> None:
        super().__init__(socket, frame_protocol(socket), max_backlog)
        self.actor = actor

    def describe(self) -> str:
        return f"lobby user={self.actor.user_id}"


class Lobby:
    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.seeks = seeks_for(context.store)
        self.sockets: set[LobbySocket] = set()
        self.listed: set[str] = set()  # public waiting games announced (any process)
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The next `lobby_update`: added items by id (in order), removed ids.
        self._added: dict[str, dict[str, Any]] = {}
        self._removed: list[str] = []
        self._flush: asyncio.TimerHandle | None = None

    @property
    def ttl(self) -> float:
        return self.context.settings.seek_ttl_seconds

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        await self.context.broker.subscribe_lobby(self._on_event)
        self.context.hub.on_broadcast(self._on_announcement)
        self.context.service.on_commit(self._on_commit)
        waiting = await self.context.store.list_games(
            Actor.ANONYMOUS, status="waiting", limit=LOBBY_GAMES
        )
        self.listed = {game.game_id for game in waiting}
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        for task in [self._sweeper, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        closing = list(self.sockets)
        for lobby_socket in closing:
            lobby_socket.close(CloseCode.GOING_AWAY)
        for lobby_socket in closing:
            await lobby_socket.wait_written()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- seeks -----------------------------------------------------------------------
    async def seek(
        self, actor: Actor, game_type: str, clock: Mapping[str, Any] | None, rated: bool
    ) -> SeekReply:
        check_seek(actor, game_type, clock, rated, self.context.game_types)
        assert actor.user_id is not None
        owner = await self.context.service.profiles.profile_of(actor)
        now = time.time()
        seek = SeekRecord(
            str(uuid.uuid4()),
            actor.user_id,
            game_type,
            dict(clock) if clock else None,
            rated,
            created_at=now,
            seen_at=now,
        )
        with _store_writes():
            placed = await self.seeks.place(seek, str(uuid.uuid4()), self.ttl)
        if placed.partner is not None:
            try:
                await self._create_pairing(placed)
            except BaseException:
                await self._undo_pairing(placed)
                raise
        await self._announce_placed(placed, owner.name)
        return seek_reply(placed.seek)

    async def _undo_pairing(self, placed: Placed) -> None:
        """The game of a pairing could not be created: the partner waits again and the
        new seek is withdrawn (its caller gets the error), as if it never came."""
        assert placed.partner is not None
        log.error("paired game not created game=%s: pairing undone", placed.seek.game_id)
        try:
            await self.seeks.undo_pairing(placed.partner.seek_id, placed.seek.seek_id)
        except Exception:
            log.exception("undoing the pairing of game %s failed", placed.seek.game_id)
        await self._publish(LobbyEvent(removed=[gone.seek_id for gone in placed.gone]))

    async def _create_pairing(self, placed: Placed) -> None:
        partner, seek = placed.partner, placed.seek
        assert partner is not None and seek.game_id is not None
        entry = self.context.game_types.get(seek.game_type)
        assert entry is not None
        players = drawn_seats(entry.state_class.seats, partner.user_id, seek.user_id)
        await self.context.service.create_paired_game(
            seek.game_id, seek.game_type, players, seek.clock, seek.rated
        )

    async def _announce_placed(self, placed: Placed, name: str) -> None:
        event = LobbyEvent(removed=[gone.seek_id for gone in placed.gone])
        if placed.partner is None:
            event.added.append(msgspec.to_builtins(seek_view(placed.seek, name)))
        else:
            event.removed.append(placed.partner.seek_id)
            for paired in (placed.partner, placed.seek):
                event.paired.append(
                    {
                        "user_id": paired.user_id,
                        "seek_id": paired.seek_id,
                        "game_id": paired.game_id or "",
                        "game_type": paired.game_type,
                    }
                )
        await self._publish(event)

    async def get_seek(self, actor: Actor, seek_id: str) -> SeekReply:
        seek = await self._own(actor, seek_id)
        return seek_reply(seek)

    async def withdraw(self, actor: Actor, seek_id: str) -> SeekReply:
        seek = await self._own(actor, seek_id)
        assert actor.user_id is not None
        with _store_writes():
            withdrawn = await self.seeks.withdraw(seek.seek_id, actor.user_id)
        assert withdrawn is not None
        if seek.status == "waiting":
            await self._publish(LobbyEvent(removed=[seek.seek_id]))
        return seek_reply(withdrawn)

    async def _own(self, actor: Actor, seek_id: str) -> SeekRecord:
        """The caller's seek (kept alive by this read); `not_found` for anyone else's."""
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to read your seeks")
        try:
            seek_id = str(uuid.UUID(seek_id))
        except ValueError:
            raise Refused(ErrorCode.NOT_FOUND, "no such seek") from None
        with _store_writes():
            seek = await self.seeks.get(seek_id, time.time(), self.ttl)
        if seek is None or seek.user_id != actor.user_id:
            raise Refused(ErrorCode.NOT_FOUND, "no such seek")
        if seek.status == "expired":
            self._spawn(self._publish(LobbyEvent(removed=[seek.seek_id])))
        return seek

    # -- keeping seeks alive, lapsing the others ---------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.ttl / 4, 0.05))
            try:
                await self.sweep()
            except Exception:
                log.exception("lobby sweep failed")

    async def sweep(self) -> None:
        """Refresh the seeks of this process's watchers; lapse every stale seek."""
        now = time.time()
        watchers = sorted({s.actor.user_id for s in self.sockets if s.actor.user_id})
        await self.seeks.touch(watchers, now)
        lapsed = await self.seeks.lapse(now, self.ttl)
        if lapsed:
            await self._publish(LobbyEvent(removed=[seek.seek_id for seek in lapsed]))

    # -- games appearing and going ---------------------------------------------------
    def _on_commit(self, record: GameRecord, _state: GameState) -> None:
        """A public game listed while waiting; unlisted once it stops waiting."""
        if not record.public:
            return
        if record.status == "waiting" and record.version == 0:
            snapshot = self.context.service.snapshot_of(record, _state)
            self._spawn(self._publish(LobbyEvent(added=[msgspec.to_builtins(snapshot)])))
        elif record.status != "waiting" and record.game_id in self.listed:
            self.listed.discard(record.game_id)
            self._spawn(self._publish(LobbyEvent(removed=[record.game_id])))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: LobbyEvent) -> None:
        if event.added or event.removed or event.paired:
            await self.context.broker.publish_lobby(msgspec.json.encode(event))

    def _on_event(self, data: bytes) -> None:
        """A lobby event of any process: to this process's lobby sockets."""
        event = msgspec.json.decode(data, type=LobbyEvent)
        for item in event.added:
            if "game_id" in item:
                self.listed.add(item["game_id"])
        self.listed.difference_update(event.removed)
        self._batch(event)
        for paired in event.paired:
            message = protocol.encode(
                Paired(
                    seek_id=paired["seek_id"],
                    game_id=paired["game_id"],
                    game_type=paired["game_type"],
                )
            )
            frame = text_frame(message)
            for lobby_socket in self.sockets:
                if lobby_socket.actor.user_id == paired["user_id"]:
                    lobby_socket.send(frame)

    def _on_announcement(self, frame: bytes) -> None:
        """An announcement of any process (as a frame): to every lobby socket here too."""
        self._send_all(frame)

    def _send_all(self, frame: bytes) -> None:
        """One frame written to every lobby socket of this process, in a loop that never
        yields (a socket too far behind is closed, not waited for)."""
        for lobby_socket in self.sockets:
            lobby_socket.send(frame)

    def _batch(self, event: LobbyEvent) -> None:
        """Add `event`'s changes to the next `lobby_update` (sent BATCH_SECONDS after its
        first change)."""
        for item in event.added:
            self._added[item.get("seek_id") or item["game_id"]] = item
        for removed in event.removed:
            if self._added.pop(removed, None) is None:
                self._removed.append(removed)
        if self._flush is None and (self._added or self._removed):
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(BATCH_SECONDS, self._send_batch)

    def _send_batch(self) -> None:
        self._flush = None
        added, removed = list(self._added.values()), self._removed
        self._added, self._removed = {}, []
        if not added and not removed:
            return
        update = protocol.encode(LobbyUpdate(added=added, removed=removed))  # type: ignore[arg-type]
        self._send_all(text_frame(update))

    # -- the socket ------------------------------------------------------------------
    async def listing(self) -> bytes:
        games = await self.context.store.list_games(
            Actor.ANONYMOUS, status="waiting", limit=LOBBY_GAMES
        )
        snapshots: list[Snapshot] = await self.context.service.snapshots_for(
            [(game, None) for game in games if game.public]
        )
        waiting = await self.seeks.waiting()
        names = await self.context.service.profiles.names([seek.user_id for seek in waiting])
        # A seek's owner always has a profile (created when seeking); the id stands in else.
        seeks = [seek_view(seek, names.get(seek.user_id, seek.user_id)) for seek in waiting]
        return protocol.encode(LobbyList(games=snapshots, seeks=seeks))

    async def serve(self, socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        actor = Actor.ANONYMOUS
        token = socket.query_params.get("token")
        if token:
            try:
                actor = await self.context.auth.verify(token)
            except AuthError:
                await socket.close(CloseCode.UNAUTHORIZED)
                return
        lobby_socket = LobbySocket(socket, actor, self.context.settings.max_send_backlog)
        lobby_socket.send_bytes(protocol.encode(LobbyHello(you=LobbyYou(actor.user_id))))
        code: int | None = None
        try:
            if actor.user_id is not None:
                await self.seeks.touch([actor.user_id], time.time())
            self.sockets.add(lobby_socket)
            lobby_socket.send_bytes(await self.listing())
            code = await self._receive_loop(lobby_socket)
        finally:
            self.sockets.discard(lobby_socket)
            await lobby_socket.finish(code, CLOSE_WAIT)

    async def _receive_loop(self, lobby_socket: LobbySocket) -> int | None:
        """`ping` is answered with `pong`; anything else with an error. A socket silent
        for the game sockets' idle limit is closed with 4408 as they are. The close code
        due, or None when the client left."""
        idle = self.context.settings.idle_timeout_seconds
        while not lobby_socket.cut_off:
            try:
                frame = await lobby_socket.next_frame(idle)
            except TimeoutError:
                return CloseCode.IDLE
            except (WebSocketDisconnect, RuntimeError):
                return None
            if frame is None:
                break
            lobby_socket.send_bytes(_answer(frame))
        return lobby_socket.close_code


@contextlib.contextmanager
def _store_writes() -> Iterator[None]:
    """A store that cannot write now (a full disk): `unavailable` (503), nothing changed."""
    try:
        yield
    except StoreUnavailable as error:
        raise Refused(
            ErrorCode.UNAVAILABLE, f"{error}: nothing was changed; try again in a while"
        ) from None


def _answer(text: str | bytes) -> bytes:
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return protocol.encode(protocol.Error(code=ErrorCode.BAD_MESSAGE, message="not JSON"))
    if isinstance(message, dict) and message.get("type") == "ping":
        return protocol.encode(protocol.Pong())
    return protocol.encode(
        protocol.Error(code=ErrorCode.UNKNOWN_TYPE, message="the lobby socket answers ping only")
    )


@websocket("/ws/lobby", name="ws-lobby", websocket_class=LeanWebSocket)
async def lobby_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """The lobby socket (PROTOCOL.md "The lobby socket")."""
    lobby: Lobby = socket.app.state["lobby"]
    await lobby.serve(socket)
