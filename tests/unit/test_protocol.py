"""The wire protocol as code: decoding client frames, the builders, codes and schemas.

Every expectation is checked against docs/protocol.md, the project's copy of
../shared/PROTOCOL.md (the binding contract):
the tables and code lists are read from that file, not copied here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socket_server import protocol
from socket_server.protocol import (
    CLIENT_MESSAGES,
    PONG,
    PROTOCOL_VERSION,
    SERVER_MESSAGES,
    Abort,
    AiMove,
    ClientMessage,
    CloseCode,
    Draw,
    ErrorCode,
    Event,
    Join,
    Move,
    Ping,
    ProtocolError,
    Resign,
    Result,
    Snapshot,
    Sync,
    You,
    decode_client_message,
    message_schemas,
)
from tests.conftest import PROJECT_ROOT, shared_file

# The project's copy of the contract (a fresh clone has no ../shared); the test below
# holds it to the shared original.
PROTOCOL_MD = (PROJECT_ROOT / "docs" / "protocol.md").read_text()

# PROTOCOL.md, "The snapshot" (version 1).
SNAPSHOT_FIELDS = {
    "game_id",
    "game_type",
    "version",
    "status",
    "seats",
    "turn",
    "board",
    "legal_moves",
    "moves",
    "last_move",
    "result",
    "public",
    "created_at",
}
# Snapshot fields added later in PROTOCOL.md ("additions to version 1").
ADDED_SNAPSHOT_FIELDS = {"rated", "clock", "invite"}
GAME_ID = "00000000-0000-4000-8000-0000000000bb"


# -- reading PROTOCOL.md -------------------------------------------------------------------
def section(title: str) -> str:
    """The text of the markdown section headed `title`, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#)", PROTOCOL_MD, re.M | re.S)
    assert match is not None, f"PROTOCOL.md has no section {title!r}"
    return match.group(1)


def table_first_column(title: str) -> list[str]:
    """The first cell of each body row of the table in section `title`."""
    rows = [line for line in section(title).splitlines() if line.startswith("|")]
    cells = [row.split("|")[1].strip() for row in rows[2:]]  # after the header and ---
    assert cells, f"no table in {title!r}"
    return cells


def documented_error_codes() -> set[str]:
    text = section("Error codes").split("A rejected message")[0]
    return set(re.findall(r"`([a-z_]+)`", text))


def documented_close_codes() -> set[int]:
    return {int(cell) for cell in table_first_column("Close codes")}


def documented_types(title: str) -> set[str]:
    return {cell.strip("`") for cell in table_first_column(title)}


def test_the_contract_is_read_as_expected() -> None:
    """Guards the parsing above: a change of layout must fail here, not pass silently."""
    assert "bad_message" in documented_error_codes()
    assert len(documented_error_codes()) == 12
    assert {1000, 4429} <= documented_close_codes()
    assert {"hello", "pong"} <= documented_types("Server to client")
    assert {"join", "ping"} <= documented_types("Client to server")


# -- decoding ----------------------------------------------------------------------------------
def decode_error(frame: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.message
    return caught.value


@pytest.mark.parametrize("frame", ["not json", "{", b"\xff\xfe", "", '{"type": "ping"} x'])
def test_a_frame_that_is_not_json_is_a_bad_message(frame: str | bytes) -> None:
    error = decode_error(frame)
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref is None


@pytest.mark.parametrize("frame", ["[]", '[{"type": "ping"}]', "null", "3", '"ping"', "true"])
def test_a_frame_that_is_not_an_object_is_a_bad_message(frame: str) -> None:
    error = decode_error(frame)
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref is None


@pytest.mark.parametrize(
    "frame", ['{"id": "a1"}', '{"type": 3, "id": "a1"}', '{"type": null, "id": "a1"}']
)
def test_a_missing_or_non_string_type_is_a_bad_message_with_the_ref(frame: str) -> None:
    error = decode_error(frame)
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref == "a1"


def test_an_unknown_type_is_unknown_type_with_the_ref() -> None:
    error = decode_error('{"type": "teleport", "id": "q7"}')
    assert error.code == ErrorCode.UNKNOWN_TYPE and error.ref == "q7"
    assert "teleport" in error.message
    assert decode_error('{"type": "Join"}').code == ErrorCode.UNKNOWN_TYPE  # case matters


def test_an_unknown_type_without_an_id_has_no_ref() -> None:
    error = decode_error('{"type": "teleport"}')
    assert error.code == ErrorCode.UNKNOWN_TYPE and error.ref is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "move"},  # `move` is required
        {"type": "move", "move": True},  # a bool is not an int
        {"type": "move", "move": 4.0},
        {"type": "move", "move": None},
        {"type": "move", "move": [4]},
        {"type": "move", "move": 4, "version": True},
        {"type": "move", "move": 4, "version": "3"},
        {"type": "move", "move": 4, "version": -1},
        {"type": "move", "move": 4, "version": 1.5},
        {"type": "ai_move", "level": 0},
        {"type": "ai_move", "level": 11},
        {"type": "ai_move", "level": True},
        {"type": "ai_move", "level": "5"},
        {"type": "join", "seat": 1},
        {"type": "join", "seat": True},
        {"type": "draw"},
        {"type": "draw", "action": "maybe"},
        {"type": "draw", "action": 1},
        {"type": "sync", "since": "2"},
        {"type": "sync", "since": -1},
        {"type": "sync", "since": False},
    ],
)
def test_a_field_of_the_wrong_type_is_a_bad_message_with_the_ref(message: dict[str, Any]) -> None:
    error = decode_error(json.dumps({**message, "id": "m-1"}))
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref == "m-1"
    assert message["type"] in error.message


