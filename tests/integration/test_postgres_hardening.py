"""Defense in depth in Postgres: what the hardening migration refuses, and what it keeps.

On a real PostgreSQL with every migration of migrations/. As `anon` and `authenticated`
(PostgREST's roles) the policy helpers that take a user, or check an append, cannot be
called: nobody probes the seats or the version of a private game through them. As
`gamesocket_player` with a user's claims (what the server writes as) a change that its
event does not justify is refused: a move that replaces the opponent's seat, writes a
made-up result or a board without its move, a join that ends the game or seats
someone else, a status that goes back, an event left in the log without its game row.
Every refusal has its positive control (the honest change of the same kind is stored),
and whole games played through the GameService on this database still work.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest

import agents
from games import TicTacToeState
from socket_server.ai_turns import AiTurns
from socket_server.changes import Refused
from socket_server.fanout.memory import MemoryBroker
from socket_server.protocol import ErrorCode
from socket_server.registry import GameTypes
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store import Actor, EventRecord, GameRecord, GameStatus, NotPermitted
from socket_server.store.postgres import PostgresStore
from tests.integration.test_postgres_rls import human, new_game
from tests.integration.test_store_contract import next_version
from tests.pgutil import migrated_database

ALICE = Actor(user_id=str(uuid.uuid4()))
BOB = Actor(user_id=str(uuid.uuid4()))
CAROL = Actor(user_id=str(uuid.uuid4()))  # a stranger to every game below
AI = {"kind": "ai", "level": 1}


@dataclass
class World:
    url: str
    store: PostgresStore
    private: GameRecord  # alice (x) vs bob (o), alice has played cell 4: bob (o) to move
    waiting: GameRecord  # public, alice in x, o empty
    robot: GameRecord  # public, alice (x) vs the AI (o), alice has played 0: the AI to move


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with migrated_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            private = new_game(human(ALICE), human(BOB), public=False, creator=ALICE)
            waiting = new_game(human(ALICE), None, public=True, creator=ALICE, status="waiting")
            robot = new_game(human(ALICE), AI, public=True, creator=ALICE)
            await store.create_game(private, Actor.SERVER)
            await store.create_game(waiting, ALICE)
            await store.create_game(robot, ALICE)
            private, event = next_version(private, 4, actor=ALICE)
            await store.commit_change(private, event, ALICE)
            robot, event = next_version(robot, 0, actor=ALICE)
            await store.commit_change(robot, event, ALICE)
            yield World(url, store, private, waiting, robot)
        finally:
            await store.close()


@asynccontextmanager
async def sql_as(url: str, actor: Actor, *, write: bool = False) -> AsyncIterator[Any]:
    """A connection in a transaction as `actor`, as PostgREST (or, with `write`, the
    server for a player) runs one; committed at the end unless it raised."""
    if actor.is_server:
        role, claims = "gamesocket_server", {"role": "gamesocket_server"}
    elif actor.user_id is None:
        role, claims = "anon", {"role": "anon"}
    else:
        role = "gamesocket_player" if write else "authenticated"
        claims = {"sub": actor.user_id, "role": "authenticated"}
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(f"set local role {role}")
            await conn.execute(
                "select set_config('request.jwt.claims', $1, true)", json.dumps(claims)
            )
            yield conn
    finally:
        await conn.close()


def ended(game: GameRecord, winner: str | None, reason: str) -> dict[str, Any]:
    """The game's state with a result written into it (and nothing else changed)."""
    return {**game.state, "result": {"winner": winner, "reason": reason}}


# -- 1. the helpers API clients may call ----------------------------------------------------

HELPER_CALLS = {
    "is_seated": "select private.is_seated($1::uuid, $2::uuid)",
    "holds_seat": "select private.holds_seat($1::uuid, 'o', $2::uuid)",
    "can_read_game": "select private.can_read_game($1::uuid, $2::uuid)",
    "player_may_append": "select private.player_may_append($1::uuid, 2, 'move', 'o', $2::uuid)",
    "seats_only": "select private.seats_only('{}'::json, $2::uuid) or $1::uuid is null",
    "server_may_append": "select private.server_may_append($1::uuid, 2, 'move', $2::text)",
    "lock_game": "select private.lock_game($1::uuid) or $2::uuid is null",
}


