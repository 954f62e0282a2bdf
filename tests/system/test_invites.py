"""Invites to private games on a real server, on SQLite and on Postgres under RLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from socket_server.store.base import Actor, EventRecord, NotPermitted
from socket_server.store.postgres import PostgresStore
from tests.pgutil import migrated_database
from tests.server_harness import Api, ServerThread, connect


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'games.sqlite3'}"
        return
    async with migrated_database() as url:
        yield url


async def private_game(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice's private tic-tac-toe game with `o` free; (alice, her create answer)."""
    alice = await api.guest()
    created = await api.create(alice, "tictactoe", seats={"x": "me"}, public=False)
    return alice, created


async def join(api: Api, user: dict[str, Any], game_id: str, **body: Any) -> Any:
    return await api.http.post(f"/api/games/{game_id}/join", json=body, headers=user["headers"])


async def test_a_stranger_with_the_code_takes_the_free_seat(api: Api, server: ServerThread) -> None:
    alice, created = await private_game(api)
    game_id, code = created["game_id"], created["invite"]
    assert isinstance(code, str) and len(code) >= 16
    assert (await api.snapshot(game_id, alice))["invite"] == code
    bob = await api.guest()
    watcher = await connect(server.ws_url("tictactoe", game_id, token=alice["access_token"]))
    await watcher.expect("hello")
    assert (await watcher.expect("state"))["invite"] == code

    reply = await join(api, bob, game_id, invite=code)
    assert reply.status_code == 200, reply.text
    snapshot = reply.json()
    assert snapshot["status"] == "active"
    assert snapshot["seats"]["o"]["user_id"] == bob["user_id"]
    assert "invite" not in snapshot
    update = await watcher.expect("update")
    assert update["version"] == 1 and "invite" not in update
    assert "invite" not in await api.snapshot(game_id, alice)
    # The seat is taken: the code is void for anyone else.
    carol = await api.guest()
    late = await join(api, carol, game_id, invite=code)
    assert late.status_code == 403, late.text
    await watcher.connection.close()


async def test_a_missing_or_wrong_code_is_forbidden_and_changes_nothing(api: Api) -> None:
    alice, created = await private_game(api)
    game_id = created["game_id"]
    bob = await api.guest()
    for body in ({}, {"invite": "x" * 24}, {"invite": created["invite"][:-1]}):
        reply = await join(api, bob, game_id, **body)
        assert reply.status_code == 403, (body, reply.text)
        assert reply.json()["error"]["code"] == "forbidden"
    snapshot = await api.snapshot(game_id, alice)
    assert snapshot["version"] == 0 and snapshot["seats"]["o"] is None
    # The right code still works afterwards.
    assert (await join(api, bob, game_id, invite=created["invite"])).status_code == 200


async def test_the_code_is_shown_to_seated_players_only(api: Api, server: ServerThread) -> None:
    public = await api.create(await api.guest(), "tictactoe", seats={"x": "me"})
    assert "invite" not in public
    alice, created = await private_game(api)
    game_id = created["game_id"]
    stranger = await api.guest()
    assert (
        await api.http.get(f"/api/games/{game_id}", headers=stranger["headers"])
    ).status_code == 403
    listed = (await api.http.get("/api/games", headers=alice["headers"])).json()
    assert all("invite" not in game for game in listed)
    # A spectator of a public game sees no code either; a seated player of a full game none.
    spectator = await connect(server.ws_url("tictactoe", public["game_id"]))
    await spectator.expect("hello")
    assert "invite" not in await spectator.expect("state")
    await spectator.connection.close()


async def test_the_database_checks_the_code(database_url: str, api: Api) -> None:
    """Under RLS, a join of a private game written straight to the store as the stranger
    is refused without the code (whatever the server would have checked)."""
    if not database_url.startswith("postgres"):
        pytest.skip("row-level security is Postgres's")
    alice, created = await private_game(api)
    game_id = created["game_id"]
    bob = await api.guest()
    store = PostgresStore(database_url)
    await store.open()
    try:
        record = await store.get_game(game_id, Actor.SERVER)
        assert record is not None and record.invite == created["invite"]
        seated = await store.get_game(game_id, Actor(alice["user_id"]))
        assert seated is not None and seated.invite == created["invite"]
        record.version, record.status = 1, "active"
        record.seats = {**record.seats, "o": {"kind": "human", "user_id": bob["user_id"]}}
        record.state = {**record.state}
        for data in ({}, {"invite": "y" * 24}):
            event = EventRecord(game_id, 1, "join", seat="o", user_id=bob["user_id"], data=data)
            with pytest.raises(NotPermitted):
                await store.commit_change(record, event, Actor(bob["user_id"]))
        assert (await store.get_game(game_id, Actor.SERVER)).version == 0  # type: ignore[union-attr]
        event = EventRecord(
            game_id, 1, "join", seat="o", user_id=bob["user_id"], data={"invite": created["invite"]}
        )
        await store.commit_change(record, event, Actor(bob["user_id"]))
        joined = await store.get_game(game_id, Actor(bob["user_id"]))
        assert joined is not None and joined.version == 1
    finally:
        await store.close()
