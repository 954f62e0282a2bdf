"""A client that stops reading is cut off; the others are not slowed down."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import websockets

from games import TicTacToeState
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from tests.server_harness import Api, Client, ServerThread, connect

PADDING = "x" * 250_000


class BulkyState(TicTacToeState):
    """Tic-tac-toe with a 250 kB board, so that a few messages fill any socket buffer."""

    game_type: ClassVar[str] = "bulky"

    def board(self) -> dict[str, Any]:
        return {**super().board(), "padding": PADDING}


async def connect_without_reading(url: str) -> Client:
    """A client with a tiny receive buffer that reads nothing until asked."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    raw.setblocking(False)
    connection = await websockets.connect(url, sock=raw, max_size=None, max_queue=1)
    return Client(connection)


async def test_a_slow_consumer_is_closed_and_never_slows_the_others(
    start_server: Callable[..., ServerThread], server_settings: Any
) -> None:
    settings = replace(
        server_settings, max_send_backlog=8, rate_limit_per_second=1000.0, rate_limit_burst=1000
    )
    app = create_app(settings)
    GameSocketFactory().create_socket(app, None, BulkyState, "/ws/bulky")
    server = start_server(app)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "bulky", seats={"x": "me", "o": "me"})
        game_id = game["game_id"]
        fast = await connect(server.ws_url("bulky", game_id))
        await fast.expect("state")
        slow = await connect_without_reading(server.ws_url("bulky", game_id))
        # Each `sync` queues a 250 kB state for the slow client, which reads none of them.
        for _ in range(60):
            await slow.send(type="sync")
        counts = await api.wait_for_connections(game_id, players=0, spectators=1)
        assert counts == {"players": 0, "spectators": 1}, "the slow client was not cut off"

        started = time.monotonic()
        played = await api.http.post(
            f"/api/games/{game_id}/moves", json={"move": 4}, headers=alice["headers"]
        )
        assert played.status_code == 200
        update = await fast.expect("update", wait=2)
        assert update["version"] == 1 and time.monotonic() - started < 1.0

        code = await slow.closed_with(wait=10)
        assert code in (1008, None)  # the close frame may not fit past the unread data
        states = sum(1 for m in slow.seen if m["type"] == "state")
        assert states < 60
    finally:
        await api.close()
