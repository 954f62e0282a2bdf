"""Chat and announcements across two `gamesocket serve` processes on Postgres + Redis.

A message written on one process reaches the readers of its room on both; an
announcement made on one reaches every socket on both; the store numbers the messages
of concurrent writers on both processes 1, 2, 3, ... without a gap or a repeat, and
counts one user's messages over both processes for the rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, connect
from tests.system.test_cluster_processes import ClusterProcess, redis_run

ADMIN_TOKEN = "cluster-admin-token"
GAME = "tictactoe"


class Pair:
    def __init__(self, servers: list[ClusterProcess], apis: list[Api]) -> None:
        self.servers = servers
        self.apis = apis

    async def watch(self, index: int, game_id: str, user: dict[str, Any] | None) -> Client:
        query = {"token": user["access_token"]} if user else {}
        client = await connect(self.servers[index].ws_url(GAME, game_id, **query))
        await client.expect("hello")
        await client.expect("state")
        return client


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with redis_run() as (_redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        for server in servers:
            server.env["GAMESOCKET_ADMIN_TOKEN"] = ADMIN_TOKEN
        apis: list[Api] = []
        try:
            servers[0].start()  # creates the guest secret the other one reads
            servers[1].start()
            apis = [Api(server.base_url) for server in servers]
            yield Pair(servers, apis)
        finally:
            for api in apis:
                await api.close()
            for server in servers:
                server.stop()


async def seated_game(pair: Pair) -> tuple[str, dict[str, Any], Client, Client]:
    """Alice (x) on process 0, bob (o) on process 1: the game id, alice, and their sockets."""
    alice, bob = await pair.apis[0].guest(), await pair.apis[1].guest()
    game_id = (await pair.apis[0].create(alice, GAME, seats={"x": "me"}))["game_id"]
    a = await pair.watch(0, game_id, alice)
    b = await pair.watch(1, game_id, bob)
    assert (await b.request(type="join", seat="o", id="sit"))["type"] == "ack"
    await a.expect("update")
    return game_id, alice, a, b


async def test_chat_and_announcements_reach_both_processes(pair: Pair) -> None:
    game_id, alice, a, b = await seated_game(pair)
    c = await pair.watch(1, game_id, await pair.apis[1].guest())  # spectators
    d = await pair.watch(0, game_id, None)

    assert (await a.request(type="chat", text="hello from 0", id="h"))["type"] == "ack"
    for client in (a, b, c, d):
        message = await client.expect("chat")
        assert (message["seq"], message["text"], message["room"]) == (1, "hello from 0", "players")
        assert message["user_id"] == alice["user_id"]
    assert (await c.request(type="chat", text="psst from 1", id="p"))["type"] == "ack"
    message = await d.expect("chat")
    assert (message["seq"], message["room"]) == (2, "spectators")
    assert (await b.request(type="chat", text="back on 1", id="b"))["type"] == "ack"
    for client in (a, b):  # the players' next chat message is seq 3: seq 2 never came
        assert (await client.expect("chat"))["seq"] == 3

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    reply = await pair.apis[1].http.post(
        "/api/admin/announce", json={"text": "restart soon"}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    for client in (a, b, c, d):
        announcement = await client.expect("announcement")
        assert announcement["text"] == "restart soon" and announcement["at"] == reply.json()["at"]
    history = await pair.apis[0].http.get(f"/api/games/{game_id}/chat")
    assert [m["seq"] for m in history.json()] == [1, 3]


async def test_concurrent_writers_on_both_processes_get_contiguous_seqs(pair: Pair) -> None:
    game_id, _alice, _a, _b = await seated_game(pair)
    users = [await pair.apis[n % 2].guest() for n in range(8)]
    sockets = [await pair.watch(n % 2, game_id, user) for n, user in enumerate(users)]

    async def write(n: int, socket: Client) -> list[str]:
        replies = [
            await socket.request(type="chat", text=f"u{n} m{k}", id=f"{n}-{k}") for k in range(3)
        ]
        return [reply["type"] for reply in replies]

    outcomes = await asyncio.gather(*(write(n, s) for n, s in enumerate(sockets)))
    assert outcomes == [["ack"] * 3] * 8
    for api in pair.apis:
        stored = (await api.http.get(f"/api/games/{game_id}/chat?room=spectators")).json()
        assert [m["seq"] for m in stored] == list(range(1, 25))
        assert sorted(m["text"] for m in stored) == sorted(
            f"u{n} m{k}" for n in range(8) for k in range(3)
        )
    # Every spectator socket, on either process, got all 24 messages once.
    for socket in sockets:
        seen = {(await socket.expect("chat"))["seq"] for _ in range(24)}
        assert seen == set(range(1, 25))


async def test_the_rate_limit_counts_one_user_over_both_processes(pair: Pair) -> None:
    game_id, _alice, _a, _b = await seated_game(pair)
    carol = await pair.apis[0].guest()
    on_0, on_1 = await pair.watch(0, game_id, carol), await pair.watch(1, game_id, carol)
    replies = []
    for k in range(6):
        socket = on_0 if k % 2 == 0 else on_1
        replies.append(await socket.request(type="chat", text=f"m{k}", id=f"m{k}"))
    assert [r["type"] for r in replies] == ["ack"] * 5 + ["error"]
    assert replies[5]["code"] == "rate_limited"
    stored = (await pair.apis[1].http.get(f"/api/games/{game_id}/chat?room=spectators")).json()
    assert [m["text"] for m in stored] == [f"m{k}" for k in range(5)]
