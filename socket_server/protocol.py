"""Wire protocol version 1: every message as a typed struct, the codes, encode/decode.

The one place a wire name is spelled. Client messages are decoded in two steps: the
frame must be a JSON object with a string `type`; then the object is converted
(strictly: no bool-for-int, no str-for-int) to that type's struct. Server messages
are structs tagged by `type`, each with one builder that returns the encoded bytes,
so a message is serialised once however many sockets receive it.
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, Union

import msgspec

PROTOCOL_VERSION = 1


class ErrorCode(StrEnum):
    """The `code` of an `error` message (and of a REST error body)."""

    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NOT_YOUR_TURN = "not_your_turn"
    ILLEGAL_MOVE = "illegal_move"
    STALE_VERSION = "stale_version"
    GAME_OVER = "game_over"
    SEAT_TAKEN = "seat_taken"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    # Extension: the server cannot store changes now (its disk is full, say); nothing
    # changed, the same request may succeed later.
    UNAVAILABLE = "unavailable"


class CloseCode(IntEnum):
    """Every WebSocket close code the server sends."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect with `since`
    SLOW_CONSUMER = 1008  # the client read too slowly: its send queue overflowed
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # over the server's or the address's socket cap
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    IDLE = 4408
    FLOOD = 4429


RequestId = Annotated[str, msgspec.Meta(max_length=64)]
Level = Annotated[int, msgspec.Meta(ge=1, le=10)]
Version = Annotated[int, msgspec.Meta(ge=0)]


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(text: str) -> bool:
    """True if `text` holds a control character (NUL, newline, ...): no id or name may."""
    return _CONTROL_CHARS.search(text) is not None


def check_request_id(request_id: str | None) -> None:
    """A request `id` is printable text; `ValueError` (a validation error) otherwise."""
    if request_id is not None and has_control_chars(request_id):
        raise ValueError("`id` must not contain control characters")


# -- client to server --------------------------------------------------------------------
class ClientMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    id: RequestId | None = None

    def __post_init__(self) -> None:
        check_request_id(self.id)


class Join(ClientMessage, tag="join"):
    seat: str | None = None


class Move(ClientMessage, tag="move"):
    move: str | int
    version: Version | None = None


class AiMove(ClientMessage, tag="ai_move"):
    level: Level | None = None


class Resign(ClientMessage, tag="resign"):
    pass


class Draw(ClientMessage, tag="draw"):
    action: Literal["offer", "accept", "decline"]


class Abort(ClientMessage, tag="abort"):
    """Extension: the creator aborts a game that has not started (see docs)."""


class ClaimVictory(ClientMessage, tag="claim_victory"):
    """Win a game whose every opponent has been offline long enough (PROTOCOL.md)."""


class Sync(ClientMessage, tag="sync"):
    since: Version | None = None


class Ping(ClientMessage, tag="ping"):
    pass


ChatRoomName = Literal["players", "spectators"]
CHAT_MAX_CHARS = 500


class Chat(ClientMessage, tag="chat"):
    """A chat message; `room` defaults to the caller's own (PROTOCOL.md "Chat")."""

    text: str
    room: ChatRoomName | None = None


class Rematch(ClientMessage, tag="rematch"):
    """Extension: ask for a rematch of this finished game (as POST /api/games/{id}/rematch)."""


class Mute(ClientMessage, tag="mute"):
    """Extension: stop (or resume) delivering `user_id`'s chat to this socket."""

    user_id: Annotated[str, msgspec.Meta(max_length=64)]
    muted: bool


CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (
    Join,
    Move,
    AiMove,
    Resign,
    Draw,
    Abort,
    ClaimVictory,
    Sync,
    Ping,
    Chat,
    Mute,
    Rematch,
)
_BY_TYPE: dict[str, type[ClientMessage]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in CLIENT_MESSAGES
}