@pytest.mark.parametrize("bad_id", [5, True, ["a"], {"a": 1}])
def test_an_id_that_is_not_a_string_is_refused_without_a_ref(bad_id: Any) -> None:
    error = decode_error(json.dumps({"type": "ping", "id": bad_id}))
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref is None


def test_a_null_id_is_no_id() -> None:
    assert decode_client_message('{"type": "ping", "id": null}') == Ping(id=None)


def test_an_over_long_id_is_refused_and_never_echoed() -> None:
    too_long = "x" * 65
    error = decode_error(json.dumps({"type": "ping", "id": too_long}))
    assert error.code == ErrorCode.BAD_MESSAGE and error.ref is None
    # Nor on the errors found before the fields are read.
    assert decode_error(json.dumps({"type": "nope", "id": too_long})).ref is None
    assert decode_error(json.dumps({"type": 1, "id": too_long})).ref is None


def test_an_id_of_64_characters_is_kept() -> None:
    longest = "y" * 64
    assert decode_client_message(json.dumps({"type": "ping", "id": longest})).id == longest
    error = decode_error(json.dumps({"type": "move", "id": longest}))
    assert error.ref == longest


def test_unknown_fields_are_ignored() -> None:
    message = decode_client_message('{"type": "move", "move": 4, "colour": "red", "x": {}}')
    assert message == Move(move=4)
    assert decode_client_message('{"type": "ping", "extra": [1, 2]}') == Ping()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "join"}, Join()),
        ({"type": "join", "seat": "o", "id": "j"}, Join(seat="o", id="j")),
        ({"type": "move", "move": "e2e4"}, Move(move="e2e4")),
        ({"type": "move", "move": 4, "version": 0, "id": "m"}, Move(move=4, version=0, id="m")),
        ({"type": "ai_move"}, AiMove()),
        ({"type": "ai_move", "level": 10}, AiMove(level=10)),
        ({"type": "ai_move", "level": 1}, AiMove(level=1)),
        ({"type": "resign", "id": "r"}, Resign(id="r")),
        ({"type": "draw", "action": "offer"}, Draw(action="offer")),
        ({"type": "draw", "action": "accept"}, Draw(action="accept")),
        ({"type": "draw", "action": "decline"}, Draw(action="decline")),
        ({"type": "abort"}, Abort()),
        ({"type": "sync"}, Sync()),
        ({"type": "sync", "since": 7}, Sync(since=7)),
        ({"type": "ping"}, Ping()),
    ],
)
def test_every_client_message_decodes_to_its_struct(
    message: dict[str, Any], expected: ClientMessage
) -> None:
    decoded = decode_client_message(json.dumps(message))
    assert type(decoded) is type(expected)
    assert decoded == expected
    assert decode_client_message(json.dumps(message).encode()) == expected  # bytes too


def test_every_documented_client_type_is_decoded() -> None:
    for kind in documented_types("Client to server"):
        decoded = decode_client_message(json.dumps({"type": kind, "move": 1, "action": "offer"}))
        assert decoded.__struct_config__.tag == kind


