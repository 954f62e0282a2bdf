"""Rematches against a real server on SQLite (PROTOCOL.md "Rematch"), and the race of both
players asking at once on two processes on Postgres + Redis."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from socket_server.store.base import Actor
from socket_server.store.rematches import MemoryRematches
from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerThread, connect
from tests.system.test_cluster_processes import ClusterProcess, redis_run

GAME = "tictactoe"
CLOCK = {"initial_ms": 60_000, "increment_ms": 1_000}


async def rematch(api: Api, user: dict[str, Any] | None, game_id: str) -> Any:
    headers = user["headers"] if user else {}
    return await api.http.post(f"/api/games/{game_id}/rematch", headers=headers)


async def watch(url: str) -> Client:
    client = await connect(url)
    await client.expect("hello")
    await client.expect("state")
    return client


async def finished_private_game(api: Api) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Alice (x) and bob (o) in a private timed game that alice resigned."""
    alice, bob = await api.guest(), await api.guest()
    created = await api.create(
        alice, GAME, seats={"x": "me"}, public=False, clock=CLOCK, options={"ai_delay_ms": 50}
    )
    game_id = created["game_id"]
    joined = await api.http.post(
        f"/api/games/{game_id}/join", json={"invite": created["invite"]}, headers=bob["headers"]
    )
    assert joined.status_code == 200, joined.text
    resigned = await api.http.post(f"/api/games/{game_id}/resign", headers=alice["headers"])
    assert resigned.status_code == 200, resigned.text
    return game_id, alice, bob


async def test_both_players_asking_makes_the_game_with_seats_swapped(
    api: Api, server: ServerThread
) -> None:
    game_id, alice, bob = await finished_private_game(api)
    a = await watch(server.ws_url(GAME, game_id, token=alice["access_token"]))
    b = await watch(server.ws_url(GAME, game_id, token=bob["access_token"]))

    first = await rematch(api, alice, game_id)
    assert (first.status_code, first.json()) == (200, {"status": "offered"})
    for client in (a, b):
        assert await client.expect("rematch") == {
            "type": "rematch",
            "game_id": game_id,
            "offered_by": "x",
        }
    again = await rematch(api, alice, game_id)  # asking twice is still an offer
    assert again.json() == {"status": "offered"}

    second = await rematch(api, bob, game_id)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "created"
    new_id = second.json()["game_id"]
    assert new_id != game_id
    for client in (a, b):
        told = await client.expect("rematch")
        if "offered_by" in told:  # alice's second offer
            told = await client.expect("rematch")
        assert told == {"type": "rematch", "game_id": game_id, "new_game_id": new_id}
    assert (await rematch(api, alice, game_id)).json() == {"status": "created", "game_id": new_id}

    new = await api.snapshot(new_id, bob)
    assert new["game_type"] == GAME and new["public"] is False and new["version"] == 0
    assert new["status"] == "active" and new["turn"] == "x"
    assert new["seats"]["x"]["user_id"] == bob["user_id"]
    assert new["seats"]["o"]["user_id"] == alice["user_id"]
    assert new["clock"]["initial_ms"] == 60_000 and new["clock"]["increment_ms"] == 1_000
    stored = await server.call(server.context.store.get_game(new_id, Actor.SERVER))
    assert stored is not None and stored.options == {"ai_delay_ms": 50}
    assert (await api.http.get(f"/api/games/{new_id}")).status_code == 401  # still private


async def test_a_rematch_against_an_ai_is_created_at_once_and_the_ai_keeps_its_level(
    api: Api, server: ServerThread
) -> None:
    alice = await api.guest()
    seats = {"x": "me", "o": {"kind": "ai", "level": 2}}
    game_id = (await api.create(alice, GAME, seats=seats, options={"ai_delay_ms": 0}))["game_id"]
    a = await watch(server.ws_url(GAME, game_id, token=alice["access_token"]))
    assert (await a.request(type="resign", id="r"))["type"] == "ack"
    # The socket message: an extension, answered with an ack like the others.
    assert (await a.request(type="rematch", id="again"))["type"] == "ack"
    told = await a.expect("rematch")
    assert set(told) == {"type", "game_id", "new_game_id"} and told["game_id"] == game_id
    new_id = told["new_game_id"]
    reply = await rematch(api, alice, game_id)
    assert reply.json() == {"status": "created", "game_id": new_id}
    new = await api.wait_for(new_id, lambda s: s["version"] >= 1)  # the AI, now x, moved
    assert new["seats"]["x"] == {"kind": "ai", "level": 2}
    assert new["seats"]["o"]["user_id"] == alice["user_id"]


async def test_a_rematch_whose_game_is_not_stored_is_decided_again(
    api: Api, server: ServerThread
) -> None:
    alice = await api.guest()
    seats = {"x": "me", "o": {"kind": "ai", "level": 1}}
    game_id = (await api.create(alice, GAME, seats=seats))["game_id"]
    await api.http.post(f"/api/games/{game_id}/resign", headers=alice["headers"])
    path = server.context.store.path  # type: ignore[attr-defined]
    refuse = "CREATE TRIGGER refuse BEFORE INSERT ON games BEGIN SELECT RAISE(ABORT, 'no'); END"
    with closing(sqlite3.connect(path)) as db:
        db.execute(refuse)
        db.commit()
    assert (await rematch(api, alice, game_id)).status_code == 500
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER refuse")
        db.commit()
    again = await rematch(api, alice, game_id)
    assert again.json()["status"] == "created", again.text
    new = await api.snapshot(again.json()["game_id"], alice)
    assert new["seats"]["o"]["user_id"] == alice["user_id"]


