"""The real server on Postgres: the server suites re-run on it, and two server processes race.

Importing the server test modules here collects their tests again with this module's
`database_url` fixture, so every one of them runs against a migrated Postgres database,
its store calls made as the players under row-level security.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerProcess, connect
from tests.system.test_players import *  # noqa: F403
from tests.system.test_server_games import *  # noqa: F403
from tests.system.test_server_protocol import *  # noqa: F403
from tests.system.test_server_restart import *  # noqa: F403

ROUNDS = 10


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with migrated_database() as url:
        yield url


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[ServerProcess, ...]]:
    """Two `gamesocket serve` processes on one database (and one guest-token secret)."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(ServerProcess(tmp_path / "data", database_url).start())
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


async def test_two_server_processes_racing_one_move_apply_exactly_one(
    two_servers: tuple[ServerProcess, ServerProcess], database_url: str
) -> None:
    one, two = two_servers
    api = Api(one.base_url)
    try:
        alice, bob = await api.guest(), await api.guest()
        wins = [0, 0]  # by server: both should win some rounds (printed, not asserted)
        for round_ in range(ROUNDS):
            game = await api.create(alice, "tictactoe", seats={"x": "me"})
            game_id = game["game_id"]
            joined = await api.http.post(
                f"/api/games/{game_id}/join", json={}, headers=bob["headers"]
            )
            assert joined.status_code == 200, joined.text
            # Alice in two tabs, one on each server, plays two different cells at version 1.
            tabs: list[Client] = [
                await connect(server.ws_url("tictactoe", game_id, token=alice["access_token"]))
                for server in (one, two)
            ]
            for tab in tabs:
                assert (await tab.expect("state"))["version"] == 1
            replies = await asyncio.gather(
                *(
                    tab.request(type="move", id=f"r{round_}-{cell}", move=cell, version=1)
                    for tab, cell in zip(tabs, (4, 0), strict=True)
                )
            )
            for tab in tabs:
                await tab.connection.close()

            kinds = sorted(reply["type"] for reply in replies)
            assert kinds == ["ack", "error"], replies
            winner = 4 if replies[0]["type"] == "ack" else 0
            wins[0 if winner == 4 else 1] += 1
            loser = next(reply for reply in replies if reply["type"] == "error")
            assert loser["code"] == "stale_version", loser
            moves = (await api.http.get(f"/api/games/{game_id}/moves")).json()
            assert [(m["version"], m["move"]) for m in moves] == [(2, winner)], moves

        print(f"rounds won by server one / two: {wins}")
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "select kind, count(*) from public.game_events group by kind order by kind"
            )
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [("join", ROUNDS), ("move", ROUNDS)]
    finally:
        await api.close()
