"""Two server processes' worth of state behind one Redis and one store.

Each server has its own hub, cache and broker connection; only Redis and the store
are shared, as behind a load balancer. Keys and channels use a prefix unique to the run.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from tests.conftest import require
from tests.server_harness import Api, ServerThread, connect

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def pair(
    start_server: Callable[..., ServerThread],
) -> AsyncIterator[tuple[ServerThread, ServerThread]]:
    require(redis_reachable(), "Redis at 127.0.0.1:6379")
    prefix = f"gstest-server-{uuid.uuid4().hex[:12]}"
    shared = {"redis_url": REDIS_URL, "extra": {"redis_prefix": prefix}}
    yield start_server(**shared), start_server(**shared)
    admin = Redis.from_url(REDIS_URL)
    keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


async def test_moves_on_one_server_reach_sockets_on_the_other(
    pair: tuple[ServerThread, ServerThread],
) -> None:
    one, two = pair
    api_one, api_two = Api(one.base_url), Api(two.base_url)
    try:
        alice, bob = await api_one.guest(), await api_two.guest()
        game = await api_one.create(alice, "connect4", seats={"red": "me"})
        game_id = game["game_id"]
        a = await connect(one.ws_url("connect4", game_id, token=alice["access_token"]))
        b = await connect(two.ws_url("connect4", game_id, token=bob["access_token"]))
        watcher = await connect(two.ws_url("connect4", game_id))
        for client in (a, b, watcher):
            await client.expect("state")
        assert (await b.request(type="join", id="sit"))["version"] == 1
        for index, column in enumerate([3, 3, 4, 4]):
            player = (a, b)[index % 2]
            assert (await player.request(type="move", move=column, id=f"c{index}"))["type"] == "ack"
        seen = [await watcher.expect("update") for _ in range(5)]
        assert [u["version"] for u in seen] == [1, 2, 3, 4, 5]
        assert [u["version"] for u in [await a.expect("update") for _ in range(5)]] == [
            1,
            2,
            3,
            4,
            5,
        ]

        # A draw offered through one server is accepted through the other.
        await a.request(type="draw", action="offer", id="offer")
        assert (await b.expect("draw_offer"))["seat"] == "red"
        assert (await b.request(type="draw", action="accept", id="accept"))["version"] == 6
        assert (await watcher.expect("update"))["result"]["reason"] == "draw_agreed"

        # Presence is summed over both servers.
        counts = await api_one.wait_for_connections(game_id, players=2, spectators=1)
        assert counts == {"players": 2, "spectators": 1}
    finally:
        await api_one.close()
        await api_two.close()


async def test_the_ai_thinks_on_one_server_and_is_watched_on_the_other(
    pair: tuple[ServerThread, ServerThread],
) -> None:
    one, two = pair
    api = Api(one.base_url)
    try:
        user = await api.guest()
        seats = {"x": "me", "o": {"kind": "ai", "level": 2}}
        game = await api.create(user, "tictactoe", seats=seats)
        game_id = game["game_id"]
        watcher = await connect(one.ws_url("tictactoe", game_id))
        await watcher.expect("state")
        player = await connect(two.ws_url("tictactoe", game_id, token=user["access_token"]))
        await player.expect("state")
        assert (await player.request(type="move", move=4, id="center"))["version"] == 1
        updates = [await watcher.expect("update") for _ in range(2)]
        assert [u["version"] for u in updates] == [1, 2]
        assert updates[1]["event"]["seat"] == "o" and updates[1]["turn"] == "x"
        thoughts = [m for m in watcher.seen if m["type"] == "thinking"]
        assert thoughts and all(t["seat"] == "o" and t["game_id"] == game_id for t in thoughts)
        # Thinking streams before the move it leads to.
        assert watcher.seen.index(thoughts[-1]) < watcher.seen.index(updates[1])
    finally:
        await api.close()