class ProtocolError(Exception):
    """A client message that cannot be decoded; `ref` is its id when that was readable."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


_json_decoder = msgspec.json.Decoder()
# Every client message by its `type` tag, in one step (no dict built, then converted).
_client_decoder = msgspec.json.Decoder(Union[CLIENT_MESSAGES])  # noqa: UP007


def decode_client_message(frame: str | bytes) -> ClientMessage:
    """The message in `frame`; `ProtocolError` with the reason (and its `id`) if none."""
    try:
        message: ClientMessage = _client_decoder.decode(frame)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return _decode_step_by_step(frame)  # it raises the error that says what is wrong
    return message


def _decode_step_by_step(frame: str | bytes) -> ClientMessage:
    try:
        raw = _json_decoder.decode(frame)
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "the message is not valid JSON") from None
    except RecursionError:  # msgspec's nesting limit: a frame like [[[[...]]]]
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "the message is nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    ref = raw.get("id")
    usable = isinstance(ref, str) and len(ref) <= 64 and not has_control_chars(ref)
    ref = ref if usable else None
    kind = raw.pop("type", None)
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message needs a string `type`", ref)
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", ref)
    try:
        return msgspec.convert(raw, cls, strict=True)
    except msgspec.ValidationError as error:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{kind}: {error}", ref) from None


# -- server to client --------------------------------------------------------------------
SEAT_SCHEMA = {
    "description": (
        'null (empty), {"kind": "human", "user_id", "name"} (the display name the seat was'
        ' taken with) or {"kind": "ai", "level"}'
    ),
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "kind": {"const": "human"},
                "user_id": {"type": "string"},
                "name": {"type": "string"},
                "rating": {"type": "integer"},
            },
            "required": ["kind", "user_id"],
        },
        {
            "type": "object",
            "properties": {
                "kind": {"const": "ai"},
                "level": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["kind", "level"],
        },
    ],
}
Seats = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="seat name -> seat", extra_json_schema={"additionalProperties": SEAT_SCHEMA}
    ),
]
GameStatusName = Literal["waiting", "active", "finished", "aborted"]
EventKind = Literal["join", "move", "resign", "draw", "abort", "finish", "timeout", "claim"]


LastMoveJson = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="the last move in normal form (chess adds `san`)",
        extra_json_schema={
            "properties": {"seat": {"type": "string"}, "move": {}, "san": {"type": "string"}},
            "required": ["seat", "move"],
        },
    ),
]


class Result(msgspec.Struct):
    winner: str | None
    reason: str


class Event(msgspec.Struct, omit_defaults=True):
    """What moved a game from `version - 1` to `version`."""

    kind: EventKind
    seat: str | None = None
    move: Any = None  # normal form: chess UCI, grid games an integer
    san: str | None = None


class ClockView(msgspec.Struct):
    """A timed game's clocks, exact at `server_time_ms` (Unix epoch ms on the server)."""

    initial_ms: int
    increment_ms: int
    delay_ms: int
    per_move_ms: int
    remaining_ms: dict[str, int]
    running: str | None
    server_time_ms: int


class Snapshot(msgspec.Struct, kw_only=True):
    """The whole game as PROTOCOL.md's "The snapshot" (`state`, `update`, REST)."""

    game_id: str
    game_type: str
    version: int
    status: GameStatusName
    seats: Seats
    turn: str | None
    board: dict[str, Any]
    legal_moves: list[Any]
    moves: int
    last_move: LastMoveJson | None
    result: Result | None
    public: bool
    created_at: str
    clock: ClockView | None = None
    rated: bool = False
    # Only in the `state` and REST snapshot of a seated player of a private game with a
    # free seat (never in an `update`, whose bytes every socket shares); absent otherwise.
    invite: str | msgspec.UnsetType = msgspec.UNSET


class ServerMessage(msgspec.Struct, kw_only=True, tag_field="type"):
    pass


class You(msgspec.Struct):
    user_id: str | None
    seat: str | None
    role: Literal["player", "spectator"]


class Hello(ServerMessage, tag="hello", kw_only=True):
    protocol: int = PROTOCOL_VERSION
    game_id: str
    you: You