# -- the builders -----------------------------------------------------------------------------
def snapshot(**overrides: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "game_id": GAME_ID,
        "game_type": "tictactoe",
        "version": 3,
        "status": "active",
        "seats": {"x": {"kind": "human", "user_id": "u1"}, "o": {"kind": "ai", "level": 5}},
        "turn": "o",
        "board": {"cells": ["x", None, None, None, "o", None, None, None, "x"]},
        "legal_moves": [1, 2, 3, 5, 6, 7],
        "moves": 3,
        "last_move": {"seat": "x", "move": 8},
        "result": None,
        "public": True,
        "created_at": "2024-01-02T03:04:05+00:00",
    }
    return Snapshot(**{**fields, **overrides})


def decoded(data: bytes) -> dict[str, Any]:
    assert isinstance(data, bytes)
    value = json.loads(data)
    assert isinstance(value, dict)
    return value


def snapshot_json(**overrides: Any) -> dict[str, Any]:
    return json.loads(msgspec.json.encode(snapshot(**overrides)))


def test_hello() -> None:
    you = You(user_id="u1", seat="x", role="player")
    assert decoded(protocol.hello(GAME_ID, you)) == {
        "type": "hello",
        "protocol": 1,
        "game_id": GAME_ID,
        "you": {"user_id": "u1", "seat": "x", "role": "player"},
    }
    spectator = decoded(protocol.hello(GAME_ID, You(user_id=None, seat=None, role="spectator")))
    assert spectator["you"] == {"user_id": None, "seat": None, "role": "spectator"}
    assert PROTOCOL_VERSION == 1


def test_state_is_the_snapshot_fields_and_its_type() -> None:
    message = decoded(protocol.state(snapshot()))
    assert message == {"type": "state", **snapshot_json()}
    assert set(message) - {"type"} >= SNAPSHOT_FIELDS
    assert set(message) - {"type"} <= SNAPSHOT_FIELDS | ADDED_SNAPSHOT_FIELDS


def test_state_of_a_finished_game_has_its_result_and_no_turn() -> None:
    finished = snapshot(
        status="finished", turn=None, legal_moves=[], result=Result("x", "three_in_a_row")
    )
    message = decoded(protocol.state(finished))
    assert message["result"] == {"winner": "x", "reason": "three_in_a_row"}
    assert message["turn"] is None and message["legal_moves"] == []
    drawn = decoded(protocol.state(snapshot(result=Result(None, "board_full"))))
    assert drawn["result"] == {"winner": None, "reason": "board_full"}


def test_update_is_the_snapshot_with_its_version_and_event() -> None:
    event = Event(kind="move", seat="x", move=8)
    message = decoded(protocol.update(snapshot(), event))
    assert message == {
        "type": "update",
        "event": {"kind": "move", "seat": "x", "move": 8},
        **snapshot_json(),
    }
    assert message["version"] == 3


def test_state_and_update_are_their_structs_encoded_and_an_update_has_no_invite() -> None:
    invited = snapshot(invite="c0de")
    as_struct = protocol.encode(protocol.State(**msgspec.structs.asdict(invited)))
    assert protocol.state(invited) == as_struct  # the same bytes
    assert decoded(protocol.state(invited))["invite"] == "c0de"
    event = Event(kind="join", seat="o")
    shared = msgspec.structs.replace(invited, invite=msgspec.UNSET)
    expected = protocol.Update(event=event, **msgspec.structs.asdict(shared))
    # The same object (the struct puts `event` first).
    assert decoded(protocol.update(invited, event)) == decoded(protocol.encode(expected))
    assert "invite" not in decoded(protocol.update(invited, event))


def test_an_update_event_carries_only_the_fields_that_apply() -> None:
    join = decoded(protocol.update(snapshot(), Event(kind="join", seat="o")))
    assert join["event"] == {"kind": "join", "seat": "o"}
    draw = decoded(protocol.update(snapshot(), Event(kind="draw")))
    assert draw["event"] == {"kind": "draw"}
    chess = decoded(protocol.update(snapshot(), Event("move", "white", "g1f3", "Nf3")))
    assert chess["event"] == {"kind": "move", "seat": "white", "move": "g1f3", "san": "Nf3"}
    # A move in normal form 0 is a move, not an absent field.
    first_cell = decoded(protocol.update(snapshot(), Event(kind="move", seat="x", move=0)))
    assert first_cell["event"] == {"kind": "move", "seat": "x", "move": 0}


def test_thinking() -> None:
    assert decoded(protocol.thinking(GAME_ID, "o", 4, -35, [1, 2], 1234)) == {
        "type": "thinking",
        "game_id": GAME_ID,
        "seat": "o",
        "depth": 4,
        "score": -35,
        "pv": [1, 2],
        "nodes": 1234,
    }


