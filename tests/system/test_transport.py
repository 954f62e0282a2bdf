"""transport.py: prebuilt frames on real sockets, a slow reader cut off alone, and what an
idle socket does not keep.

Real uvicorn servers (`FrameProtocol`), real websockets clients, and raw TCP clients
that do the handshake by hand so that the exact bytes on the wire can be compared.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from types import FunctionType
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from socket_server import protocol
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from socket_server.protocol import You
from socket_server.transport import CLOSE_TIMEOUT, FrameProtocol, LeanWebSocket, text_frame
from tests.server_harness import Api, Client, ServerThread, connect
from tests.system.test_cluster_backpressure import LINE, BulkyChess
from tests.system.test_server_backpressure import connect_without_reading

# Payload lengths around the frame header's length encodings (7 bits, 16 bits, 64 bits).
SIZES = (0, 1, 125, 126, 127, 65_535, 65_536, 200_000)


def padded(size: int) -> bytes:
    """A JSON message of exactly `size` bytes (at least 33), with a type clients skip."""
    head = b'{"type":"notice","padding":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize("size", SIZES)
def test_a_prebuilt_frame_is_the_frame_websockets_sends_and_parses(size: int) -> None:
    data = b"y" * size
    server = ServerProtocol(state=State.OPEN)
    server.send_text(data)
    frame = text_frame(data)
    assert frame == b"".join(server.data_to_send())
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN)
    client.receive_data(frame)
    [event] = client.events_received()
    assert isinstance(event, Frame)
    assert (event.opcode, event.fin, event.data) == (Opcode.TEXT, True, data)


def masked(opcode: Opcode, payload: bytes, *, mask: bool = True) -> bytes:
    return Frame(opcode, payload).serialize(mask=mask)


PING = masked(Opcode.TEXT, b'{"type":"ping"}')


async def raw_connect(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket upgraded by hand (no client library keeps anything of it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    writer.write(head.encode() + b"\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One whole server frame as it came (servers do not mask), and its payload."""
    header = await asyncio.wait_for(reader.readexactly(2), 10)
    length, extended = header[1] & 0x7F, b""
    if length >= 126:
        extended = await reader.readexactly(2 if length == 126 else 8)
        length = int.from_bytes(extended, "big")
    payload = await reader.readexactly(length)
    return header + extended + payload, payload


def live(kind: type) -> list[Any]:
    gc.collect()
    return [item for item in gc.get_objects() if isinstance(item, kind)]


def live_requests() -> int:
    return len(live(Request))


async def test_the_wire_carries_the_prebuilt_frames_and_an_idle_socket_keeps_no_request(
    server: ServerThread,
) -> None:
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game_id = (await api.create(alice, "tictactoe"))["game_id"]
        path = f"/ws/tictactoe/{game_id}"
        before = live_requests()
        sockets = [await raw_connect(server.settings.port, path) for _ in range(20)]
        hello = text_frame(protocol.hello(game_id, You(None, None, "spectator")))
        for reader, _ in sockets:
            assert (await read_frame(reader))[0] == hello  # byte for byte
            assert json.loads((await read_frame(reader))[1])["type"] == "state"
        # The handshake's request (and its headers) is not kept by any of the 20.
        assert live_requests() == before
        # The frame parser that took over after the handshake reads the client's frames.
        for reader, writer in sockets:
            writer.write(PING)
            frame, payload = await read_frame(reader)
            while json.loads(payload)["type"] == "presence":  # spectators came and went
                frame, payload = await read_frame(reader)
            assert frame == text_frame(protocol.PONG)
            writer.close()
    finally:
        await api.close()


def live_wrappers() -> int:
    """Litestar's per-socket closures around `receive` and `send` (`WebSocket`'s)."""
    return sum(item.__qualname__.startswith("WebSocket.") for item in live(FunctionType))


