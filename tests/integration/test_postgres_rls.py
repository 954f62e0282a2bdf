"""Row-level security on a real PostgreSQL 15: the policies of migrations/ decide.

Two ways in: plain SQL on a connection that switches role and sets the JWT claims as
PostgREST does (`authenticated` / `anon`: the reads a supabase-py client gets) or as the
server does for writes (`gamesocket_player` with the player's claims, `gamesocket_server`);
and `PostgresStore` called directly, with the GameService's own checks out of the
picture, which the database must refuse all the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest

from games import TicTacToeState
from socket_server.migrate import apply_migrations_async, migration_files
from socket_server.store import (
    Actor,
    EventRecord,
    GameRecord,
    GameStatus,
    NotPermitted,
    StaleVersion,
)
from socket_server.store.postgres import PostgresStore
from tests.integration.test_store_contract import next_version
from tests.pgutil import migrated_database

ALICE = Actor(user_id=str(uuid.uuid4()), claims={"email": "alice@example.com"})
BOB = Actor(user_id=str(uuid.uuid4()))
CAROL = Actor(user_id=str(uuid.uuid4()))  # a stranger to every game below
AI = {"kind": "ai", "level": 3}


def human(actor: Actor) -> dict[str, Any]:
    return {"kind": "human", "user_id": actor.user_id}


def new_game(
    x: Any, o: Any, *, public: bool, creator: Actor, status: GameStatus = "active"
) -> GameRecord:
    return GameRecord(
        game_id=str(uuid.uuid4()),
        game_type="tictactoe",
        status=status,
        seats={"x": x, "o": o},
        state=TicTacToeState.initial().to_json(),
        version=0,
        public=public,
        created_by=creator.user_id,
        turn="x" if status == "active" else None,
    )


@dataclass
class World:
    url: str
    store: PostgresStore
    private: GameRecord  # alice (x) vs bob (o), alice has played cell 4: bob to move
    public: GameRecord  # alice (x) vs an AI (o), nothing played


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with migrated_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            private = new_game(human(ALICE), human(BOB), public=False, creator=ALICE)
            public = new_game(human(ALICE), AI, public=True, creator=ALICE)
            # A player seats only themselves; a game of two players is the server's to create.
            await store.create_game(private, Actor.SERVER)
            await store.create_game(public, ALICE)
            private, event = next_version(private, 4, actor=ALICE)
            await store.commit_change(private, event, ALICE)
            yield World(url, store, private, public)
        finally:
            await store.close()


@asynccontextmanager
async def sql_as(
    url: str, actor: Actor, *, write: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction as `actor`: a PostgREST request, or with `write`
    the server writing for a player (`gamesocket_player`, same claims).

    Rolled back at the end: what a test tries never leaks into the next block.
    """
    if actor.is_server:
        role, claims = "gamesocket_server", {"role": "gamesocket_server"}
    elif actor.user_id is None:
        role, claims = "anon", {"role": "anon"}
    else:
        role = "gamesocket_player" if write else "authenticated"
        claims = {"sub": actor.user_id, "role": "authenticated"}
    conn = await asyncpg.connect(url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"set local role {role}")
        await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(claims))
        try:
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def count(url: str, actor: Actor, table: str, game: GameRecord) -> int:
    column = "id" if table == "games" else "game_id"
    async with sql_as(url, actor) as conn:
        found: int = await conn.fetchval(
            f"select count(*) from public.{table} where {column} = $1", game.game_id
        )
    return found


INSERT_EVENT = (
    "insert into public.game_events (game_id, version, kind, seat, move, user_id)"
    " values ($1, $2, $3, $4, $5::jsonb, $6)"
)


async def insert_move(url: str, actor: Actor, game: GameRecord, version: int, seat: str) -> None:
    async with sql_as(url, actor, write=True) as conn:
        await conn.execute(INSERT_EVENT, game.game_id, version, "move", seat, "0", actor.user_id)


