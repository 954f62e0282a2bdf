"""The AsyncAPI 3.0 document of the WebSocket protocol, served at `GET /asyncapi.json`.

Generated from `protocol.message_schemas()`: every client and server message struct of
protocol.py is a message here, with the struct's JSON Schema as its payload, so the
document cannot drift from what the server decodes and sends. A message added to
protocol.py (to `CLIENT_MESSAGES` or `SERVER_MESSAGES`) appears here by itself; its
summary comes from `SUMMARIES` (or the struct's docstring). The close codes come from
`CloseCode` and the error codes from `ErrorCode`, each with its meaning below.

The document describes the server: it *receives* the client messages and *sends* the
server messages on one channel, `/ws/{game_type}/{game_id}`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from litestar import Request, get

from socket_server.protocol import PROTOCOL_VERSION, CloseCode, ErrorCode, message_schemas

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "game"
SCHEMAS = "#/components/schemas/"

# What each message is for (PROTOCOL.md's tables; extensions as in docs/protocol-notes.md).
SUMMARIES: dict[str, str] = {
    # client to server
    "join": "Take a seat (the first free one without `seat`).",
    "move": "Play for the caller's seat; with `version`, only if the game is still there.",
    "ai_move": "Let the server's AI play the caller's seat for this one move.",
    "resign": "The caller's seat resigns.",
    "draw": "Offer, accept or decline a draw.",
    "abort": "Extension: abort a game before its first move (its creator or a player).",
    "claim_victory": "Win a game whose every opponent seat has been offline long enough.",
    "sync": "Resend what was missed since `since` (missed updates, or one state).",
    "ping": "Keep-alive; answered with pong.",
    # server to client
    "hello": "First message after the connection opens: who you are.",
    "state": "The full snapshot: after hello (unless `since` is current) and on sync.",
    "update": "After each state change, in version order, never skipping a version: "
    "the event and the full snapshot.",
    "thinking": "While an AI computes a move, a few times a second at most.",
    "ack": "A client message with an `id` succeeded (`ref` is that id).",
    "error": "A client message failed; the connection stays open and nothing changed.",
    "presence": "Players or spectators connected or left (may be throttled).",
    "pong": "The answer to ping.",
    "draw_offer": "Extension: a player offered a draw (no version).",
    "draw_declined": "Extension: the other player declined it (no version).",
    "chat": "A chat line: sent by a client to a room; delivered to every socket reading it.",
    "announcement": "An administrator's announcement, to every open socket.",
}
CLOSE_MEANINGS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "normal closure",
    CloseCode.GOING_AWAY: "the server is shutting down; reconnect with `since`",
    CloseCode.SLOW_CONSUMER: "the client read too slowly: its send queue overflowed",
    CloseCode.MESSAGE_TOO_BIG: "a message was larger than the limit (default 64 KiB)",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.TRY_AGAIN_LATER: "the server's or the address's socket cap is reached",
    CloseCode.UNAUTHORIZED: "the token is missing, invalid or expired where one is required",
    CloseCode.FORBIDDEN: "the caller may not watch this game, or the page's origin is "
    "not allowed (GAMESOCKET_CORS_ORIGINS)",
    CloseCode.NOT_FOUND: "no such game, or a game type that this route does not serve",
    CloseCode.IDLE: "no message (not even ping) within the idle limit",
    CloseCode.FLOOD: "too many messages; the client should slow down",
}
ERROR_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.BAD_MESSAGE: "not JSON, not an object, a field of the wrong type or value",
    ErrorCode.UNKNOWN_TYPE: "a `type` the server does not know",
    ErrorCode.UNAUTHORIZED: "this needs a signed-in caller",
    ErrorCode.FORBIDDEN: "the caller may not do this",
    ErrorCode.NOT_FOUND: "no such game",
    ErrorCode.NOT_YOUR_TURN: "it is another seat's turn, or the game waits for players",
    ErrorCode.ILLEGAL_MOVE: "the game's rules refuse it",
    ErrorCode.STALE_VERSION: "the game is no longer at the `version` sent",
    ErrorCode.GAME_OVER: "the game is finished or aborted",
    ErrorCode.SEAT_TAKEN: "that seat (or every seat) is taken",
    ErrorCode.RATE_LIMITED: "too many messages for now",
    ErrorCode.INTERNAL: "the server failed; nothing changed",
    ErrorCode.UNAVAILABLE: "extension: the store cannot write now (a full disk, say); "
    "nothing changed, the same request may succeed later",
}
# Replies a client message can get, besides the updates a change sends to everyone.
REPLIES: dict[str, tuple[str, ...]] = {"ping": ("pong",), "sync": ("update", "state")}
DEFAULT_REPLIES = ("ack", "error")


def _meaning(table: dict[Any, str], member: Any) -> str:
    return table.get(member, member.name.lower().replace("_", " "))


def close_codes_markdown() -> str:
    rows = [f"| {code.value} | {_meaning(CLOSE_MEANINGS, code)} |" for code in CloseCode]
    return "\n".join(["| close code | meaning |", "| --- | --- |", *rows])


def error_codes_markdown() -> str:
    rows = [f"| `{code.value}` | {_meaning(ERROR_MEANINGS, code)} |" for code in ErrorCode]
    return "\n".join(["| error code | meaning |", "| --- | --- |", *rows])


def _description() -> str:
    return f"""\