async def test_an_idle_socket_keeps_its_attributes_in_slots_and_no_asgi_wrappers(
    server: ServerThread,
) -> None:
    api = Api(server.base_url)
    try:
        game_id = (await api.create(await api.guest(), "tictactoe"))["game_id"]
        wrappers = live_wrappers()
        sockets = [await raw_connect(server.settings.port, f"/ws/tictactoe/{game_id}")]
        sockets += [await raw_connect(server.settings.port, "/ws/lobby") for _ in range(3)]
        for reader, _ in sockets:
            await read_frame(reader)  # hello: the app runs
        protocols = live(FrameProtocol)
        assert len(protocols) >= 4
        # uvicorn's attributes and ours all live in slots: no instance dict per socket.
        assert all(vars(found) == {} for found in protocols), [vars(p) for p in protocols]
        assert live_wrappers() == wrappers
        for _, writer in sockets:
            writer.close()
    finally:
        await api.close()


async def test_the_lean_socket_accepts_a_handshake_and_refuses_a_client_gone_during_it() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    def scope() -> Any:
        return {"type": "websocket", "path": "/ws/lobby", "headers": [], "query_string": b""}

    async def connect_event() -> Any:
        return {"type": "websocket.connect"}

    async def disconnect_event() -> Any:
        return {"type": "websocket.disconnect", "code": 1001}

    await LeanWebSocket(scope(), connect_event, send).accept()
    assert sent == [{"type": "websocket.accept", "subprotocol": None, "headers": []}]
    with pytest.raises(WebSocketDisconnect):
        await LeanWebSocket(scope(), disconnect_event, send).accept()
    assert len(sent) == 1  # nothing was sent to the client that left


async def test_messages_of_every_frame_length_reach_a_standard_client_intact(
    server: ServerThread,
) -> None:
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game_id = (await api.create(alice, "tictactoe"))["game_id"]
        client = await connect(server.ws_url("tictactoe", game_id))
        await client.expect("state")
        sent = [padded(size) for size in SIZES if size >= 33]
        for data in sent:
            await server.call(server.context.broker.publish(game_id, data))
        for data in sent:
            assert await client.expect("notice") == json.loads(data)
        await client.connection.close()
    finally:
        await api.close()


async def frame_sockets_within(server: ServerThread, count: int, wait: float) -> bool:
    """Whether the server holds `count` WebSocket connections within `wait` seconds
    (run on its loop: uvicorn's set of connections is the loop's)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        connections = server.server.server_state.connections
        if sum(isinstance(c, FrameProtocol) for c in connections) == count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_reader_that_stops_is_closed_while_the_others_get_every_version_in_order(
    start_server: Callable[..., ServerThread], server_settings: Any
) -> None:
    app = create_app(replace(server_settings, max_send_backlog=3))
    GameSocketFactory().create_socket(app, None, BulkyChess, "/ws/bulkychess")
    server = start_server(app)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "bulkychess", seats={"white": "me", "black": "me"})
        game_id = game["game_id"]
        slow = await connect_without_reading(server.ws_url("bulkychess", game_id))
        fast = [await connect(server.ws_url("bulkychess", game_id)) for _ in range(3)]
        for client in fast:
            await client.expect("state")
        await api.wait_for_connections(game_id, players=0, spectators=4)

        async def read_all(client: Client) -> list[int]:
            return [(await client.expect("update"))["version"] for _ in LINE]

        readers = [asyncio.create_task(read_all(client)) for client in fast]
        started = time.monotonic()
        for version, move in enumerate(LINE, start=1):
            played = await api.http.post(
                f"/api/games/{game_id}/moves", json={"move": move}, headers=alice["headers"]
            )
            assert played.json() == {"version": version}, played.text
        for reader in readers:  # each version once, in order, none held up by the slow one
            assert await asyncio.wait_for(reader, 30) == list(range(1, len(LINE) + 1))
        assert time.monotonic() - started < 30
        counts = await api.wait_for_connections(game_id, players=0, spectators=3)
        assert counts == {"players": 0, "spectators": 3}, "the slow reader was not cut off"
        # The server gives up on a close frame stuck behind unread data: the connection
        # is dropped with what it buffers, while the slow client still reads nothing.
        assert await server.call(frame_sockets_within(server, 3, wait=CLOSE_TIMEOUT + 5))
        assert await slow.closed_with(wait=10) in (1008, None)  # None: dropped
        versions = [m["version"] for m in slow.seen if m["type"] == "update"]
        assert versions == list(range(1, len(versions) + 1)) and len(versions) < len(LINE)
    finally:
        await api.close()


async def lobby_sockets_within(server: ServerThread, count: int, wait: float) -> bool:
    """Whether the server's lobby holds `count` sockets within `wait` seconds."""
    app: Any = server.server.config.app  # the Litestar app
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if len(app.state["lobby"].sockets) == count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_lobby_socket_gets_prebuilt_frames_byte_for_byte(server: ServerThread) -> None:
    reader, writer = await raw_connect(server.settings.port, "/ws/lobby")
    hello = text_frame(protocol.encode(protocol.LobbyHello(you=protocol.LobbyYou(None))))
    assert (await read_frame(reader))[0] == hello
    assert json.loads((await read_frame(reader))[1])["type"] == "lobby"
    announced = padded(70_000)  # a 64-bit length header
    await server.call(server.context.broker.publish_all(announced))
    assert await read_frame(reader) == (text_frame(announced), announced)
    writer.write(PING)
    assert (await read_frame(reader))[0] == text_frame(protocol.encode(protocol.Pong()))
    writer.close()