def test_ack() -> None:
    assert decoded(protocol.ack("m-1", 12)) == {"type": "ack", "ref": "m-1", "version": 12}


def test_error_with_and_without_ref() -> None:
    assert decoded(protocol.error(ErrorCode.NOT_YOUR_TURN, "wait", "m-2")) == {
        "type": "error",
        "code": "not_your_turn",
        "message": "wait",
        "ref": "m-2",
    }
    assert decoded(protocol.error(ErrorCode.BAD_MESSAGE, "not JSON")) == {
        "type": "error",
        "code": "bad_message",
        "message": "not JSON",
    }


def test_presence() -> None:
    assert decoded(protocol.presence(GAME_ID, {"x": True, "o": False}, 3)) == {
        "type": "presence",
        "game_id": GAME_ID,
        "online": {"x": True, "o": False},
        "spectators": 3,
    }


def test_pong() -> None:
    assert decoded(PONG) == {"type": "pong"}


def test_draw_offer_and_declined_extensions() -> None:
    assert decoded(protocol.draw_offer(GAME_ID, "x")) == {
        "type": "draw_offer",
        "game_id": GAME_ID,
        "seat": "x",
    }
    assert decoded(protocol.draw_declined(GAME_ID, "o")) == {
        "type": "draw_declined",
        "game_id": GAME_ID,
        "seat": "o",
    }


def test_the_header_reads_what_the_fanout_needs() -> None:
    header = protocol.read_header(protocol.update(snapshot(), Event(kind="move", seat="x")))
    assert (header.type, header.version) == ("update", 3)
    assert header.seats == snapshot().seats
    offer = protocol.read_header(protocol.draw_offer(GAME_ID, "x"))
    assert (offer.type, offer.seat, offer.version) == ("draw_offer", "x", None)


def test_the_header_of_the_update_built_last_is_the_one_its_bytes_hold() -> None:
    """The update built last comes with its header (the bytes are not read again); the
    same bytes from elsewhere (a copy, as from Redis) are read, and the two agree."""
    data = protocol.update(snapshot(version=7), Event(kind="move", seat="x", move=1))
    kept = protocol.read_header(data)
    read = protocol.read_header(bytes(bytearray(data)))
    assert kept is not read
    assert kept == read
    assert (read.type, read.version, read.seats) == ("update", 7, snapshot().seats)
    protocol.update(snapshot(version=8), Event(kind="move", seat="o", move=2))
    assert protocol.read_header(data).version == 7  # a newer build changes nothing for it


# -- the codes -------------------------------------------------------------------------------
# Error codes the server adds (docs/protocol-notes.md); PROTOCOL.md's list is extended
# additively.
SERVER_ERROR_CODES = {"unavailable"}


def test_error_codes_are_exactly_the_documented_ones() -> None:
    assert {code.value for code in ErrorCode} == documented_error_codes() | SERVER_ERROR_CODES
    assert not SERVER_ERROR_CODES & documented_error_codes()
    assert len(ErrorCode) == len(documented_error_codes() | SERVER_ERROR_CODES)


def test_close_codes_are_the_documented_ones_plus_the_servers_own() -> None:
    values = {code.value for code in CloseCode}
    assert values == documented_close_codes() | {1008, 1013}
    assert CloseCode.SLOW_CONSUMER == 1008
    assert CloseCode.TRY_AGAIN_LATER == 1013
    # the ones the server adds (docs/protocol-notes.md)
    assert not {1008, 1013} & documented_close_codes()


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (CloseCode.NORMAL, 1000),
        (CloseCode.GOING_AWAY, 1001),
        (CloseCode.MESSAGE_TOO_BIG, 1009),
        (CloseCode.INTERNAL_ERROR, 1011),
        (CloseCode.UNAUTHORIZED, 4401),
        (CloseCode.FORBIDDEN, 4403),
        (CloseCode.NOT_FOUND, 4404),
        (CloseCode.IDLE, 4408),
        (CloseCode.FLOOD, 4429),
    ],
)
def test_each_close_code_has_its_documented_meaning(code: CloseCode, value: int) -> None:
    assert code.value == value


# -- the schemas -------------------------------------------------------------------------------
SchemaError = AssertionError


