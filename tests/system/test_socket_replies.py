"""One socket's own traffic on a real server: the order of its replies among the game's
messages, and the idle limit counted from its last message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.scenarios import DRAWN_CONNECT4
from tests.server_harness import Api, Client, ServerThread, connect

ORDERED = {"update", "ack", "error", "pong"}  # what a move and a ping bring back


async def _next_ordered(client: Client) -> dict[str, Any]:
    """The next update, ack, error or pong (presence may come at any time)."""
    while True:
        message = await client.recv()
        if message["type"] in ORDERED:
            return message


async def test_a_move_is_acked_after_its_update_and_before_a_later_ping(
    start_server: Callable[..., ServerThread],
) -> None:
    # Two messages a move, 42 moves: above the default rate limit.
    server = start_server(rate_limit_per_second=1000.0, rate_limit_burst=1000)
    api = Api(server.base_url)
    try:
        await _play_pipelined(api, server)
    finally:
        await api.close()


async def _play_pipelined(api: Api, server: ServerThread) -> None:
    """connect4 to a full-board draw; after each move, on the mover's socket: the
    move's update, its ack, then the pong of the ping sent right behind the move."""
    red, yellow = await api.guest(), await api.guest()
    game = await api.create(red, "connect4", seats={"red": "me"})
    url = server.ws_url("connect4", game["game_id"], token=red["access_token"])
    players = [await connect(url)]
    players.append(
        await connect(server.ws_url("connect4", game["game_id"], token=yellow["access_token"]))
    )
    for client in players:
        await client.expect("hello")
        await client.expect("state")
    assert (await players[1].request(type="join", seat="yellow", id="sit"))["version"] == 1
    for client in players:
        assert (await client.expect("update"))["version"] == 1
    for turn, column in enumerate(DRAWN_CONNECT4):
        mover, other = players[turn % 2], players[1 - turn % 2]
        version = turn + 2
        # Pipelined: the ping is on the wire before the move is answered.
        await mover.connection.send(f'{{"type":"move","id":"m{turn}","move":{column}}}')
        await mover.connection.send('{"type":"ping"}')
        got = [await _next_ordered(mover) for _ in range(3)]
        assert [m["type"] for m in got] == ["update", "ack", "pong"], got
        assert got[0]["version"] == version
        assert got[1] == {"type": "ack", "ref": f"m{turn}", "version": version}
        seen = await _next_ordered(other)
        assert (seen["type"], seen["version"]) == ("update", version)
    assert got[0]["status"] == "finished"
    for client in players:
        await client.connection.close()


async def test_the_idle_limit_counts_from_the_last_message(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(idle_timeout_seconds=0.6)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "tictactoe", seats={"x": "me"})
        client = await connect(server.ws_url("tictactoe", game["game_id"]))
        await client.expect("hello")
        await client.expect("state")
        # Talking every 0.25 s for 1.8 s (three limits) keeps the socket open.
        started = last = time.monotonic()
        while last - started < 1.8:
            await asyncio.sleep(0.25)
            await client.send(type="ping")
            await client.expect("pong")
            last = time.monotonic()
        assert await client.closed_with() == 4408
        silent_for = time.monotonic() - last
        assert 0.5 <= silent_for < 1.5, silent_for
    finally:
        await api.close()