@pytest.mark.parametrize("helper", sorted(HELPER_CALLS))
async def test_api_roles_cannot_probe_private_games_through_the_helpers(
    world: World, helper: str
) -> None:
    # "Is bob seated in this private game, and is it at version 1?" asked by a stranger.
    for actor in (CAROL, Actor.ANONYMOUS):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with sql_as(world.url, actor) as conn:
                await conn.fetchval(HELPER_CALLS[helper], world.private.game_id, BOB.user_id)


async def test_api_roles_execute_only_the_helpers_about_themselves(world: World) -> None:
    conn = await asyncpg.connect(world.url)
    try:
        rows = await conn.fetch(
            "select r.rolname, p.proname from pg_proc p, pg_roles r"
            " where p.pronamespace in ('private'::regnamespace, 'gamesocket'::regnamespace)"
            " and r.rolname in ('anon', 'authenticated', 'gamesocket_player')"
            " and has_function_privilege(r.oid, p.oid, 'execute')"
        )
    finally:
        await conn.close()
    executable: dict[str, set[str]] = {}
    for row in rows:
        executable.setdefault(row["rolname"], set()).add(row["proname"])
    assert executable["anon"] == {"caller_is_seated", "caller_can_read"}
    assert executable["authenticated"] == {"caller_is_seated", "caller_can_read"}
    # The server's player role neither needs the helpers that take a user.
    assert not executable["gamesocket_player"] & {"is_seated", "holds_seat", "can_read_game"}


async def test_the_caller_helpers_answer_about_the_caller_only(world: World) -> None:
    game_id = world.private.game_id
    query = "select private.caller_is_seated($1::uuid), private.caller_can_read($1::uuid)"
    answers = {}
    for name, actor in (("bob", BOB), ("carol", CAROL), ("anon", Actor.ANONYMOUS)):
        async with sql_as(world.url, actor) as conn:
            answers[name] = tuple(await conn.fetchrow(query, game_id))
    assert answers == {"bob": (True, True), "carol": (False, False), "anon": (False, False)}


@pytest.mark.parametrize("table", ["games", "game_seats", "game_events"])
async def test_the_read_policies_still_work_without_the_revoked_helpers(
    world: World, table: str
) -> None:
    column = "id" if table == "games" else "game_id"
    query = f"select count(*) from public.{table} where {column} = $1"
    seen = {}
    for name, actor in (("bob", BOB), ("carol", CAROL), ("anon", Actor.ANONYMOUS)):
        async with sql_as(world.url, actor) as conn:
            seen[name] = (
                await conn.fetchval(query, world.private.game_id),
                await conn.fetchval(query, world.waiting.game_id),
            )
    private = {"games": 1, "game_seats": 2, "game_events": 1}[table]
    public = {"games": 1, "game_seats": 1, "game_events": 0}[table]
    assert seen == {"bob": (private, public), "carol": (0, public), "anon": (0, public)}


# -- 2. a change must be what its event says ---------------------------------------------------


def bobs_move(world: World) -> tuple[GameRecord, EventRecord]:
    """Bob's honest move (cell 0) in the private game, built as the service builds it."""
    return next_version(world.private, 0, actor=BOB)


def forged_moves(world: World) -> dict[str, GameRecord]:
    game, _ = bobs_move(world)
    board = game.state
    return {
        # The attack: bob's move also takes alice's seat ...
        "seat swap": replace(game, seats={"x": human(BOB), "o": human(BOB)}),
        "seat for a stranger": replace(game, seats={"x": human(CAROL), "o": human(BOB)}),
        # ... or writes a made-up result.
        "alice resigned": replace(game, status="finished", state=ended(game, "o", "resignation")),
        "win for alice": replace(game, status="finished", state=ended(game, "x", "three_in_a_row")),
        "win for a ghost": replace(game, status="finished", state=ended(game, "z", "stalemate")),
        "result left active": replace(game, state=ended(game, "o", "three_in_a_row")),
        "finished without result": replace(game, status="finished"),
        "aborted by a move": replace(game, status="aborted", state=ended(game, None, "aborted")),
        # A status that goes back, so that the seats could be taken again.
        "back to waiting": replace(game, status="waiting"),
        # A board the move did not make: the move missing, or the past rewritten.
        "move not recorded": replace(game, state=world.private.state),
        "history rewritten": replace(game, state={**board, "history": [8, 0]}),
    }


async def test_a_players_move_cannot_carry_a_seat_swap_or_a_made_up_result(world: World) -> None:
    _, event = bobs_move(world)
    for name, forged in forged_moves(world).items():
        with pytest.raises(NotPermitted):
            await world.store.commit_change(forged, event, BOB)
        stored = await world.store.get_game(world.private.game_id, BOB)
        assert stored == world.private, name
    # The honest move of the same call is stored.
    honest, event = bobs_move(world)
    await world.store.commit_change(honest, event, BOB)
    assert await world.store.get_game(world.private.game_id, BOB) == honest