async def test_a_lobby_reader_that_stops_is_closed_while_another_hears_every_announcement(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(max_send_backlog=3)
    lobby_url = f"ws://127.0.0.1:{server.settings.port}/ws/lobby"
    slow = await connect_without_reading(lobby_url)
    fast = await connect(lobby_url)
    await fast.expect("lobby")
    assert await server.call(lobby_sockets_within(server, 2, wait=10))
    sent = [padded(200_000).replace(b"x" * 8, f"{n:08}".encode(), 1) for n in range(60)]
    for data in sent:  # 12 MB that the slow reader never takes
        await server.call(server.context.broker.publish_all(data))
        # Each one, in order, none held up by the slow one.
        assert await fast.expect("notice", wait=5) == json.loads(data)
    # The slow one is cut off (1008), and the lobby forgets it, close frame or not.
    assert await server.call(lobby_sockets_within(server, 1, wait=CLOSE_TIMEOUT + 5))
    assert await slow.closed_with(wait=10) in (1008, None)  # None: dropped
    notices = [m for m in slow.seen if m["type"] == "notice"]
    assert len(notices) < len(sent)
    await fast.send(type="ping")  # the other one is still served
    assert await fast.expect("pong") == {"type": "pong"}
    await fast.connection.close()


async def spectate_raw(server: ServerThread) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw socket on a new game, past its `hello` and `state`."""
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game_id = (await api.create(alice, "tictactoe"))["game_id"]
    finally:
        await api.close()
    reader, writer = await raw_connect(server.settings.port, f"/ws/tictactoe/{game_id}")
    for expected in ("hello", "state"):
        assert json.loads((await read_frame(reader))[1])["type"] == expected
    return reader, writer


async def next_types(reader: asyncio.StreamReader, count: int) -> list[str]:
    """The next `count` frames: a text frame by its message type, others by opcode."""
    seen: list[str] = []
    while len(seen) < count:
        frame, payload = await read_frame(reader)
        if frame[0] & 0x0F != Opcode.TEXT.value:
            seen.append(Opcode(frame[0] & 0x0F).name)
        elif (kind := json.loads(payload)["type"]) != "presence":  # spectators come and go
            seen.append(kind)
    return seen


async def test_small_frames_in_one_write_or_cut_anywhere_are_each_read_once_in_order(
    server: ServerThread,
) -> None:
    reader, writer = await spectate_raw(server)
    binary = masked(Opcode.BINARY, b'{"type":"ping"}')
    # Three text pings, a binary one and a control ping in one write.
    writer.write(PING * 3 + binary + masked(Opcode.PING, b"hi"))
    # The control frame is answered by the parser as it is read, the messages by the app.
    assert sorted(await next_types(reader, 5)) == ["PONG", "pong", "pong", "pong", "pong"]
    assert await server.call(at_frame_boundary(server))
    # A frame cut after its two header bytes (the parser waits for its mask with nothing
    # buffered: not a frame boundary), then cut inside its payload, then whole frames.
    for cut in (2, 9):
        writer.write(PING[:cut])
        await asyncio.sleep(0.05)
        assert not await server.call(at_frame_boundary(server))
        writer.write(PING[cut:] + PING)
        await asyncio.sleep(0.05)
        writer.write(PING)
        assert await next_types(reader, 3) == ["pong"] * 3
        assert await server.call(at_frame_boundary(server))
    writer.close()


async def at_frame_boundary(server: ServerThread) -> bool:
    """Whether the server's one game socket would read its next frames itself."""
    [protocol] = [c for c in server.server.server_state.connections if isinstance(c, FrameProtocol)]
    return protocol._at_frame_boundary()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (masked(Opcode.TEXT, b'{"type":"ping","x":"\xff"}'), 1007),  # not UTF-8
        (masked(Opcode.TEXT, b'{"type":"ping"}', mask=False), 1002),  # a client must mask
        (masked(Opcode.TEXT, b'{"type":"ping","p":"' + b"x" * 80 + b'"}'), 1009),  # > 64 bytes
    ],
)
async def test_a_bad_small_frame_closes_the_socket_with_websockets_code(
    start_server: Callable[..., ServerThread], frame: bytes, code: int
) -> None:
    server = start_server(max_message_bytes=64)
    reader, writer = await spectate_raw(server)
    writer.write(PING)
    assert await next_types(reader, 1) == ["pong"]
    writer.write(frame + PING)  # the ping behind it is not read
    closing, payload = await read_frame(reader)
    assert (Opcode(closing[0] & 0x0F), int.from_bytes(payload[:2], "big")) == (Opcode.CLOSE, code)
    assert await reader.read() == b""
    writer.close()