class State(Snapshot, ServerMessage, tag="state"):
    pass


class Update(Snapshot, ServerMessage, tag="update"):
    event: Event


class Thinking(ServerMessage, tag="thinking"):
    game_id: str
    seat: str
    depth: int
    score: int
    pv: list[Any]
    nodes: int


class Ack(ServerMessage, tag="ack"):
    ref: str
    version: int


class Error(ServerMessage, tag="error", omit_defaults=True):
    code: ErrorCode
    message: str
    ref: str | None = None


class PresenceMessage(ServerMessage, tag="presence"):
    game_id: str
    online: dict[str, bool]
    spectators: int


class Pong(ServerMessage, tag="pong"):
    pass


class DrawOffer(ServerMessage, tag="draw_offer"):
    """Extension: `seat` offered a draw."""

    game_id: str
    seat: str


class DrawDeclined(ServerMessage, tag="draw_declined"):
    """Extension: `seat` declined the standing draw offer."""

    game_id: str
    seat: str


class ChatMessage(ServerMessage, tag="chat"):
    """A stored chat message, to every socket that reads `room`."""

    game_id: str
    room: ChatRoomName
    seq: int
    user_id: str
    name: str
    text: str
    at: str


class RematchMessage(ServerMessage, tag="rematch", omit_defaults=True):
    """A seat asked for a rematch (`offered_by`), or its new game exists (`new_game_id`)."""

    game_id: str
    offered_by: str | None = None
    new_game_id: str | None = None


class RematchReply(msgspec.Struct, omit_defaults=True):
    """`POST /api/games/{id}/rematch`: `game_id` (the new game) once created."""

    status: Literal["offered", "created"]
    game_id: str | None = None


class Announcement(ServerMessage, tag="announcement"):
    """An administrator's message to every open socket of every process."""

    text: str
    at: str


SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (
    Hello,
    State,
    Update,
    Thinking,
    Ack,
    Error,
    PresenceMessage,
    Pong,
    DrawOffer,
    DrawDeclined,
    ChatMessage,
    Announcement,
    RematchMessage,
)


# -- the lobby socket (/ws/lobby): its own messages, not a game channel's ---------------
class LobbyMessage(msgspec.Struct, kw_only=True, tag_field="type"):
    pass


class LobbyYou(msgspec.Struct):
    user_id: str | None


class LobbyHello(LobbyMessage, tag="hello", kw_only=True):
    protocol: int = PROTOCOL_VERSION
    you: LobbyYou


class SeekView(msgspec.Struct):
    """A waiting seek as the lobby shows it (`name`: its owner's display name)."""

    seek_id: str
    game_type: str
    clock: dict[str, Any] | None
    rated: bool
    name: str


class LobbyList(LobbyMessage, tag="lobby"):
    games: list[Snapshot]
    seeks: list[SeekView]


class LobbyUpdate(LobbyMessage, tag="lobby_update"):
    added: list[Snapshot | SeekView]
    removed: list[str]  # game or seek ids


class Paired(LobbyMessage, tag="paired"):
    seek_id: str
    game_id: str
    game_type: str


class SeekReply(msgspec.Struct, omit_defaults=True):
    """`POST/GET/DELETE /api/seeks`: `game_id` only once paired."""

    seek_id: str
    status: Literal["waiting", "paired", "expired", "withdrawn"]
    game_id: str | None = None


LOBBY_MESSAGES: tuple[type[LobbyMessage], ...] = (LobbyHello, LobbyList, LobbyUpdate, Paired)

_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def hello(game_id: str, you: You) -> bytes:
    return encode(Hello(game_id=game_id, you=you))


def state(snapshot: Snapshot) -> bytes:
    """`State`'s bytes: the snapshot encoded once, behind the type (no copy into a `State`)."""
    return _tagged(b"state", snapshot)