The WebSocket protocol of gamesocket, version {PROTOCOL_VERSION}: JSON objects in UTF-8 text
frames, each with a `type`; unknown fields are ignored by both sides. Every `state` and
`update` carries the full snapshot of the game, and `version` increases by exactly one
with every change, so a client that remembers it reconnects with `?since=<version>` and
misses nothing. A client message may carry an `id` (at most 64 characters); the `ack` or
`error` that answers it carries it as `ref`, and a resent `id` is not applied twice.

The REST API is described by the OpenAPI document at `/schema`.

## Close codes

{close_codes_markdown()}

## Error codes (`error.code`)

{error_codes_markdown()}
"""


def _rewrite_refs(node: Any) -> Any:
    """msgspec's `#/$defs/X` references as `#/components/schemas/X`."""
    if isinstance(node, dict):
        return {
            key: (
                SCHEMAS + value.removeprefix("#/$defs/")
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _summary(kind: str, schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """`SUMMARIES`, else the struct's docstring, else the type."""
    name = str(schema.get("$ref", "")).removeprefix("#/$defs/")
    docstring = defs.get(name, {}).get("description")
    return SUMMARIES.get(kind) or docstring or f"`{kind}`"


def _message(
    kind: str, schema: dict[str, Any], defs: dict[str, Any], client: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": kind,
        "title": kind,
        "summary": _summary(kind, schema, defs),
        "contentType": "application/json",
        "payload": _rewrite_refs(schema),
    }
    if client:
        message["correlationId"] = {
            "description": "the optional `id`; its ack or error carries it as `ref`",
            "location": "$message.payload#/id",
        }
    elif kind in DEFAULT_REPLIES:
        message["correlationId"] = {
            "description": "the `id` of the client message answered",
            "location": "$message.payload#/ref",
        }
    return message


def _channel_ref(kind: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{CHANNEL}/messages/{kind}"}


def _operations(
    client: Iterable[str], server: Iterable[str], messages: dict[str, Any]
) -> dict[str, Any]:
    channel = {"$ref": f"#/channels/{CHANNEL}"}
    operations: dict[str, Any] = {}
    for kind in client:
        operations[f"receive_{kind}"] = {
            "action": "receive",
            "channel": channel,
            "summary": messages[kind]["summary"],
            "messages": [_channel_ref(kind)],
            "reply": {
                "channel": channel,
                "messages": [_channel_ref(r) for r in REPLIES.get(kind, DEFAULT_REPLIES)],
            },
        }
    for kind in server:
        operations[f"send_{kind}"] = {
            "action": "send",
            "channel": channel,
            "summary": messages[kind]["summary"],
            "messages": [_channel_ref(kind)],
        }
    return operations


def _channel(kinds: Iterable[str], game_types: list[str]) -> dict[str, Any]:
    return {
        "address": "/ws/{game_type}/{game_id}",
        "title": "A game's socket",
        "description": "Players and spectators of one game. `token` is required for "
        "players and for private games; `since` (a version) replays what came after it.",
        "servers": [{"$ref": "#/servers/gamesocket"}],
        "parameters": {
            "game_type": {"description": "the game type", "enum": game_types},
            "game_id": {"description": "the game's id (a UUID)"},
        },
        "messages": {kind: {"$ref": f"#/components/messages/{kind}"} for kind in kinds},
        "bindings": {
            "ws": {
                "method": "GET",
                "query": {
                    "type": "object",
                    "properties": {
                        "token": {
                            "type": "string",
                            "description": "an access token (a Supabase Auth token, or a "
                            "guest token from POST /api/auth/guest)",
                        },
                        "since": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "the last version the client has",
                        },
                    },
                },
                "bindingVersion": "0.1.0",
            }
        },
    }


def asyncapi_document(game_types: Iterable[str], host: str, secure: bool) -> dict[str, Any]:
    """The document for a server at `host` (`wss` when `secure`) playing `game_types`."""
    schemas = message_schemas()
    client, server = schemas["client"], schemas["server"]
    defs = schemas["$defs"]
    messages = {kind: _message(kind, schema, defs, True) for kind, schema in client.items()}
    messages |= {kind: _message(kind, schema, defs, False) for kind, schema in server.items()}
    components = _rewrite_refs(copy.deepcopy(schemas["$defs"]))
    components["CloseCode"] = {
        "type": "integer",
        "enum": [code.value for code in CloseCode],
        "description": "the close codes the server sends\n\n" + close_codes_markdown(),
    }
    if "ErrorCode" in components:
        components["ErrorCode"]["description"] = error_codes_markdown()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "gamesocket",
            "version": f"{PROTOCOL_VERSION}.0.0",
            "description": _description(),
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "gamesocket": {
                "host": host,
                "protocol": "wss" if secure else "ws",
                "description": "the server that served this document",
            }
        },
        "channels": {CHANNEL: _channel(messages, list(game_types))},
        "operations": _operations(client, server, messages),
        "components": {"messages": messages, "schemas": components},
    }


@get("/asyncapi.json", include_in_schema=False, media_type="application/json")
async def asyncapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the sockets of this server."""
    game_types = [game_type.name for game_type in request.app.state["gamesocket"].game_types]
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return asyncapi_document(game_types, host, request.url.scheme == "https")