def bobs_join(world: World) -> tuple[GameRecord, EventRecord]:
    """Bob takes the empty seat o of the waiting game: it becomes active."""
    game = world.waiting
    joined = replace(
        game,
        version=1,
        seats={**game.seats, "o": human(BOB)},
        status="active",
        turn="x",
    )
    event = EventRecord(game.game_id, 1, "join", seat="o", user_id=BOB.user_id)
    return joined, event


async def test_a_join_fills_one_empty_seat_with_the_joining_user_and_ends_nothing(
    world: World,
) -> None:
    joined, event = bobs_join(world)
    forgeries = {
        "seats a stranger": replace(joined, seats={"x": human(ALICE), "o": human(CAROL)}),
        "takes alice's seat too": replace(joined, seats={"x": human(BOB), "o": human(BOB)}),
        "writes a result": replace(
            joined, status="finished", state=ended(joined, "o", "resignation")
        ),
        "stays waiting when full": replace(joined, status="waiting", turn=None),
        "plays a move": replace(joined, state={**joined.state, "history": [4]}),
    }
    for name, forged in forgeries.items():
        with pytest.raises(NotPermitted):
            await world.store.commit_change(forged, event, BOB)
        assert await world.store.get_game(joined.game_id, BOB) == world.waiting, name
    # Nor may bob name a taken seat for his join.
    with pytest.raises(NotPermitted):
        await world.store.commit_change(joined, replace(event, seat="x"), BOB)
    await world.store.commit_change(joined, event, BOB)
    assert await world.store.get_game(joined.game_id, BOB) == joined


@pytest.mark.parametrize(
    ("kind", "honest", "forged"),
    [
        # bob (o) resigns: alice wins, not bob.
        ("resign", ("finished", "x", "resignation"), ("finished", "o", "resignation")),
        ("resign", ("finished", "x", "resignation"), ("finished", "x", "draw_agreed")),
        # an agreed draw has no winner
        ("draw", ("finished", None, "draw_agreed"), ("finished", "o", "draw_agreed")),
        # an abort is an abort
        ("abort", ("aborted", None, "aborted"), ("finished", "o", "resignation")),
        ("abort", ("aborted", None, "aborted"), ("aborted", "o", "aborted")),
    ],
)
async def test_an_ending_event_ends_the_game_only_as_its_kind_says(
    world: World, kind: str, honest: tuple[Any, ...], forged: tuple[Any, ...]
) -> None:
    game = world.private

    def ending(status: GameStatus, winner: str | None, reason: str) -> GameRecord:
        return replace(game, version=2, status=status, turn=None, state=ended(game, winner, reason))

    event = EventRecord(game.game_id, 2, kind, seat="o", user_id=BOB.user_id)  # type: ignore[arg-type]
    with pytest.raises(NotPermitted):
        await world.store.commit_change(ending(*forged), event, BOB)
    # Ending the game must not touch the seats either.
    swapped = replace(ending(*honest), seats={"x": human(BOB), "o": human(ALICE)})
    with pytest.raises(NotPermitted):
        await world.store.commit_change(swapped, event, BOB)
    assert await world.store.get_game(game.game_id, BOB) == game
    await world.store.commit_change(ending(*honest), event, BOB)
    assert (await world.store.get_game(game.game_id, BOB)) == ending(*honest)


async def test_the_server_plays_its_ai_seat_but_cannot_swap_seats_either(world: World) -> None:
    moved, event = next_version(world.robot, 8, actor=Actor.SERVER)
    taken = replace(moved, seats={"x": AI, "o": AI})  # the AI takes alice's seat
    with pytest.raises(NotPermitted):
        await world.store.commit_change(taken, event, Actor.SERVER)
    won = replace(moved, status="finished", state=ended(moved, "o", "resignation"))
    with pytest.raises(NotPermitted):
        await world.store.commit_change(won, event, Actor.SERVER)
    await world.store.commit_change(moved, event, Actor.SERVER)
    assert await world.store.get_game(world.robot.game_id, ALICE) == moved


# -- 3. around gamesocket.append_event, in plain SQL --------------------------------------------

INSERT_EVENT = (
    "insert into public.game_events (game_id, version, kind, seat, move, user_id)"
    " values ($1, $2, $3, $4, $5::jsonb, $6)"
)