async def test_the_memory_store_decides_one_new_game_for_two_asking_at_once() -> None:
    store = MemoryRematches()
    both = ["x", "o"]
    first, second = await asyncio.gather(
        store.ask("g", ["x"], both, "new-1"), store.ask("g", ["o"], both, "new-2")
    )
    assert (first.new_game_id, first.decided_now) == (None, False)
    assert (second.new_game_id, second.decided_now) == ("new-2", True)
    third = await store.ask("g", ["x"], both, "new-3")
    assert (third.new_game_id, third.decided_now, third.offered_by) == ("new-2", False, both)


async def test_only_the_players_of_a_finished_game_may_ask(api: Api, server: ServerThread) -> None:
    alice, bob, carol = await api.guest(), await api.guest(), await api.guest()
    game_id = (await api.create(alice, GAME, seats={"x": "me"}))["game_id"]
    assert (await rematch(api, alice, game_id)).json()["error"]["code"] == "game_over"  # waiting
    joined = await api.http.post(f"/api/games/{game_id}/join", headers=bob["headers"])
    assert joined.status_code == 200, joined.text
    playing = await rematch(api, bob, game_id)
    assert (playing.status_code, playing.json()["error"]["code"]) == (409, "game_over")
    await api.http.post(f"/api/games/{game_id}/resign", headers=bob["headers"])
    stranger = await rematch(api, carol, game_id)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "forbidden")
    anonymous = await rematch(api, None, game_id)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")
    spectator = await watch(server.ws_url(GAME, game_id, token=carol["access_token"]))
    refused = await spectator.request(type="rematch", id="s")
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    missing = await rematch(api, alice, "00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    private_id, _, _ = await finished_private_game(api)
    assert (await rematch(api, carol, private_id)).json()["error"]["code"] == "forbidden"
    assert (await rematch(api, alice, game_id)).json() == {"status": "offered"}


async def test_both_asking_at_once_on_two_processes_make_one_game(tmp_path: Path) -> None:
    async with redis_run() as (_redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        apis: list[Api] = []
        try:
            servers[0].start()  # creates the guest secret the other one reads
            servers[1].start()
            apis = [Api(server.base_url) for server in servers]
            game_id, alice = await race(servers, apis)
            await check_rls(url, game_id, alice["user_id"])
        finally:
            for api in apis:
                await api.close()
            for server in servers:
                server.stop()


def held_by(game: dict[str, Any], seat: str, user: dict[str, Any]) -> bool:
    held = game["seats"].get(seat)
    return held is not None and held.get("user_id") == user["user_id"]


async def race(servers: list[ClusterProcess], apis: list[Api]) -> tuple[str, dict[str, Any]]:
    for _ in range(3):  # a few rounds: the race is won by either side
        alice, bob = await apis[0].guest(), await apis[1].guest()
        game_id = (await apis[0].create(alice, GAME, seats={"x": "me"}))["game_id"]
        joined = await apis[1].http.post(f"/api/games/{game_id}/join", headers=bob["headers"])
        assert joined.status_code == 200, joined.text
        await apis[0].http.post(f"/api/games/{game_id}/resign", headers=alice["headers"])
        a = await watch(servers[0].ws_url(GAME, game_id, token=alice["access_token"]))
        b = await watch(servers[1].ws_url(GAME, game_id, token=bob["access_token"]))
        replies = await asyncio.gather(
            rematch(apis[0], alice, game_id), rematch(apis[1], bob, game_id)
        )
        answers = [reply.json() for reply in replies]
        created = [answer["game_id"] for answer in answers if answer["status"] == "created"]
        assert len(created) >= 1 and len(set(created)) == 1, answers
        new_id = created[0]
        for client in (a, b):
            told = await client.expect("rematch")
            while "new_game_id" not in told:
                told = await client.expect("rematch")
            assert told["new_game_id"] == new_id
        for api, user in ((apis[0], alice), (apis[1], bob)):
            again = await rematch(api, user, game_id)
            assert again.json() == {"status": "created", "game_id": new_id}
        listed = (await apis[0].http.get("/api/games", params={"limit": 200})).json()
        alice_as_o = [g["game_id"] for g in listed if held_by(g, "o", alice)]
        assert alice_as_o == [new_id]  # exactly one new game, alice now o
        for client in (a, b):
            await client.connection.close()
    return game_id, alice


async def check_rls(url: str, game_id: str, player: str) -> None:
    """A seated player reads the game's rematch row, a stranger does not; neither writes."""
    conn = await asyncpg.connect(url)
    try:
        for user_id, seen in ((player, 1), (str(uuid.uuid4()), 0)):
            async with conn.transaction():
                await as_user(conn, user_id)
                count = await conn.fetchval(
                    "select count(*) from public.game_rematches where game_id = $1", game_id
                )
                assert count == seen
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await as_user(conn, player)
                await conn.execute(
                    "update public.game_rematches set new_game_id = null where game_id = $1",
                    game_id,
                )
    finally:
        await conn.close()


async def as_user(conn: asyncpg.Connection, user_id: str) -> None:
    claims = json.dumps({"sub": user_id, "role": "authenticated"})
    await conn.execute(
        "select set_config('role', 'authenticated', true),"
        " set_config('request.jwt.claims', $1, true)",
        claims,
    )
