"""Ratings on two server processes sharing Postgres + Redis: two signed-in players seek
a rated game on different processes, play it to its end with every move going to
whichever process the player is on, and the ratings the database holds afterwards are
the Glicko-2 function's, written once (the final event's transaction, as the server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from socket_server.ratings import Rating, after_game
from tests.pgutil import migrated_database
from tests.server_harness import Api
from tests.system.test_cluster_processes import ClusterProcess, redis_run
from tests.system.test_ratings import GAME, ISSUER, SECRET, X_WINS, post, user


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[str, list[ClusterProcess]]]:
    async with migrated_database() as url, redis_run() as (_, prefix):
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        for server in servers:
            server.env.update(SUPABASE_JWT_SECRET=SECRET, SUPABASE_JWT_ISSUER=ISSUER)
            server.start()
        try:
            yield url, servers
        finally:
            for server in servers:
                server.stop()


async def stored_ratings(url: str, user_ids: list[str]) -> dict[str, tuple[float, float, int]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "select user_id::text, rating, deviation, games from public.game_ratings"
            " where game_type = $1 and user_id = any($2::uuid[])",
            GAME,
            user_ids,
        )
    finally:
        await connection.close()
    return {row["user_id"]: (row["rating"], row["deviation"], row["games"]) for row in rows}


async def test_a_rated_game_over_two_processes_rates_both_players_once(
    cluster: tuple[str, list[ClusterProcess]],
) -> None:
    url, servers = cluster
    apis = [Api(server.base_url) for server in servers]
    try:
        alice, bob = user(name="Alice"), user(name="Bob")
        first = await post(apis[0], alice, "/api/seeks", {"game_type": GAME, "rated": True})
        second = await post(apis[1], bob, "/api/seeks", {"game_type": GAME, "rated": True})
        assert first.json()["status"] == "waiting" and second.json()["status"] == "paired"
        game_id = second.json()["game_id"]
        game = await apis[0].snapshot(game_id)
        assert game["rated"] is True
        by_user = {alice["user_id"]: (alice, apis[0]), bob["user_id"]: (bob, apis[1])}
        seated = {seat: by_user[shown["user_id"]] for seat, shown in game["seats"].items()}
        assert {shown["rating"] for shown in game["seats"].values()} == {1500}
        for seat, cell in X_WINS:  # each move through the mover's own process
            who, api = seated[seat]
            moved = await post(api, who, f"/api/games/{game_id}/moves", {"move": cell})
            assert moved.status_code == 200, moved.text
        final = await apis[1].wait_for(game_id, lambda s: s["status"] == "finished")
        assert final["result"]["winner"] == "x"
        winner, loser = seated["x"][0]["user_id"], seated["o"][0]["user_id"]
        expected_winner, expected_loser = after_game(Rating(), Rating(), 1.0)
        stored = await stored_ratings(url, [winner, loser])
        assert stored[winner][0] == pytest.approx(expected_winner.rating, abs=1e-6)
        assert stored[winner][1] == pytest.approx(expected_winner.deviation, abs=1e-6)
        assert stored[loser][0] == pytest.approx(expected_loser.rating, abs=1e-6)
        assert stored[winner][2] == stored[loser][2] == 1  # rated once, not once per process
        # Both processes answer the new ratings for the profile.
        for api in apis:
            profile = (await api.http.get(f"/api/users/{winner}")).json()
            assert profile["ratings"][GAME]["games"] == 1
            assert profile["ratings"][GAME]["rating"] == pytest.approx(
                expected_winner.rating, abs=0.01
            )
    finally:
        for api in apis:
            await api.close()
