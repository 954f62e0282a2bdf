"""The persistence contract: every store (memory, SQLite, Postgres) implements `GameStore`.

The game service is the only caller. A state change is one `commit_change` call that
writes the new game row and its event together, on the condition that the stored
version is still `game.version - 1`: that condition, checked by the store in one
atomic statement or transaction, is what decides races between sockets and processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

GameStatus = Literal["waiting", "active", "finished", "aborted"]
EventKind = Literal["join", "move", "resign", "draw", "abort", "finish", "timeout", "claim"]

# A seat as stored and sent: None (empty), {"kind": "human", "user_id": ..., "name": ...}
# (the name the player had when taking the seat), or {"kind": "ai", "level": 1..10}.
Seat = dict[str, Any] | None


class StoreError(Exception):
    """Base class of the errors a store raises on purpose."""


class StaleVersion(StoreError):
    """The stored version is not the one the change was computed from."""


class DuplicateRequest(StoreError):
    """The (game, user, request id) already names a stored event; `version` is its version."""

    def __init__(self, version: int) -> None:
        super().__init__(f"request already applied at version {version}")
        self.version = version

    def __reduce__(self) -> tuple[type[DuplicateRequest], tuple[int]]:
        # Pickled by its version, not its message (it crosses the SQLite writer's pipe).
        return (DuplicateRequest, (self.version,))


class StoreUnavailable(StoreError):
    """The store cannot write now (say, its disk is full): nothing was stored."""


class NotPermitted(StoreError):
    """The database refused the change for this actor (row-level security)."""


class ChatRateLimited(StoreError):
    """The author already wrote as many chat messages to this game as the window allows."""


def is_ai_seat(seat: Seat) -> bool:
    return seat is not None and seat.get("kind") == "ai"


def holds(seat: Seat, user_id: str | None) -> bool:
    """`user_id` holds `seat` as a human player."""
    return (
        user_id is not None
        and seat is not None
        and seat.get("kind") == "human"
        and seat.get("user_id") == user_id
    )


def seats_held_by(seats: Mapping[str, Seat], user_id: str | None) -> list[str]:
    """The seats `user_id` holds as a human player, in turn order."""
    if user_id is None:
        return []
    return [name for name, seat in seats.items() if holds(seat, user_id)]


def human_seat(user_id: str | None, name: str | None) -> dict[str, Any]:
    """The seat of a human player, with the display name they take it with (if known)."""
    seat: dict[str, Any] = {"kind": "human", "user_id": user_id}
    if name is not None:
        seat["name"] = name
    return seat


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who a store call is made for. Postgres runs the call as this identity (RLS)."""

    user_id: str | None  # None: anonymous
    claims: dict[str, Any] | None = None  # the verified JWT claims of a signed-in user
    is_server: bool = False  # the server's own identity (AI moves, housekeeping)
    # The user's display name, for the seats it takes (set by `Profiles.named`).
    name: str | None = None

    SERVER: ClassVar[Actor]
    ANONYMOUS: ClassVar[Actor]


Actor.SERVER = Actor(user_id=None, is_server=True)
Actor.ANONYMOUS = Actor(user_id=None)


@dataclass
class GameRecord:
    """One game as stored: the current state and everything the lobby shows."""

    game_id: str  # UUID string
    game_type: str
    status: GameStatus
    seats: dict[str, Seat]  # in turn order
    state: dict[str, Any]  # GameState.to_json()
    version: int
    public: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    # The seat to move while active (else None), as the rules say: set by the service
    # so the Postgres store can check it without knowing any game's rules. A hint
    # for writing, derived from `state`: not every store reads it back.
    turn: str | None = field(default=None, compare=False)
    clock: dict[str, Any] | None = None  # timecontrol.Clock.to_json(); None: untimed
    # The invite code of a private game (None: none); set at creation, never changed.
    # Read back only for the server and the game's seated players.
    invite: str | None = field(default=None, compare=False)
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)

    def __copy__(self) -> GameRecord:
        # What copy.copy does, without its reduce protocol: a third of the cost, and
        # every change copies its game's record once.
        copied = object.__new__(GameRecord)
        copied.__dict__.update(self.__dict__)
        return copied


def may_see(game: GameRecord, actor: Actor) -> bool:
    """The visibility rule every store applies: public, a seated human, or the server."""
    return game.public or actor.is_server or bool(seats_held_by(game.seats, actor.user_id))