def check(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str = "$") -> None:
    """A structural JSON Schema check of the keywords msgspec emits (no new dependency)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        assert name in defs, f"{path}: dangling $ref {schema['$ref']}"
        check(value, defs[name], defs, path)
    if "anyOf" in schema:
        _check_any_of(value, schema["anyOf"], defs, path)
    _check_scalar(value, schema, path)
    if isinstance(value, dict):
        _check_object(value, schema, defs, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            check(item, schema["items"], defs, f"{path}[{index}]")


def _check_any_of(
    value: Any, options: list[dict[str, Any]], defs: dict[str, Any], path: str
) -> None:
    failures = []
    for option in options:
        try:
            check(value, option, defs, path)
            return
        except SchemaError as error:
            failures.append(str(error))
    raise SchemaError(f"{path}: matches no option of anyOf: {failures}")


def _check_scalar(value: Any, schema: dict[str, Any], path: str) -> None:
    if "const" in schema:
        assert value == schema["const"], f"{path}: {value!r} != const {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        assert _is_type(value, kind), f"{path}: {value!r} is not of type {kind}"
    if _is_type(value, "integer"):
        assert value >= schema.get("minimum", value), f"{path}: {value} < minimum"
        assert value <= schema.get("maximum", value), f"{path}: {value} > maximum"
    if isinstance(value, str):
        assert len(value) <= schema.get("maxLength", len(value)), f"{path}: too long"


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any], path: str
) -> None:
    for name in schema.get("required", []):
        assert name in value, f"{path}: missing required {name!r}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            check(item, properties[name], defs, f"{path}.{name}")
        elif isinstance(extra, dict):
            check(item, extra, defs, f"{path}.{name}")
        else:
            assert extra is not False, f"{path}: unexpected property {name!r}"


def _is_type(value: Any, kind: str) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return bool(checks[kind](value))


SCHEMAS = message_schemas()


def validate(direction: str, message: dict[str, Any]) -> None:
    check(message, SCHEMAS[direction][message["type"]], SCHEMAS["$defs"])


def test_schemas_cover_every_message_type() -> None:
    assert set(SCHEMAS["client"]) == {cls.__struct_config__.tag for cls in CLIENT_MESSAGES}
    assert set(SCHEMAS["server"]) == {cls.__struct_config__.tag for cls in SERVER_MESSAGES}
    assert documented_types("Client to server") <= set(SCHEMAS["client"])
    assert documented_types("Server to client") <= set(SCHEMAS["server"])
    # Every other message is one of the contract's additions (spelled out in its prose,
    # e.g. `{"type": "claim_victory"}`) or an extension docs/protocol-notes.md names.
    notes = (PROJECT_ROOT / "docs" / "protocol-notes.md").read_text()
    for direction, table in (("client", "Client to server"), ("server", "Server to client")):
        for kind in set(SCHEMAS[direction]) - documented_types(table):
            spelled = f'"type": "{kind}"' in PROTOCOL_MD or f"`{kind}`" in notes
            assert spelled, f"{direction} message {kind!r} is neither in the contract nor noted"


def test_every_schema_requires_its_own_type_tag() -> None:
    for direction in ("client", "server"):
        for kind, schema in SCHEMAS[direction].items():
            resolved = SCHEMAS["$defs"][schema["$ref"].removeprefix("#/$defs/")]
            assert "type" in resolved["required"], kind
            check(kind, resolved["properties"]["type"], SCHEMAS["$defs"])
            with pytest.raises(SchemaError):
                check("other", resolved["properties"]["type"], SCHEMAS["$defs"])


def test_the_error_code_schema_is_the_error_code_list() -> None:
    assert set(SCHEMAS["$defs"]["ErrorCode"]["enum"]) == documented_error_codes() | (
        SERVER_ERROR_CODES
    )


def every_builder_output() -> list[bytes]:
    finished = snapshot(status="finished", turn=None, legal_moves=[], result=Result("x", "r"))
    return [
        protocol.hello(GAME_ID, You(user_id="u1", seat="x", role="player")),
        protocol.hello(GAME_ID, You(user_id=None, seat=None, role="spectator")),
        protocol.state(snapshot()),
        protocol.state(finished),
        protocol.state(snapshot(status="waiting", turn=None, seats={"x": None, "o": None})),
        protocol.update(snapshot(), Event(kind="move", seat="x", move=8)),
        protocol.update(snapshot(), Event(kind="draw")),
        protocol.update(snapshot(last_move=None, moves=0), Event(kind="join", seat="o")),
        protocol.thinking(GAME_ID, "o", 4, -35, [1, 2], 1234),
        protocol.ack("m-1", 12),
        protocol.error(ErrorCode.NOT_YOUR_TURN, "wait", "m-2"),
        protocol.error(ErrorCode.INTERNAL, "oops"),
        protocol.presence(GAME_ID, {"x": True, "o": False}, 3),
        PONG,
        protocol.draw_offer(GAME_ID, "x"),
        protocol.draw_declined(GAME_ID, "o"),
        protocol.chat(
            protocol.ChatMessage(
                game_id=GAME_ID,
                room="players",
                seq=1,
                user_id="u1",
                name="Guest u1",
                text="hi",
                at="2026-01-01T00:00:00+00:00",
            )
        ),
        protocol.announcement("maintenance", "2026-01-01T00:00:00+00:00"),
        protocol.rematch_offered(GAME_ID, "x"),
        protocol.rematch_created(GAME_ID, "00000000-0000-4000-8000-000000000001"),
    ]


def test_every_builders_output_validates_against_its_schema() -> None:
    outputs = [decoded(data) for data in every_builder_output()]
    assert {message["type"] for message in outputs} == set(SCHEMAS["server"])
    for message in outputs:
        validate("server", message)


def test_the_schema_check_rejects_what_the_schemas_forbid() -> None:
    """The validator above is not vacuous: each of these breaks its schema."""
    ack = decoded(protocol.ack("m-1", 12))
    broken: list[tuple[str, dict[str, Any]]] = [
        ("server", {k: v for k, v in ack.items() if k != "version"}),
        ("server", {**ack, "version": "12"}),
        ("server", {**decoded(protocol.error(ErrorCode.INTERNAL, "x")), "code": "teapot"}),
        ("server", {**decoded(protocol.state(snapshot())), "status": "paused"}),
        ("server", {**decoded(protocol.state(snapshot())), "seats": {"x": {"kind": "ai"}}}),
        (
            "server",
            {**decoded(protocol.state(snapshot())), "seats": {"x": {"kind": "ai", "level": 11}}},
        ),
        ("server", {**decoded(protocol.update(snapshot(), Event(kind="draw"))), "event": {}}),
        ("client", {"type": "move"}),
        ("client", {"type": "ai_move", "level": 0}),
        ("client", {"type": "draw", "action": "maybe"}),
        ("client", {"type": "ping", "id": "z" * 65}),
        ("client", {"type": "sync", "since": True}),
    ]
    for direction, message in broken:
        with pytest.raises(SchemaError):
            validate(direction, message)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "join"},
        {"type": "join", "seat": "x", "id": "1"},
        {"type": "move", "move": "e2e4", "version": 3},
        {"type": "move", "move": 4},
        {"type": "ai_move", "level": 3},
        {"type": "resign"},
        {"type": "draw", "action": "offer"},
        {"type": "abort"},
        {"type": "sync", "since": 0},
        {"type": "ping", "id": "p"},
    ],
)
def test_client_messages_that_decode_also_validate(message: dict[str, Any]) -> None:
    decode_client_message(json.dumps(message))
    validate("client", message)


def test_the_projects_copy_of_the_contract_is_the_shared_one() -> None:
    assert shared_file("PROTOCOL.md").read_text() == PROTOCOL_MD


# Frames near the real ones: a known or unknown `type`, the fields the messages have (and
# others), each with a value of any JSON type, sometimes nested or not an object at all.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**63) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_field_names = st.sampled_from(
    ["type", "id", "move", "version", "seat", "level", "action", "since", "text", "room",
     "user_id", "muted", "extra"]
)  # fmt: skip
_message_types = st.sampled_from([*protocol._BY_TYPE, "nope", ""]) | st.text(max_size=8)
_frames = st.one_of(
    st.builds(
        lambda kind, fields: json.dumps({"type": kind, **fields}),
        _message_types,
        st.dictionaries(_field_names, _json_values, max_size=4),
    ),
    st.builds(json.dumps, _json_values),
    st.text(max_size=20),
)


def _outcome(decode: Any, frame: str) -> Any:
    try:
        return decode(frame)
    except ProtocolError as error:
        return (error.code, error.message, error.ref)


@settings(max_examples=500, deadline=None)
@given(_frames)
def test_the_one_step_decoder_takes_and_refuses_what_the_step_by_step_one_does(frame: str) -> None:
    """`decode_client_message` decodes in one step and falls back to the step-by-step
    decoder only for what it refuses: the two agree on every frame, message or error."""
    assert _outcome(decode_client_message, frame) == _outcome(protocol._decode_step_by_step, frame)