async def test_keepalive_pings_run_on_the_wheel_and_a_client_that_never_answers_is_closed(
    server: ServerThread,
) -> None:
    # Sockets opened from now on ping every 0.3 s and wait 0.5 s for the pong.
    server.server.config.ws_ping_interval, server.server.config.ws_ping_timeout = 0.3, 0.5
    api = Api(server.base_url)
    try:
        game_id = (await api.create(await api.guest(), "tictactoe"))["game_id"]
        path = f"/ws/tictactoe/{game_id}"
        answering, silent = (
            await raw_connect(server.settings.port, path),
            await raw_connect(server.settings.port, path),
        )
        pinged, silent_pinged = 0, False
        started = time.monotonic()
        # The answering client replies to every ping for 2 s: its socket stays open.
        while time.monotonic() - started < 2.0:
            frame, payload = await read_frame(answering[0])
            if frame[0] & 0x0F == Opcode.PING.value:
                pinged += 1
                answering[1].write(masked(Opcode.PONG, payload))
        assert pinged >= 4, pinged
        # No socket holds a loop timer of its own for the ping: it waits on the wheel.
        protocols = live(FrameProtocol)
        assert protocols and all(found.ping_timer is None for found in protocols)
        assert any(found._ping_tick is not None for found in protocols)
        # The silent one was pinged, never answered, and was closed with 1011.
        while True:
            frame, payload = await read_frame(silent[0])
            opcode = frame[0] & 0x0F
            if opcode == Opcode.CLOSE.value:
                break
            silent_pinged |= opcode == Opcode.PING.value
        assert silent_pinged and int.from_bytes(payload[:2], "big") == 1011
        for _, writer in (answering, silent):
            writer.close()
    finally:
        await api.close()