async def test_an_event_is_never_stored_without_its_game_row(world: World) -> None:
    # Bob may append his join as gamesocket_player, but not leave it in the log alone:
    # a replay of the log would then show a seat nobody took.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="without its game row"):
        async with sql_as(world.url, BOB, write=True) as conn:
            await conn.execute(
                INSERT_EVENT, world.waiting.game_id, 1, "join", "o", None, BOB.user_id
            )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="without its game row"):
        async with sql_as(world.url, BOB, write=True) as conn:
            await conn.execute(
                INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id
            )
    assert await world.store.events_after(world.waiting.game_id, 0, Actor.SERVER) == []
    assert len(await world.store.events_after(world.private.game_id, 0, Actor.SERVER)) == 1


async def test_a_hand_written_update_after_an_honest_event_is_checked_too(world: World) -> None:
    # The event is bob's legal move; the row he writes next swaps the seats.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only a join changes the seats"):
        async with sql_as(world.url, BOB, write=True) as conn:
            await conn.execute(
                INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id
            )
            await conn.execute(
                "update public.games set version = 2, seats = $2::json,"
                " state = state || '{\"history\": [4, 0]}'::jsonb where id = $1",
                world.private.game_id,
                json.dumps({"x": human(BOB), "o": human(BOB)}),
            )
    # The same row without the swap is accepted (and committed with its event).
    async with sql_as(world.url, BOB, write=True) as conn:
        await conn.execute(INSERT_EVENT, world.private.game_id, 2, "move", "o", "0", BOB.user_id)
        await conn.execute(
            "update public.games set version = 2, turn = 'x',"
            " state = state || '{\"history\": [4, 0]}'::jsonb where id = $1",
            world.private.game_id,
        )
    stored = await world.store.get_game(world.private.game_id, BOB)
    assert stored is not None and stored.version == 2 and stored.seats == world.private.seats


# -- normal play through the service ------------------------------------------------------------


@pytest.fixture
async def service(world: World) -> AsyncIterator[GameService]:
    settings = Settings(default_ai_delay_ms=0)
    game_types = GameTypes()
    game_types.register(TicTacToeState, agents.TicTacToeAgent)
    broker = MemoryBroker()
    await broker.start()
    service = GameService(world.store, broker, settings, game_types)
    ai_turns = AiTurns(service, broker, settings, game_types, service.metrics)
    try:
        yield service
    finally:
        await service.shutdown()
        await ai_turns.shutdown()
        await broker.stop()


async def test_whole_games_through_the_service_still_work(service: GameService) -> None:
    async def pair() -> str:
        game = await service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
        await service.join(BOB, game.game_id, None)
        return game.game_id

    won = await pair()
    for actor, cell in ((ALICE, 0), (BOB, 3), (ALICE, 1), (BOB, 4), (ALICE, 2)):
        await service.move(actor, won, cell)
    resigned, drawn, aborted = await pair(), await pair(), await pair()
    await service.move(ALICE, resigned, 4)
    await service.resign(BOB, resigned)
    await service.draw(ALICE, drawn, "offer")
    await service.draw(BOB, drawn, "accept")
    await service.abort(ALICE, aborted)
    results = {}
    for game_id in (won, resigned, drawn, aborted):
        record, state = await service.load(game_id, fresh=True)
        assert state.result is not None
        results[game_id] = (record.status, state.result.winner, state.result.reason)
    assert results == {
        won: ("finished", "x", "three_in_a_row"),
        resigned: ("finished", "x", "resignation"),
        drawn: ("finished", None, "draw_agreed"),
        aborted: ("aborted", None, "aborted"),
    }
    # A move after the end is the service's refusal, as before.
    with pytest.raises(Refused) as refused:
        await service.move(BOB, won, 8)
    assert refused.value.code == ErrorCode.GAME_OVER


async def test_the_ai_answers_through_the_service_as_the_server(service: GameService) -> None:
    game = await service.create_game(ALICE, "tictactoe", {"x": "me", "o": AI}, False, None)
    await service.move(ALICE, game.game_id, 4)
    for _ in range(200):
        record, state = await service.load(game.game_id, fresh=True)
        if record.version == 2:
            break
        await asyncio.sleep(0.05)
    assert record.version == 2 and state.turn == "x"
    events = await service.store.events_after(game.game_id, 0, Actor.SERVER)
    assert [(e.kind, e.seat, e.user_id) for e in events] == [
        ("move", "x", ALICE.user_id),
        ("move", "o", None),
    ]
