"""Wire protocol version 1: a validating decoder of client messages and byte encoders.

Decoding is two steps: the frame must be a JSON object with a string `type`; then the
object is converted (strictly: no bool-for-int, no str-for-int) to that type's Struct.
Encoders return bytes once per message; callers decode them to text once at most.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 1

# Every error code of PROTOCOL.md.
ERROR_CODES = frozenset(
    {
        "bad_message",
        "unknown_type",
        "unauthorized",
        "forbidden",
        "not_found",
        "not_your_turn",
        "illegal_move",
        "stale_version",
        "game_over",
        "seat_taken",
        "rate_limited",
        "internal",
    }
)

RequestId = Annotated[str, msgspec.Meta(max_length=64)]
Level = Annotated[int, msgspec.Meta(ge=1, le=10)]
Version = Annotated[int, msgspec.Meta(ge=0)]


class ClientMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    id: RequestId | None = None


class Join(ClientMessage):
    seat: str | None = None


class Move(ClientMessage):
    move: str | int
    version: Version | None = None


class AiMove(ClientMessage):
    level: Level | None = None


class Resign(ClientMessage):
    pass


class Draw(ClientMessage):
    action: Literal["offer", "accept", "decline"]


class Abort(ClientMessage):
    """Extension: the creator aborts a game that has not started (see docs)."""


class Sync(ClientMessage):
    since: Version | None = None


class Ping(ClientMessage):
    pass


MESSAGE_TYPES: dict[str, type[ClientMessage]] = {
    "join": Join,
    "move": Move,
    "ai_move": AiMove,
    "resign": Resign,
    "draw": Draw,
    "abort": Abort,
    "sync": Sync,
    "ping": Ping,
}


class ProtocolError(Exception):
    """A client message that cannot be decoded; `ref` is its id when that was readable."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


_json_decoder = msgspec.json.Decoder()


def decode_client_message(frame: str | bytes) -> ClientMessage:
    try:
        raw = _json_decoder.decode(frame)
    except msgspec.DecodeError:
        raise ProtocolError("bad_message", "the message is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    ref = raw.get("id")
    ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "a message needs a string `type`", ref)
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}", ref)
    raw.pop("type")
    try:
        return msgspec.convert(raw, cls, strict=True)
    except msgspec.ValidationError as error:
        raise ProtocolError("bad_message", f"{kind}: {error}", ref) from None


_encoder = msgspec.json.Encoder()


def encode(message: dict[str, Any]) -> bytes:
    return _encoder.encode(message)


def error_message(code: str, message: str, ref: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        body["ref"] = ref
    return encode(body)


def ack_message(ref: str, version: int) -> bytes:
    return encode({"type": "ack", "ref": ref, "version": version})


PONG = encode({"type": "pong"})


class Header(msgspec.Struct):
    """The part of a server message the fan-out needs (the rest is never decoded)."""

    type: str
    version: int | None = None
    seat: str | None = None  # of a draw offer
    seats: dict[str, Any] | None = None  # of an update: who sits where now


_header_decoder = msgspec.json.Decoder(Header)


def read_header(data: bytes) -> Header:
    return _header_decoder.decode(data)
