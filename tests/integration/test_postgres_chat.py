"""Chat under row-level security on a real PostgreSQL 15 (migrations/*_gamesocket_chat.sql).

The store is called directly, without the service's checks: the database itself keeps
players out of the spectators' room, lets authors write only to their own room, hides
a private game's chat from strangers, and lets no API client write at all.
"""

from __future__ import annotations

import asyncpg
import pytest

from socket_server.store import Actor, NotPermitted
from socket_server.store.base import ChatLimit, ChatRecord, ChatRoom
from tests.integration.test_postgres_rls import (
    ALICE,
    BOB,
    CAROL,
    World,
    sql_as,
    world,  # noqa: F401 (the fixture)
)

LIMIT = ChatLimit()


def message(w: World, actor: Actor, room: ChatRoom, *, private: bool = False) -> ChatRecord:
    game = w.private if private else w.public
    assert actor.user_id is not None
    return ChatRecord(game.game_id, room, actor.user_id, f"{room} from {actor.user_id[:4]}")


async def test_authors_write_only_to_their_own_room(world: World) -> None:  # noqa: F811
    store = world.store
    # The public game: alice is seated (x), carol watches.
    assert await store.append_chat(message(world, ALICE, "players"), LIMIT, ALICE) == 1
    assert await store.append_chat(message(world, CAROL, "spectators"), LIMIT, CAROL) == 2
    wrong_rooms: list[tuple[Actor, ChatRoom]] = [(ALICE, "spectators"), (CAROL, "players")]
    for actor, room in wrong_rooms:
        with pytest.raises(NotPermitted):
            await store.append_chat(message(world, actor, room), LIMIT, actor)
    # A stranger to the private game writes to neither of its rooms.
    rooms: list[ChatRoom] = ["players", "spectators"]
    for room in rooms:
        with pytest.raises(NotPermitted):
            await store.append_chat(message(world, CAROL, room, private=True), LIMIT, CAROL)
    seqs = [m.seq for m in await store.chat_after(world.public.game_id, "players", 0, 9, CAROL)]
    assert seqs == [1]


async def test_players_never_read_the_spectators_room(world: World) -> None:  # noqa: F811
    store = world.store
    game_id = world.public.game_id
    await store.append_chat(message(world, CAROL, "spectators"), LIMIT, CAROL)
    await store.append_chat(message(world, BOB, "spectators"), LIMIT, BOB)
    await store.append_chat(message(world, ALICE, "players"), LIMIT, ALICE)
    assert await store.chat_after(game_id, "spectators", 0, 9, ALICE) == []
    for reader in (BOB, Actor.ANONYMOUS, Actor.SERVER):
        found = await store.chat_after(game_id, "spectators", 0, 9, reader)
        assert [m.seq for m in found] == [1, 2], reader
    assert [m.seq for m in await store.chat_after(game_id, "players", 0, 9, ALICE)] == [3]


async def test_a_private_games_chat_is_its_players_only(world: World) -> None:  # noqa: F811
    store = world.store
    game_id = world.private.game_id
    assert await store.append_chat(message(world, BOB, "players", private=True), LIMIT, BOB) == 1
    assert len(await store.chat_after(game_id, "players", 0, 9, ALICE)) == 1
    for stranger in (CAROL, Actor.ANONYMOUS):
        assert await store.chat_after(game_id, "players", 0, 9, stranger) == []
    async with sql_as(world.url, CAROL) as conn:
        assert await conn.fetchval("select count(*) from public.game_chat") == 0


async def test_api_clients_cannot_write_or_change_chat(world: World) -> None:  # noqa: F811
    store = world.store
    await store.append_chat(message(world, ALICE, "players"), LIMIT, ALICE)
    insert = (
        "insert into public.game_chat (game_id, seq, room, user_id, text)"
        " values ($1, 9, 'players', $2, 'forged')"
    )
    for actor in (ALICE, Actor.ANONYMOUS):
        async with sql_as(world.url, actor) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(insert, world.public.game_id, ALICE.user_id)
    for statement in (
        "update public.game_chat set text = 'changed'",
        "delete from public.game_chat",
    ):
        for actor in (ALICE, Actor.SERVER):
            async with sql_as(world.url, actor, write=True) as conn:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
    # As the author but under another user's name: refused by the insert policy.
    async with sql_as(world.url, CAROL, write=True) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(insert, world.public.game_id, ALICE.user_id)
    texts = [m.text for m in await store.chat_after(world.public.game_id, "players", 0, 9, BOB)]
    assert texts == ["players from " + (ALICE.user_id or "")[:4]]