# -- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["games", "game_seats", "game_events"])
async def test_a_private_game_is_visible_to_its_players_only(world: World, table: str) -> None:
    expected = {"games": 1, "game_seats": 2, "game_events": 1}[table]
    for player in (ALICE, BOB, Actor.SERVER):
        assert await count(world.url, player, table, world.private) == expected
    for outsider in (CAROL, Actor.ANONYMOUS):
        assert await count(world.url, outsider, table, world.private) == 0


async def test_anon_reads_public_games_and_their_moves_only(world: World) -> None:
    public, event = next_version(world.public, 0, actor=ALICE)
    await world.store.commit_change(public, event, ALICE)
    async with sql_as(world.url, Actor.ANONYMOUS) as conn:
        games = await conn.fetch("select id::text from public.games")
        moves = await conn.fetch("select game_id::text, version, move from public.game_events")
    assert [r["id"] for r in games] == [world.public.game_id]
    assert [(r["game_id"], r["version"], r["move"]) for r in moves] == [
        (world.public.game_id, 1, "0")
    ]
    # The store, as anonymous, sees the same.
    assert await world.store.get_game(world.private.game_id, Actor.ANONYMOUS) is None
    assert await world.store.events_after(world.private.game_id, 0, Actor.ANONYMOUS) == []
    assert len(await world.store.events_after(world.public.game_id, 0, Actor.ANONYMOUS)) == 1


# -- appending moves in SQL --------------------------------------------------------------


async def test_the_player_to_move_may_append_at_the_next_version(world: World) -> None:
    # The positive control for the refusals below: the same insert, by the right user.
    async with sql_as(world.url, BOB, write=True) as conn:
        await conn.execute(INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id)
        stored = await conn.fetchval(
            "select count(*) from public.game_events where game_id = $1", world.private.game_id
        )
    assert stored == 2


async def test_a_stranger_cannot_append_to_someone_elses_game(world: World) -> None:
    for game in (world.private, world.public):
        seat = "o" if game is world.private else "x"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await insert_move(world.url, CAROL, game, game.version + 1, seat)


async def test_no_move_out_of_turn(world: World) -> None:
    # Bob is to move. Alice may not move again, neither in her seat nor in bob's.
    for seat in ("x", "o"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await insert_move(world.url, ALICE, world.private, 2, seat)
    # Nor may bob claim alice's seat, or move in a seat that is not his.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await insert_move(world.url, BOB, world.private, 2, "x")


async def test_no_move_at_a_stale_or_future_version(world: World) -> None:
    for version in (1, 3, 7):  # the game is at version 1: only 2 is next
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await insert_move(world.url, BOB, world.private, version, "o")


async def test_a_move_cannot_be_signed_as_someone_else(world: World) -> None:
    async with sql_as(world.url, CAROL, write=True) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute(
                INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id
            )


@pytest.mark.parametrize("change", ["move", "advance", "create"])
async def test_api_clients_only_read(world: World, change: str) -> None:
    # Through PostgREST (anon, authenticated) nobody writes, not even bob's legal move:
    # every change must have passed the server's rules.
    statement, args = {
        "move": (INSERT_EVENT, (world.private.game_id, 2, "move", "o", "0", BOB.user_id)),
        "advance": ("update public.games set version = 2 where id = $1", (world.private.game_id,)),
        "create": (
            "insert into public.games (id, game_type, status, seats, state, version)"
            " values (gen_random_uuid(), 'tictactoe', 'waiting', '{}', '{}', 0)",
            (),
        ),
    }[change]
    for actor in (BOB, Actor.ANONYMOUS):
        async with sql_as(world.url, actor) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement, *args)


