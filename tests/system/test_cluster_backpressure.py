"""A slow consumer on one process, fed through Redis by another, is cut off alone.

Two real uvicorn servers (threads of this process, so that they can mount a test game
with very large states) share one SQLite store and Redis under a per-run prefix.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from bench.scenarios import chess_line
from games import ChessState
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from tests.server_harness import Api, ServerThread, connect
from tests.system.test_cluster_processes import redis_run
from tests.system.test_server_backpressure import PADDING, connect_without_reading
from tests.system.test_server_cluster import REDIS_URL

# 40 updates of 250 kB: more than the kernel's socket buffers (a few MB) can absorb.
LINE = chess_line(40)


class BulkyChess(ChessState):
    """Chess with a 250 kB board."""

    game_type: ClassVar[str] = "bulkychess"

    def board(self) -> dict[str, Any]:
        return {**super().board(), "padding": PADDING}


@pytest.fixture
async def bulky_pair(
    start_server: Callable[..., ServerThread], server_settings: Any
) -> AsyncIterator[tuple[ServerThread, ServerThread]]:
    async with redis_run() as (_, prefix):
        settings = replace(
            server_settings,
            redis_url=REDIS_URL,
            extra={"redis_prefix": prefix},
            max_send_backlog=3,
        )

        def start() -> ServerThread:
            app = create_app(settings)
            GameSocketFactory().create_socket(app, None, BulkyChess, "/ws/bulkychess")
            return start_server(app)

        yield start(), start()


async def test_a_slow_consumer_fed_from_another_process_is_closed_alone(
    bulky_pair: tuple[ServerThread, ServerThread],
) -> None:
    one, two = bulky_pair
    api = Api(one.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "bulkychess", seats={"white": "me", "black": "me"})
        game_id = game["game_id"]
        # The slow socket and a fast one share process two; the moves go to process one.
        slow = await connect_without_reading(two.ws_url("bulkychess", game_id))
        fast = await connect(two.ws_url("bulkychess", game_id))
        await fast.expect("state")
        counts = await api.wait_for_connections(game_id, players=0, spectators=2)
        assert counts == {"players": 0, "spectators": 2}

        lags = []
        for version, move in enumerate(LINE, start=1):
            started = time.monotonic()
            played = await api.http.post(
                f"/api/games/{game_id}/moves", json={"move": move}, headers=alice["headers"]
            )
            assert played.json() == {"version": version}, played.text
            assert (await fast.expect("update", wait=2))["version"] == version
            lags.append(time.monotonic() - started)
        assert max(lags) < 1.0, lags

        # Process two cut the slow socket off; the fast one stays, and so does the process.
        counts = await api.wait_for_connections(game_id, players=0, spectators=1)
        assert counts == {"players": 0, "spectators": 1}, "the slow client was not cut off"
        assert await slow.closed_with(wait=10) in (1008, None)  # the frame may not get out
        updates = [m for m in slow.seen if m["type"] == "update"]
        assert len(updates) < len(LINE)
        await fast.send(type="ping")
        assert (await fast.expect("pong"))["type"] == "pong"
    finally:
        await api.close()
