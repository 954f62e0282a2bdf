"""Ratings on a real PostgreSQL 15: written in the final event's transaction by the
server's role, and by nobody else (row-level security and grants decide).

The player appends the final event as `gamesocket_player`; the store then switches the
same transaction to `gamesocket_server` for the ratings. Proven here: when the ratings'
write fails, the final event is not stored either; neither PostgREST's roles nor the
player's role may write a rating; everyone may read them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from socket_server.store import Actor, GameRecord
from socket_server.store.postgres import PostgresStore
from socket_server.store.ratings import ratings_for
from tests.integration.test_postgres_rls import sql_as
from tests.integration.test_ratings_store import X_WINS
from tests.integration.test_store_contract import ALICE, BOB, human, make_game, next_version, play
from tests.pgutil import postgres_store


@pytest.fixture
async def pg() -> AsyncIterator[tuple[str, PostgresStore]]:
    async with postgres_store() as store:
        yield store.url, store


async def almost_over(store: PostgresStore) -> GameRecord:
    """A rated game of alice (x) and bob (o), alice one move from winning."""
    game = make_game(seats=(human(ALICE), human(BOB)), options={"rated": True})
    await store.create_game(game, Actor.SERVER)
    return await play(store, game, *X_WINS[:-1])


async def test_the_final_event_is_not_stored_when_the_ratings_write_fails(
    pg: tuple[str, PostgresStore],
) -> None:
    url, store = pg
    game = await almost_over(store)
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            "create function public.refuse_rating() returns trigger language plpgsql as"
            " $$ begin raise exception 'ratings are down'; end $$;"
            " create trigger refuse_rating before insert or update on public.game_ratings"
            " for each row execute function public.refuse_rating()"
        )
        final, event = next_version(game, X_WINS[-1])
        with pytest.raises(asyncpg.RaiseError, match="ratings are down"):
            await store.commit_change(final, event, ALICE)
        stored = await store.get_game(game.game_id, Actor.SERVER)
        assert stored is not None and stored.version == game.version
        assert stored.status == "active"
        assert await store.events_after(game.game_id, game.version, Actor.SERVER) == []
        assert await admin.fetchval("select count(*) from public.game_ratings") == 0

        await admin.execute("drop trigger refuse_rating on public.game_ratings")
        await store.commit_change(final, event, ALICE)  # now both land, together
        users = [ALICE.user_id or "", BOB.user_id or ""]
        rows = await ratings_for(store).ratings_of("tictactoe", users)
        assert [row.games for row in rows.values()] == [1, 1]
    finally:
        await admin.close()


async def test_a_players_final_move_rates_and_everyone_reads_the_ratings(
    pg: tuple[str, PostgresStore],
) -> None:
    url, store = pg
    game = await almost_over(store)
    final, event = next_version(game, X_WINS[-1])
    await store.commit_change(final, event, ALICE)  # as the player, under RLS
    # Everyone reads them (anon, a signed-in user through PostgREST).
    for actor in (Actor.ANONYMOUS, BOB):
        async with sql_as(url, actor) as conn:
            found = await conn.fetch(
                "select user_id::text, games from public.game_ratings order by rating desc"
            )
        assert [tuple(row) for row in found] == [(ALICE.user_id, 1), (BOB.user_id, 1)]


INSERT = (
    "insert into public.game_ratings (user_id, game_type, rating, deviation, volatility)"
    " values ($1, 'tictactoe', 3000, 50, 0.06)"
)
UPDATE = "update public.game_ratings set rating = 3000 where user_id = $1"
DELETE = "delete from public.game_ratings where user_id = $1"


@pytest.mark.parametrize("statement", [INSERT, UPDATE, DELETE])
async def test_no_player_writes_a_rating(pg: tuple[str, PostgresStore], statement: str) -> None:
    url, store = pg
    game = await almost_over(store)
    final, event = next_version(game, X_WINS[-1])
    await store.commit_change(final, event, ALICE)
    # PostgREST's roles (anon, authenticated) and the server's role for a player's writes.
    for actor, write in ((Actor.ANONYMOUS, False), (ALICE, False), (ALICE, True)):
        async with sql_as(url, actor, write=write) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement, ALICE.user_id)
    rows = await ratings_for(store).ratings_of("tictactoe", [ALICE.user_id or ""])
    assert rows[ALICE.user_id or ""].rating.rating < 3000


async def test_the_server_role_creates_and_updates_ratings_and_nobody_deletes_one(
    pg: tuple[str, PostgresStore],
) -> None:
    url, _ = pg
    user_id = str(uuid.uuid4())
    async with sql_as(url, Actor.SERVER) as conn:
        await conn.execute(INSERT, user_id)
        assert await conn.execute(UPDATE, user_id) == "UPDATE 1"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(DELETE, user_id)
