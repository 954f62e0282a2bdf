"""Typed server messages (msgspec Structs) and the decoder of socket frames.

Every Struct ignores fields it does not know and gives later additions of the protocol
defaults, so a newer server never breaks an older client. Anything this module cannot
type arrives as a `Notice` carrying the raw object, never as an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import msgspec

log = logging.getLogger("gamesocket_client")

# Seats in turn order, for the built-in game types (a game added on the server may
# have others: its snapshot's `seats` is the authority).
SEATS: dict[str, tuple[str, str]] = {
    "chess": ("white", "black"),
    "connect4": ("red", "yellow"),
    "tictactoe": ("x", "o"),
}

FINAL_STATUSES = frozenset({"finished", "aborted"})


class Seat(msgspec.Struct, frozen=True, kw_only=True):
    """A taken seat: a human (`user_id`, `name`, `rating`) or an AI (`level`)."""

    kind: str
    user_id: str | None = None
    level: int | None = None
    name: str | None = None
    rating: float | None = None


class LastMove(msgspec.Struct, frozen=True, kw_only=True):
    seat: str | None = None
    move: Any = None
    san: str | None = None


class Result(msgspec.Struct, frozen=True, kw_only=True):
    winner: str | None = None
    reason: str = ""


class Clock(msgspec.Struct, frozen=True, kw_only=True):
    """`remaining_ms` is exact at `server_time_ms`; only `running`'s time goes down."""

    initial_ms: int | None = None
    increment_ms: int | None = None
    delay_ms: int | None = None
    per_move_ms: int | None = None
    remaining_ms: dict[str, int] = msgspec.field(default_factory=dict)
    running: str | None = None
    server_time_ms: int | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The full state of a game, as every `state`, `update` and REST answer carries it."""

    game_id: str
    game_type: str
    version: int
    status: str
    seats: dict[str, Seat | None] = msgspec.field(default_factory=dict)
    turn: str | None = None
    board: dict[str, Any] = msgspec.field(default_factory=dict)
    legal_moves: list[Any] = msgspec.field(default_factory=list)
    moves: int = 0
    last_move: LastMove | None = None
    result: Result | None = None
    public: bool = True
    created_at: str = ""
    rated: bool = False
    clock: Clock | None = None
    invite: str | None = None

    @property
    def is_over(self) -> bool:
        """Finished or aborted: no move will ever change this game again."""
        return self.status in FINAL_STATUSES

    def seats_of(self, user_id: str | None) -> list[str]:
        """The seats `user_id` holds (two in a hot-seat game, none for a spectator)."""
        if user_id is None:
            return []
        return [
            name
            for name, seat in self.seats.items()
            if seat is not None and seat.kind == "human" and seat.user_id == user_id
        ]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """What an `update` changed: `join`, `move`, `resign`, `draw`, `abort`, `finish`, ..."""

    kind: str
    seat: str | None = None
    move: Any = None
    san: str | None = None


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """One state change: the event and the snapshot right after it."""

    event: Event
    snapshot: Snapshot

    @property
    def version(self) -> int:
        return self.snapshot.version


class SnapshotEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A whole snapshot in the update stream instead of an `Update`.

    `reason` is `start` for the snapshot an `updates()` stream begins with, and
    `state` when the server sent a full `state` (a resume it had no history for, or
    an answer to `sync`): changes between the previous version and this one have no
    `Update` of their own.
    """

    snapshot: Snapshot
    reason: Literal["start", "state"]

    @property
    def version(self) -> int:
        return self.snapshot.version


# What `GameSession.updates()` yields.
Change = Update | SnapshotEvent


class You(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str | None = None
    seat: str | None = None
    role: str = "spectator"


class Hello(msgspec.Struct, frozen=True, kw_only=True):
    protocol: int
    game_id: str | None = None
    you: You = msgspec.field(default_factory=You)


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    ref: str
    version: int


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str = ""
    ref: str | None = None


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Presence(msgspec.Struct, frozen=True, kw_only=True):
    online: dict[str, bool] = msgspec.field(default_factory=dict)
    spectators: int = 0
    game_id: str | None = None


class Thinking(msgspec.Struct, frozen=True, kw_only=True):
    """An AI's search in progress; `score` is from the side to move's view."""

    seat: str | None = None
    depth: int = 0
    score: float | None = None
    pv: list[Any] = msgspec.field(default_factory=list)
    nodes: int = 0
    game_id: str | None = None


class Chat(msgspec.Struct, frozen=True, kw_only=True):
    room: str = "players"
    text: str = ""
    seq: int = 0
    user_id: str | None = None
    name: str | None = None
    at: str | None = None
    game_id: str | None = None


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """Any other server message (`draw_offer`, `rematch`, `announcement`, new types)."""

    type: str
    data: dict[str, Any]


# What `GameSession.events()` yields: everything that is not a change, ack or pong.
ServerEvent = Presence | Thinking | Chat | ErrorReply | Notice
ServerMessage = Hello | Snapshot | Update | Ack | ErrorReply | Pong | ServerEvent


def _update(data: dict[str, Any]) -> Update:
    return Update(event=msgspec.convert(data["event"], Event), snapshot=_typed(data, Snapshot))


def _typed(data: dict[str, Any], kind: type[Any]) -> Any:
    return msgspec.convert(data, kind)


_PARSERS: dict[str, Callable[[dict[str, Any]], ServerMessage]] = {
    "hello": lambda data: _typed(data, Hello),
    "state": lambda data: _typed(data, Snapshot),
    "update": _update,
    "ack": lambda data: _typed(data, Ack),
    "error": lambda data: _typed(data, ErrorReply),
    "pong": lambda data: Pong(),
    "presence": lambda data: _typed(data, Presence),
    "thinking": lambda data: _typed(data, Thinking),
    "chat": lambda data: _typed(data, Chat),
}

_decoder = msgspec.json.Decoder()


def parse_message(frame: str | bytes) -> ServerMessage:
    """The typed message of one text frame.

    A frame that is not a JSON object raises `msgspec.DecodeError` (the caller treats
    the server as broken); a known type with fields this client cannot type becomes a
    `Notice` (logged), so one odd message never ends a session.
    """
    data = _decoder.decode(frame)
    if not isinstance(data, dict):
        raise msgspec.DecodeError("a server message must be a JSON object")
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        return Notice(type=str(kind), data=data)
    try:
        return parser(data)
    except (msgspec.ValidationError, KeyError, TypeError) as error:
        log.warning("unreadable %s message: %s", kind, error)
        return Notice(type=str(kind), data=data)


def snapshot_from(data: Any) -> Snapshot:
    """A REST answer's snapshot, typed."""
    result: Snapshot = msgspec.convert(data, Snapshot)
    return result