@dataclass
class EventRecord:
    """One state change: the event that moved `game_id` from `version - 1` to `version`.

    `request_id` is the client message `id` (or None); with `user_id` it makes
    a move idempotent: the store refuses a second event with the same pair.
    """

    game_id: str
    version: int
    kind: EventKind
    seat: str | None = None
    move: Any = None  # normal form (chess UCI str, grid int); None for non-moves
    san: str | None = None
    user_id: str | None = None  # who caused it; None for the server's AI
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # e.g. {"result": {...}}
    at: datetime = field(default_factory=utc_now)


ChatRoom = Literal["players", "spectators"]


@dataclass
class ChatRecord:
    """One chat message of a game; `seq` (1, 2, ... per game) is assigned by the store."""

    game_id: str
    room: ChatRoom
    user_id: str
    text: str
    request_id: str | None = None  # the client message `id`: stored once per author
    seq: int = 0
    at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class ChatLimit:
    """At most `count` messages per author and game within `window_seconds`."""

    count: int = 5
    window_seconds: float = 10.0


def check_event_matches(game: GameRecord, event: EventRecord) -> None:
    """A programming error, not a race: the event must describe this game's new version."""
    if event.game_id != game.game_id or event.version != game.version:
        raise ValueError(
            f"event ({event.game_id} v{event.version}) does not match "
            f"game ({game.game_id} v{game.version})"
        )


class GameStore(Protocol):
    """Async persistence. Methods never block the event loop."""

    async def open(self) -> None:
        """Connect / create the schema if the store owns it."""

    async def close(self) -> None: ...

    async def health(self) -> bool:
        """True when the store answers a trivial query."""

    async def create_game(self, game: GameRecord, actor: Actor) -> None:
        """Insert a new game at its initial version (no event for version 0)."""

    async def get_game(self, game_id: str, actor: Actor) -> GameRecord | None:
        """The game if it exists and `actor` may see it, else None."""

    async def list_games(
        self,
        actor: Actor,
        *,
        game_type: str | None = None,
        status: GameStatus | None = None,
        limit: int = 50,
    ) -> list[GameRecord]:
        """Games `actor` may see (public, or seated in), newest first."""

    async def commit_change(self, game: GameRecord, event: EventRecord, actor: Actor) -> None:
        """Store `game` (at `game.version`) and `event` (same version) atomically.

        Raises `StaleVersion` unless the stored version is `game.version - 1`,
        `DuplicateRequest` if (`event.user_id`, `event.request_id`) was stored before for
        this game, and `NotPermitted` if row-level security refuses the actor.
        """

    async def events_after(self, game_id: str, version: int, actor: Actor) -> list[EventRecord]:
        """Events with a version greater than `version`, in order."""

    async def find_request(
        self, game_id: str, user_id: str, request_id: str, actor: Actor
    ) -> int | None:
        """The version of the event stored for this request id, if any."""

    async def count_games(self) -> dict[GameStatus, int]:
        """How many games there are of each status (absent: none), read as the server."""

    async def public_game_ids(self, game_ids: list[str]) -> set[str]:
        """The public games among `game_ids`, in one read (ids of no game are left out).

        What may be shown about a game id to anyone (`GET /api/connections`).
        """

    async def active_timed_games(self) -> list[GameRecord]:
        """Active games with a clock, read as the server identity (to arm their timers)."""

    async def active_ai_games(self) -> list[GameRecord]:
        """Active games with at least one AI seat, read as the server identity.

        The server calls it on start to resume AI turns (AI-vs-AI games) after a restart.
        """

    async def append_chat(self, message: ChatRecord, limit: ChatLimit, actor: Actor) -> int:
        """Store `message` with its game's next `seq` (returned), atomically across processes.

        Raises `DuplicateRequest` (its `version` is the stored seq) if the author stored
        this `request_id` in this game before, `ChatRateLimited` if the author already
        has `limit.count` messages in this game within `limit.window_seconds` before
        `message.at`, and `NotPermitted` if row-level security refuses the actor.
        Nothing is stored in either case.
        """

    async def chat_after(
        self, game_id: str, room: ChatRoom, after: int, limit: int, actor: Actor
    ) -> list[ChatRecord]:
        """The messages of `room` with a seq above `after`, in seq order, at most `limit`.

        Empty when `actor` may not see the game (the service checks the room's readers).
        """