# -- the log is append-only -----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "update public.game_events set san = 'Qh5' where game_id = $1",
        "update public.game_events set version = 9 where game_id = $1",
        "delete from public.game_events where game_id = $1",
    ],
)
async def test_nobody_updates_or_deletes_a_move(world: World, statement: str) -> None:
    # Not the players of the game (as API clients or through the server), not a
    # stranger, not anon, not the server role.
    for actor in (ALICE, BOB, CAROL, Actor.ANONYMOUS, Actor.SERVER):
        for write in (False, True):
            async with sql_as(world.url, actor, write=write) as conn:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(statement, world.private.game_id)
    assert len(await world.store.events_after(world.private.game_id, 0, Actor.SERVER)) == 1


async def test_not_even_the_table_owner_rewrites_the_log(world: World) -> None:
    conn = await asyncpg.connect(world.url)  # the superuser that owns the tables
    try:
        for statement in (
            "update public.game_events set san = 'Qh5' where game_id = $1",
            "delete from public.game_events where game_id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement, world.private.game_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("truncate public.game_events cascade")
        assert await conn.fetchval("select count(*) from public.game_events") == 1
    finally:
        await conn.close()


async def test_a_player_cannot_rewrite_the_game_row_without_an_event(world: World) -> None:
    # Bob is to move and seated, yet a bare update (say, declaring himself the winner)
    # matches no row: a game row only advances to an event its author just appended.
    async with sql_as(world.url, BOB, write=True) as conn:
        status = await conn.execute(
            "update public.games set status = 'finished', version = version + 1 where id = $1",
            world.private.game_id,
        )
    assert status == "UPDATE 0"
    assert await world.store.get_game(world.private.game_id, BOB) == world.private


async def test_a_game_row_advances_one_version_at_a_time(world: World) -> None:
    async with sql_as(world.url, BOB, write=True) as conn:
        await conn.execute(INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id)
        with pytest.raises(asyncpg.PostgresError, match="must advance") as raised:
            await conn.execute(
                "update public.games set version = 5 where id = $1", world.private.game_id
            )
    assert raised.value.sqlstate == "GS409"


# -- the store with the service's checks out of the picture ------------------------------------


async def test_store_refuses_an_out_of_turn_move(world: World) -> None:
    game, event = next_version(world.private, 0, actor=BOB)  # built for bob's seat "o" ...
    with pytest.raises(NotPermitted):
        await world.store.commit_change(game, replace(event, user_id=ALICE.user_id), ALICE)
    event.seat = "x"  # ... or claimed for alice's own seat, which is not to move
    with pytest.raises(NotPermitted):
        await world.store.commit_change(game, replace(event, user_id=ALICE.user_id), ALICE)
    assert await world.store.get_game(world.private.game_id, ALICE) == world.private


async def test_store_refuses_a_stranger_and_the_server_in_a_human_seat(world: World) -> None:
    game, event = next_version(world.private, 0, actor=CAROL)
    with pytest.raises(NotPermitted):
        await world.store.commit_change(game, event, CAROL)
    # The server role plays AI seats only; bob's seat is human.
    with pytest.raises(NotPermitted):
        await world.store.commit_change(game, replace(event, user_id=None), Actor.SERVER)
    with pytest.raises(NotPermitted):
        await world.store.commit_change(game, replace(event, user_id=None), Actor.ANONYMOUS)
    assert await world.store.get_game(world.private.game_id, BOB) == world.private


async def test_store_reports_a_stale_version(world: World) -> None:
    game, event = next_version(world.private, 0, actor=BOB)
    older = replace(game, version=1)
    with pytest.raises(StaleVersion):
        await world.store.commit_change(older, replace(event, version=1), BOB)
    await world.store.commit_change(game, event, BOB)
    assert (await world.store.get_game(world.private.game_id, BOB)) == game


async def test_server_plays_the_ai_seat_on_its_turn_only(world: World) -> None:
    public, event = next_version(world.public, 0, actor=ALICE)
    ai_game, ai_event = next_version(public, 8, actor=Actor.SERVER)
    with pytest.raises(NotPermitted):  # not the AI's turn yet
        await world.store.commit_change(
            replace(ai_game, version=1), replace(ai_event, version=1), Actor.SERVER
        )
    await world.store.commit_change(public, event, ALICE)
    await world.store.commit_change(ai_game, ai_event, Actor.SERVER)
    events = await world.store.events_after(world.public.game_id, 0, CAROL)
    assert [(e.seat, e.move, e.user_id) for e in events] == [
        ("x", 0, ALICE.user_id),
        ("o", 8, None),
    ]


# -- create, join, resign, abort as a normal user --------------------------------------------


async def test_create_seats_nobody_but_the_creator(world: World) -> None:
    with pytest.raises(NotPermitted):
        await world.store.create_game(new_game(human(BOB), AI, public=True, creator=ALICE), ALICE)
    with pytest.raises(NotPermitted):
        await world.store.create_game(new_game(human(ALICE), AI, public=True, creator=BOB), ALICE)
    with pytest.raises(NotPermitted):
        await world.store.create_game(new_game(AI, AI, public=True, creator=ALICE), Actor.ANONYMOUS)
    mine = new_game(AI, human(ALICE), public=False, creator=ALICE)
    await world.store.create_game(mine, ALICE)
    assert await world.store.get_game(mine.game_id, ALICE) == mine


def taken(game: GameRecord, seat: str, actor: Actor) -> tuple[GameRecord, EventRecord]:
    """`game` after `actor` joins `seat`, and its join event."""
    new = replace(
        game,
        version=game.version + 1,
        seats={**game.seats, seat: human(actor)},
        status="active",
        turn="x",
    )
    event = EventRecord(
        game_id=game.game_id, version=new.version, kind="join", seat=seat, user_id=actor.user_id
    )
    return new, event


async def test_join_takes_an_empty_seat_of_a_waiting_game_only(world: World) -> None:
    waiting = new_game(human(ALICE), None, public=True, creator=ALICE, status="waiting")
    await world.store.create_game(waiting, ALICE)
    # Nobody may take a seat someone holds, even in a waiting game.
    grab, grab_event = taken(waiting, "x", CAROL)
    with pytest.raises(NotPermitted):
        await world.store.commit_change(grab, grab_event, CAROL)
    joined, event = taken(waiting, "o", BOB)
    await world.store.commit_change(joined, event, BOB)
    assert await world.store.get_game(waiting.game_id, BOB) == joined
    # Seated, bob now plays: the seat table followed the seats.
    async with sql_as(world.url, BOB) as conn:
        seats = await conn.fetch(
            "select seat, user_id::text from public.game_seats where game_id = $1 order by seat",
            waiting.game_id,
        )
    assert [tuple(r) for r in seats] == [("o", BOB.user_id), ("x", ALICE.user_id)]
    # The game is active now: the seat is gone for carol either way.
    late, late_event = taken(joined, "o", CAROL)
    with pytest.raises(NotPermitted):
        await world.store.commit_change(late, late_event, CAROL)


async def test_resign_is_for_ones_own_seat(world: World) -> None:
    finished = replace(
        world.private,
        version=2,
        status="finished",
        state=TicTacToeState.from_json(world.private.state).finish("x", "resignation").to_json(),
    )
    resign = EventRecord(
        game_id=finished.game_id, version=2, kind="resign", seat="o", user_id=ALICE.user_id
    )
    with pytest.raises(NotPermitted):  # alice resigning bob's seat
        await world.store.commit_change(finished, resign, ALICE)
    with pytest.raises(NotPermitted):  # carol holds no seat at all
        await world.store.commit_change(finished, replace(resign, user_id=CAROL.user_id), CAROL)
    await world.store.commit_change(finished, replace(resign, user_id=BOB.user_id), BOB)
    assert (await world.store.get_game(finished.game_id, ALICE)) == finished


async def test_a_draw_is_agreed_by_a_seated_player_only(world: World) -> None:
    drawn = replace(
        world.private,
        version=2,
        status="finished",
        state=TicTacToeState.from_json(world.private.state).finish(None, "draw_agreed").to_json(),
    )
    draw = EventRecord(game_id=drawn.game_id, version=2, kind="draw", seat="o")
    for outsider in (CAROL, Actor.SERVER):  # the server agrees draws for AI seats only
        with pytest.raises(NotPermitted):
            await world.store.commit_change(
                drawn, replace(draw, user_id=outsider.user_id), outsider
            )
    await world.store.commit_change(drawn, replace(draw, user_id=BOB.user_id), BOB)
    assert (await world.store.get_game(drawn.game_id, ALICE)) == drawn


async def test_abort_by_a_player_not_a_stranger(world: World) -> None:
    aborted = replace(world.public, version=1, status="aborted")
    abort = EventRecord(game_id=aborted.game_id, version=1, kind="abort", user_id=CAROL.user_id)
    with pytest.raises(NotPermitted):
        await world.store.commit_change(aborted, abort, CAROL)
    await world.store.commit_change(aborted, replace(abort, user_id=ALICE.user_id), ALICE)
    assert (await world.store.get_game(aborted.game_id, CAROL)) == aborted


# -- the shape of the schema -------------------------------------------------------------


async def test_every_table_has_rls_and_every_policy_names_its_roles(world: World) -> None:
    conn = await asyncpg.connect(world.url)
    try:
        tables = await conn.fetch(
            "select relname, relrowsecurity, relforcerowsecurity from pg_class"
            " where relnamespace = 'public'::regnamespace and relkind = 'r'"
        )
        policies = await conn.fetch(
            "select policyname, roles::text[], qual, with_check from pg_policies"
        )
        server = await conn.fetchrow(
            "select rolsuper, rolbypassrls, rolcanlogin from pg_roles"
            " where rolname = 'gamesocket_server'"
        )
    finally:
        await conn.close()
    assert {r["relname"] for r in tables} >= {"games", "game_seats", "game_events", "game_chat"}
    assert all(r["relrowsecurity"] for r in tables)
    forced = {r["relname"] for r in tables if r["relforcerowsecurity"]}
    assert forced >= {"game_events", "game_chat"}
    assert len(policies) >= 12
    for policy in policies:
        assert "public" not in policy["roles"], policy["policyname"]
        text = f"{policy['qual']} {policy['with_check']}"
        # auth.uid() is evaluated once per statement, not once per row.
        assert text.count("auth.uid()") == text.count("SELECT auth.uid()"), policy["policyname"]
    assert tuple(server) == (False, False, False)


async def test_migrations_are_recorded_and_not_reapplied(world: World) -> None:
    assert await apply_migrations_async(world.url, bootstrap_local=True) == []
    conn = await asyncpg.connect(world.url)
    try:
        names = await conn.fetch("select name from gamesocket.gamesocket_migrations order by name")
    finally:
        await conn.close()
    # Every file of migrations/, in name order, each once.
    assert [r["name"] for r in names] == [path.name for path in migration_files()]
    assert names[0]["name"] == "20261121110000_gamesocket_tables.sql"


async def test_the_api_roles_hold_no_write_privilege_and_cannot_become_writers(
    world: World,
) -> None:
    conn = await asyncpg.connect(world.url)
    try:
        writable = await conn.fetch(
            "select r.rolname, c.relname from pg_roles r, pg_class c"
            " where r.rolname in ('anon', 'authenticated', 'authenticator')"
            " and c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
            " and has_table_privilege(r.oid, c.oid, 'insert, update, delete, truncate')"
        )
        # PostgREST logs in as authenticator: it must not reach the writing roles.
        reachable = await conn.fetch(
            "select w from unnest(array['gamesocket_player', 'gamesocket_server']) as w"
            " where pg_has_role('authenticator', w, 'member')"
        )
    finally:
        await conn.close()
    assert writable == []
    assert reachable == []
