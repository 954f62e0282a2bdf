"""Seeks (quick pairing) on a real server, and across two processes on Postgres + Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.pgutil import migrated_database
from tests.server_harness import Api, ServerThread
from tests.system.test_cluster_processes import ClusterProcess, redis_run

CLOCK = {"initial_ms": 60_000, "increment_ms": 1000}


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'games.sqlite3'}"
        return
    async with migrated_database() as url:
        yield url


async def seek(api: Api, user: dict[str, Any], **body: Any) -> Any:
    return await api.http.post("/api/seeks", json=body, headers=user["headers"])


async def test_two_compatible_seeks_pair_into_an_active_public_game(api: Api) -> None:
    alice, bob = await api.guest(), await api.guest()
    first = await seek(api, alice, game_type="chess", clock=CLOCK)
    assert first.status_code == 201, first.text
    waiting = first.json()
    assert waiting["status"] == "waiting" and set(waiting) == {"seek_id", "status"}
    second = await seek(api, bob, game_type="chess", clock=CLOCK)
    assert second.status_code == 201, second.text
    paired = second.json()
    assert paired["status"] == "paired"
    game = await api.snapshot(paired["game_id"])  # public: anyone reads it
    assert game["status"] == "active" and game["public"] is True
    players = {seat["user_id"] for seat in game["seats"].values()}
    assert players == {alice["user_id"], bob["user_id"]}
    assert game["clock"]["initial_ms"] == 60_000 and game["clock"]["running"] == "white"
    mine = await api.http.get(f"/api/seeks/{waiting['seek_id']}", headers=alice["headers"])
    assert mine.json() == {**waiting, "status": "paired", "game_id": paired["game_id"]}


async def test_incompatible_seeks_and_the_same_user_do_not_pair(api: Api) -> None:
    alice, bob = await api.guest(), await api.guest()
    assert (await seek(api, alice, game_type="tictactoe")).json()["status"] == "waiting"
    # Another clock, another game type: no pairing.
    other_clock = await seek(api, bob, game_type="tictactoe", clock={"per_move_ms": 5000})
    assert other_clock.json()["status"] == "waiting"
    assert (await seek(api, bob, game_type="connect4")).json()["status"] == "waiting"
    # Alice again in her own pool: her first seek is replaced, not paired with herself.
    again = (await seek(api, alice, game_type="tictactoe")).json()
    assert again["status"] == "waiting"
    carol = await api.guest()
    paired = (await seek(api, carol, game_type="tictactoe")).json()
    assert paired["status"] == "paired"
    mine = await api.http.get(f"/api/seeks/{again['seek_id']}", headers=alice["headers"])
    assert mine.json()["game_id"] == paired["game_id"]


async def test_the_older_seek_is_paired_first(api: Api) -> None:
    old, young, newcomer = await api.guest(), await api.guest(), await api.guest()
    first = (await seek(api, old, game_type="connect4")).json()
    second = (await seek(api, young, game_type="connect4")).json()
    assert second["status"] == "paired"  # old and young pair with each other
    third = (await seek(api, newcomer, game_type="connect4")).json()
    assert third["status"] == "waiting"
    got = await api.http.get(f"/api/seeks/{first['seek_id']}", headers=old["headers"])
    assert got.json()["game_id"] == second["game_id"]


async def test_bad_seeks_are_refused(api: Api) -> None:
    guest = await api.guest()
    cases: list[dict[str, Any]] = [
        {"game_type": "go"},
        {"game_type": "chess", "clock": {"initial_ms": 10}},
        {"game_type": "chess", "clock": {"per_move_ms": 10**12}},
        {"game_type": "chess", "rated": True},  # guests play unrated
    ]
    for body in cases:
        reply = await seek(api, guest, **body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["error"]["code"] == "bad_message"
    anonymous = await api.http.post("/api/seeks", json={"game_type": "chess"})
    assert anonymous.status_code == 401


async def test_only_the_owner_reads_or_withdraws_a_seek(api: Api) -> None:
    alice, bob = await api.guest(), await api.guest()
    mine = (await seek(api, alice, game_type="chess")).json()
    url = f"/api/seeks/{mine['seek_id']}"
    assert (await api.http.get(url, headers=bob["headers"])).status_code == 404
    assert (await api.http.delete(url, headers=bob["headers"])).status_code == 404
    withdrawn = await api.http.delete(url, headers=alice["headers"])
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    # Withdrawn: Bob's seek waits instead of pairing with it.
    assert (await seek(api, bob, game_type="chess")).json()["status"] == "waiting"


async def test_an_unseen_seek_lapses(start_server: Any) -> None:
    server: ServerThread = start_server(seek_ttl_seconds=0.6)
    api = Api(server.base_url)
    try:
        alice, bob = await api.guest(), await api.guest()
        kept = (await seek(api, alice, game_type="chess")).json()
        url = f"/api/seeks/{kept['seek_id']}"
        for _ in range(4):  # fetched every 0.3 s: alive after 1.2 s
            await asyncio.sleep(0.3)
            assert (await api.http.get(url, headers=alice["headers"])).json()["status"] == "waiting"
        await asyncio.sleep(1.2)
        assert (await api.http.get(url, headers=alice["headers"])).json()["status"] == "expired"
        assert (await seek(api, bob, game_type="chess")).json()["status"] == "waiting"
    finally:
        await api.close()


# -- two processes, Postgres + Redis ---------------------------------------------------------
@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[ClusterProcess]]:
    async with migrated_database() as url, redis_run() as (_, prefix):
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        for server in servers:
            server.start()
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


async def test_two_seekers_on_two_processes_are_paired(cluster: list[ClusterProcess]) -> None:
    apis = [Api(server.base_url) for server in cluster]
    try:
        alice, bob = await apis[0].guest(), await apis[1].guest()
        first = (await seek(apis[0], alice, game_type="tictactoe")).json()
        second = (await seek(apis[1], bob, game_type="tictactoe")).json()
        assert first["status"] == "waiting" and second["status"] == "paired"
        got = await apis[0].http.get(f"/api/seeks/{first['seek_id']}", headers=alice["headers"])
        assert got.json()["game_id"] == second["game_id"]
        game = await apis[0].snapshot(second["game_id"])
        assert game["status"] == "active"
    finally:
        for api in apis:
            await api.close()


async def test_fifty_seekers_at_once_are_each_paired_exactly_once(
    cluster: list[ClusterProcess],
) -> None:
    apis = [Api(server.base_url) for server in cluster]
    try:
        users = await asyncio.gather(*(apis[i % 2].guest() for i in range(50)))
        replies = await asyncio.gather(
            *(seek(apis[i % 2], user, game_type="connect4") for i, user in enumerate(users))
        )
        seeks = [reply.json() for reply in replies]
        assert all(reply.status_code == 201 for reply in replies)
        deadline = time.monotonic() + 20
        games: Counter[str] = Counter()
        for i, (user, placed) in enumerate(zip(users, seeks, strict=True)):
            url = f"/api/seeks/{placed['seek_id']}"
            while True:
                state = (await apis[i % 2].http.get(url, headers=user["headers"])).json()
                if state["status"] != "waiting" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert state["status"] == "paired", state
            games[state["game_id"]] += 1
        assert len(games) == 25 and set(games.values()) == {2}
        for game_id in games:
            game = await apis[0].snapshot(game_id)
            assert game["status"] == "active"
            assert len({seat["user_id"] for seat in game["seats"].values()}) == 2
    finally:
        for api in apis:
            await api.close()


async def test_seats_are_drawn_at_random(api: Api) -> None:
    """Over 20 pairings the older seeker gets each seat at least once (a fixed order
    would fail this; a fair draw fails it with probability 2 ** -19)."""
    older_seats: Counter[str] = Counter()
    for _ in range(20):
        older, newer = await api.guest(), await api.guest()
        await seek(api, older, game_type="tictactoe")
        paired = (await seek(api, newer, game_type="tictactoe")).json()
        game = await api.snapshot(paired["game_id"])
        (seat,) = [name for name, s in game["seats"].items() if s["user_id"] == older["user_id"]]
        older_seats[seat] += 1
    assert set(older_seats) == {"x", "o"}


async def test_a_pairing_whose_game_cannot_be_stored_is_undone(database_url: str, api: Api) -> None:
    """The database refuses the paired game (the server's insert right revoked, for
    real): the older seek waits again, keeping its place; the newcomer's is withdrawn."""
    if not database_url.startswith("postgres"):
        pytest.skip("revokes a Postgres privilege")
    alice, bob, carol = await api.guest(), await api.guest(), await api.guest()
    first = (await seek(api, alice, game_type="connect4")).json()
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("revoke insert on public.games from gamesocket_server")
        refused = await seek(api, bob, game_type="connect4")
        assert refused.status_code >= 400, refused.text
        await admin.execute("grant insert on public.games to gamesocket_server")
    finally:
        await admin.close()
    url = f"/api/seeks/{first['seek_id']}"
    assert (await api.http.get(url, headers=alice["headers"])).json() == first
    paired = (await seek(api, carol, game_type="connect4")).json()
    assert paired["status"] == "paired"
    game = await api.snapshot(paired["game_id"])
    assert {s["user_id"] for s in game["seats"].values()} == {alice["user_id"], carol["user_id"]}
    # Bob's refused seek was withdrawn: it pairs with nobody later.
    dave = await api.guest()
    assert (await seek(api, dave, game_type="connect4")).json()["status"] == "waiting"
