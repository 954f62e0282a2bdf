"""The AsyncAPI 3.0 document at /asyncapi.json, fetched from a real server and validated
with the AsyncAPI parser (npm `@asyncapi/parser`, installed into tests/asyncapi/ by
`npm ci` from its committed lock file).

It must parse with no error and no warning, list every message of PROTOCOL.md and
every extension this server has (exactly the structs of protocol.py), and describe
what the server really sends: the messages of a real game carry what their payload
schemas require.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from socket_server.asyncapi import CLOSE_MEANINGS, ERROR_MEANINGS, SUMMARIES
from socket_server.protocol import CLIENT_MESSAGES, SERVER_MESSAGES, CloseCode, ErrorCode
from tests.conftest import PROJECT_ROOT, npm_ci, require
from tests.server_harness import Api, ServerThread, connect

PACKAGE = PROJECT_ROOT / "tests" / "asyncapi"
# PROTOCOL.md's messages, both ways.
PROTOCOL_CLIENT = {"join", "move", "ai_move", "resign", "draw", "sync", "ping"}
PROTOCOL_SERVER = {"hello", "state", "update", "thinking", "ack", "error", "presence", "pong"}
# This server's extensions (docs/protocol-notes.md).
EXTENSIONS = {"abort", "claim_victory", "draw_offer", "draw_declined"}


def tags(classes: tuple[type, ...]) -> set[str]:
    return {cls.__struct_config__.tag for cls in classes}  # type: ignore[attr-defined]


def install_parser() -> None:
    require(shutil.which("node") is not None and shutil.which("npm") is not None, "node and npm")
    npm_ci(PACKAGE)


def validate(document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`node validate.mjs` on the document (stdin): its exit code and its report."""
    install_parser()
    node = shutil.which("node")
    assert node is not None
    run = subprocess.run(
        [node, "validate.mjs"],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        cwd=PACKAGE,
        timeout=120,
        check=False,
    )
    assert run.stdout.strip(), run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return run.returncode, report


async def fetch(api: Api) -> dict[str, Any]:
    reply = await api.http.get("/asyncapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = reply.json()
    return document


async def test_the_parser_accepts_it_with_every_message(api: Api, server: ServerThread) -> None:
    document = await fetch(api)
    code, report = validate(document)
    assert code == 0, report["errors"]
    assert report["errors"] == [] and report["warnings"] == [], report
    assert report["version"] == "3.0.0"
    messages = set(report["messages"])
    assert messages >= PROTOCOL_CLIENT | PROTOCOL_SERVER | EXTENSIONS
    # Exactly the structs of protocol.py: a new message there is a new message here.
    assert messages == tags(CLIENT_MESSAGES) | tags(SERVER_MESSAGES)
    operations = set(report["operations"])
    assert {f"receive receive_{kind}" for kind in tags(CLIENT_MESSAGES)} <= operations
    assert {f"send send_{kind}" for kind in tags(SERVER_MESSAGES)} <= operations
    assert report["channels"] == ["/ws/{game_type}/{game_id}"]
    channel = document["channels"]["game"]
    assert channel["parameters"]["game_type"]["enum"] == [
        game_type.name for game_type in server.context.game_types
    ]
    assert set(channel["bindings"]["ws"]["query"]["properties"]) == {"token", "since"}
    assert document["servers"]["gamesocket"]["host"] == f"127.0.0.1:{server.settings.port}"


async def test_payloads_are_the_structs_and_codes_are_described(api: Api) -> None:
    document = await fetch(api)
    messages, schemas = document["components"]["messages"], document["components"]["schemas"]
    move = schemas[messages["move"]["payload"]["$ref"].rsplit("/", 1)[1]]
    assert move["properties"]["type"] == {"enum": ["move"]}
    assert {"move", "version", "id"} <= set(move["properties"])
    update = schemas[messages["update"]["payload"]["$ref"].rsplit("/", 1)[1]]
    assert {"event", "version", "seats", "board", "legal_moves"} <= set(update["required"])
    assert "$defs" not in json.dumps(document)  # every reference rewritten to components
    assert all(messages[kind]["summary"].strip() for kind in messages)
    # PROTOCOL.md's messages and the extensions say what they are for (a message added
    # later without an entry in SUMMARIES is summed up by its struct's docstring).
    assert set(SUMMARIES) >= PROTOCOL_CLIENT | PROTOCOL_SERVER | EXTENSIONS
    assert messages["move"]["summary"] == SUMMARIES["move"]
    assert set(CLOSE_MEANINGS) == set(CloseCode) and set(ERROR_MEANINGS) == set(ErrorCode)
    description = document["info"]["description"]
    for close in CloseCode:
        assert f"| {close.value} | {CLOSE_MEANINGS[close]} |" in description
    for error in ErrorCode:
        assert f"| `{error.value}` |" in description
    assert set(schemas["ErrorCode"]["enum"]) == {error.value for error in ErrorCode}
    assert schemas["CloseCode"]["enum"] == [close.value for close in CloseCode]


async def test_a_broken_document_is_refused(api: Api) -> None:
    """The check can fail: the parser reports a dangling reference and a bad action."""
    document = await fetch(api)
    broken = copy.deepcopy(document)
    broken["operations"]["receive_move"]["messages"] = [
        {"$ref": "#/channels/game/messages/no_such_message"}
    ]
    broken["operations"]["send_hello"]["action"] = "publish"  # AsyncAPI 2's word
    code, report = validate(broken)
    assert code == 1
    assert len(report["errors"]) >= 2, report


async def test_what_the_server_sends_fits_the_payloads(api: Api, server: ServerThread) -> None:
    document = await fetch(api)
    schemas = document["components"]["schemas"]

    def required(kind: str) -> set[str]:
        ref = document["components"]["messages"][kind]["payload"]["$ref"]
        return set(schemas[ref.rsplit("/", 1)[1]].get("required", []))

    guest = await api.guest()
    game = await api.create(guest, "tictactoe", seats={"x": "me"})
    url = server.ws_url("tictactoe", game["game_id"], token=guest["access_token"])
    client = await connect(url)
    try:
        await client.send(type="join", seat="o", id="sit")
        await client.send(type="move", move=9, id="bad")
        await client.send(type="ping")
        seen: dict[str, dict[str, Any]] = {}
        while not {"hello", "state", "update", "ack", "error", "pong"} <= set(seen):
            message = await client.recv()
            seen.setdefault(message["type"], message)
    finally:
        await client.connection.close()
    for kind, message in seen.items():
        assert required(kind) <= set(message), (kind, message)
    assert seen["ack"]["ref"] == "sit" and seen["error"]["ref"] == "bad"
    assert seen["error"]["code"] in schemas["ErrorCode"]["enum"]


def test_the_lock_file_pins_the_parser() -> None:
    package = json.loads((PACKAGE / "package.json").read_text())
    lock = json.loads((PACKAGE / "package-lock.json").read_text())
    version = package["dependencies"]["@asyncapi/parser"]
    assert version[0].isdigit(), "an exact version"
    assert lock["packages"]["node_modules/@asyncapi/parser"]["version"] == version
    assert Path(PACKAGE / "validate.mjs").exists()