def update(snapshot: Snapshot, event: Event) -> bytes:
    """`Update`'s bytes; shared by every socket of the game: never with an invite code."""
    if snapshot.invite is not msgspec.UNSET:
        snapshot = msgspec.structs.replace(snapshot, invite=msgspec.UNSET)
    data = _tagged(b"update", snapshot, b',"event":' + encode(event))
    global _last_update
    _last_update = (data, Header(type="update", version=snapshot.version, seats=snapshot.seats))
    return data


def _tagged(tag: bytes, snapshot: Snapshot, tail: bytes = b"") -> bytes:
    # A snapshot always has fields, so its object is never empty: `{` fields `}`.
    return b'{"type":"' + tag + b'",' + encode(snapshot)[1:-1] + tail + b"}"


def thinking(game_id: str, seat: str, depth: int, score: Any, pv: list[Any], nodes: int) -> bytes:
    return encode(
        Thinking(game_id=game_id, seat=seat, depth=depth, score=score, pv=pv, nodes=nodes)
    )


def ack(ref: str, version: int) -> bytes:
    return encode(Ack(ref=ref, version=version))


def error(code: ErrorCode, message: str, ref: str | None = None) -> bytes:
    return encode(Error(code=code, message=message, ref=ref))


def presence(game_id: str, online: dict[str, bool], spectators: int) -> bytes:
    return encode(PresenceMessage(game_id=game_id, online=online, spectators=spectators))


def draw_offer(game_id: str, seat: str) -> bytes:
    return encode(DrawOffer(game_id=game_id, seat=seat))


def draw_declined(game_id: str, seat: str) -> bytes:
    return encode(DrawDeclined(game_id=game_id, seat=seat))


def chat(message: ChatMessage) -> bytes:
    return encode(message)


def rematch_offered(game_id: str, seat: str) -> bytes:
    return encode(RematchMessage(game_id=game_id, offered_by=seat))


def rematch_created(game_id: str, new_game_id: str) -> bytes:
    return encode(RematchMessage(game_id=game_id, new_game_id=new_game_id))


def announcement(text: str, at: str) -> bytes:
    return encode(Announcement(text=text, at=at))


PONG = encode(Pong())


def message_schemas() -> dict[str, Any]:
    """JSON Schemas of every client and server message, from the structs above.

    `{"client": {type: schema}, "server": {type: schema}, "$defs": {...}}`; the
    AsyncAPI document and the JS client's type declarations are generated from it.
    """
    everything = (*CLIENT_MESSAGES, *SERVER_MESSAGES)
    schemas, defs = msgspec.json.schema_components(everything, ref_template="#/$defs/{name}")

    def by_type(classes: tuple[type[msgspec.Struct], ...], offset: int) -> dict[str, Any]:
        return {
            cls.__struct_config__.tag: schemas[offset + index]  # type: ignore[misc]
            for index, cls in enumerate(classes)
        }

    return {
        "client": by_type(CLIENT_MESSAGES, 0),
        "server": by_type(SERVER_MESSAGES, len(CLIENT_MESSAGES)),
        "$defs": defs,
    }


class Header(msgspec.Struct):
    """The part of a server message the fan-out needs (the rest is never decoded)."""

    type: str
    version: int | None = None
    seat: str | None = None  # of a draw offer
    seats: dict[str, Any] | None = None  # of an update: who sits where now
    room: str | None = None  # of a chat message: who reads it
    user_id: str | None = None  # of a chat message: its author (for mutes)


_header_decoder = msgspec.json.Decoder(Header)
# The update this process built last (on any thread: a replay on the reads thread
# builds updates too), with its header: published through the memory broker, the same
# bytes reach the fan-out, which then reads no header out of them (a pass over the
# whole update). One pair, swapped whole: a reader sees one or the other, and only the
# very bytes it was built with get the kept header.
_last_update: tuple[bytes, Header] = (b"", Header(type=""))


def read_header(data: bytes) -> Header:
    built, header = _last_update
    if data is built:
        return header
    return _header_decoder.decode(data)
