"""Presence of a large audience (hub.py): a change of the spectator count alone waits
about audience / SPECTATOR_COUNT_SENDS_PER_SECOND seconds, a seat going online does not
wait for it. Real server, real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.server_harness import Api, Client, ServerThread, connect
from tests.system.test_transport import raw_connect

AUDIENCE = 800
COUNT_WAIT = (AUDIENCE + 2) / 1000  # seconds: at most 1,000 spectator-count sends a second


async def presence_where(client: Client, done: Callable[[dict[str, Any]], bool]) -> float:
    """Read presence messages until one passes `done`; when it came (monotonic)."""
    while not done(await client.expect("presence", wait=20)):
        pass
    return time.monotonic()


async def test_a_spectator_count_waits_longer_than_a_seat_coming_online(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(max_sockets_per_ip=0)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game_id = (await api.create(alice, "tictactoe", seats={"x": "me"}))["game_id"]
        path = f"/ws/tictactoe/{game_id}"
        watcher = await connect(server.ws_url("tictactoe", game_id))
        crowd = [await raw_connect(server.settings.port, path) for _ in range(AUDIENCE)]
        await presence_where(watcher, lambda m: m["spectators"] == AUDIENCE + 1)

        started = time.monotonic()
        crowd.append(await raw_connect(server.settings.port, path))
        counted = await presence_where(watcher, lambda m: m["spectators"] == AUDIENCE + 2)
        assert counted - started >= COUNT_WAIT - 0.05

        started = time.monotonic()
        player = await connect(server.ws_url("tictactoe", game_id, token=alice["access_token"]))
        online = await presence_where(watcher, lambda m: m["online"]["x"])
        assert online - started < COUNT_WAIT  # 5,000 sends a second for a seat: 0.16 s
        await player.connection.close()
        await watcher.connection.close()
        for _, writer in crowd:
            writer.close()
        await asyncio.sleep(0)
    finally:
        await api.close()
