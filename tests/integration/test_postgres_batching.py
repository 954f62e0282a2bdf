"""Group commit in the Postgres store: the changes that arrive together share a transaction.

On a real PostgreSQL with every migration. The changes of a batch are submitted at once
(one `asyncio.gather`), and the game that sorts last, submitted last, is held by a row
lock from another connection: while the batch waits for it, no change of the batch is
visible to other connections and no caller has its answer (they are all in the one
transaction, nobody is answered before its COMMIT). Then the lock goes, and each change
has its own outcome: a stale version, a change row-level security refuses or a request
stored before fails alone (its subtransaction is rolled back), the others are stored. A
connection that dies in the middle of the batch fails every caller, and nothing of the
batch is stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from socket_server.store import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    NotPermitted,
    StaleVersion,
    StoreError,
)
from socket_server.store.postgres import (
    APPEND_EVENT_AS,
    TRY_APPEND_EVENTS_AS,
    PostgresStore,
    append_arguments,
)
from tests.integration.test_postgres_rls import human, new_game, sql_as
from tests.integration.test_store_contract import next_version
from tests.pgutil import postgres_store

ALICE = Actor(user_id=str(uuid.uuid4()))
BOB = Actor(user_id=str(uuid.uuid4()))
CAROL = Actor(user_id=str(uuid.uuid4()))  # seated in no game below
LOCK_GAME = "select 1 from public.games where id = $1 for update"


@dataclass(frozen=True)
class Change:
    game: GameRecord
    event: EventRecord
    actor: Actor


@dataclass
class World:
    url: str
    store: PostgresStore
    games: list[GameRecord]  # alice (x) vs bob (o), nothing played, in game id order


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with postgres_store() as store:
        games = [new_game(human(ALICE), human(BOB), public=True, creator=ALICE) for _ in range(4)]
        for game in games:
            await store.create_game(game, Actor.SERVER)
        yield World(store.url, store, sorted(games, key=lambda g: g.game_id))


def first_move(game: GameRecord, cell: int = 4, request_id: str | None = None) -> Change:
    return Change(*next_version(game, cell, request_id=request_id, actor=ALICE), ALICE)


@asynccontextmanager
async def row_locked(url: str, game: GameRecord) -> AsyncIterator[None]:
    """`game`'s row locked by another connection until the block ends."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(LOCK_GAME, game.game_id)
            yield
    finally:
        await conn.close()


async def waiting_backend(url: str) -> int:
    """The pid of the backend of this database that waits for a lock (there is one)."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(500):
            pid: int | None = await conn.fetchval(
                "select pid from pg_stat_activity"
                " where datname = current_database() and wait_event_type = 'Lock'"
            )
            if pid is not None:
                return pid
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError("no backend waits for the locked game")


async def versions(url: str, games: list[GameRecord]) -> list[int]:
    """The stored versions, read by another connection (what is committed)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select id::text, version from public.games where id = any($1::uuid[])",
            [g.game_id for g in games],
        )
    finally:
        await conn.close()
    stored = dict(rows)
    return [stored[g.game_id] for g in games]


async def one_batch(world: World, changes: list[Change]) -> list[BaseException | None]:
    """Each change's outcome, all submitted at once; the last one (its game sorts last)
    waits for a row lock while the test checks that the batch is one transaction."""
    last = changes[-1].game
    assert all(c.game.game_id <= last.game_id for c in changes)
    before = await versions(world.url, [c.game for c in changes])
    async with row_locked(world.url, last):
        calls: list[Awaitable[None]] = [
            world.store.commit_change(c.game, c.event, c.actor) for c in changes
        ]
        gathered = asyncio.gather(*calls, return_exceptions=True)
        await waiting_backend(world.url)
        assert not gathered.done()  # nobody is answered before the COMMIT
        assert await versions(world.url, [c.game for c in changes]) == before
    return list(await gathered)


async def test_changes_that_arrive_together_are_stored_in_one_transaction(world: World) -> None:
    changes = [first_move(game) for game in world.games]
    assert await one_batch(world, changes) == [None] * len(changes)
    assert await versions(world.url, world.games) == [1] * len(changes)
    for change in changes:
        assert await world.store.events_after(change.game.game_id, 0, ALICE) == [change.event]


async def test_a_stale_change_fails_alone(world: World) -> None:
    stale = first_move(world.games[0])
    await world.store.commit_change(stale.game, stale.event, stale.actor)
    changes = [stale, *(first_move(game) for game in world.games[1:])]
    outcomes = await one_batch(world, changes)
    assert isinstance(outcomes[0], StaleVersion)
    assert outcomes[1:] == [None] * 3
    assert await versions(world.url, world.games) == [1] * 4


async def test_a_change_row_level_security_refuses_fails_alone(world: World) -> None:
    # Carol moves in Alice's seat: the service would refuse it; through the store the
    # database does, as Carol.
    game, event = next_version(world.games[1], 4, actor=CAROL)
    intruder = Change(game, event, CAROL)
    changes = [first_move(world.games[0]), intruder, *(first_move(g) for g in world.games[2:])]
    outcomes = await one_batch(world, changes)
    assert isinstance(outcomes[1], NotPermitted)
    assert [outcomes[0], *outcomes[2:]] == [None] * 3
    assert await versions(world.url, world.games) == [1, 0, 1, 1]
    assert await world.store.events_after(world.games[1].game_id, 0, Actor.SERVER) == []
    # Alice's own move of the same game after it: the batch's roles did not leak.
    mine = first_move(world.games[1])
    await world.store.commit_change(mine.game, mine.event, mine.actor)


async def test_a_request_id_stored_earlier_in_the_same_batch_fails_alone(world: World) -> None:
    # Alice's request r1 twice in one batch: as version 1, and again (a retry planned
    # on top of it) as version 2. The second finds the first, stored in the same
    # transaction, and reports where it landed.
    first = first_move(world.games[0], request_id="r1")
    second = Change(*next_version(first.game, 0, request_id="r1", actor=ALICE), ALICE)
    changes = [first, second, *(first_move(g) for g in world.games[1:])]
    outcomes = await one_batch(world, changes)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], DuplicateRequest)
    assert outcomes[1].version == 1
    assert outcomes[2:] == [None] * 3
    assert await versions(world.url, world.games) == [1] * 4


async def test_a_change_picked_to_break_a_deadlock_fails_alone_as_stale(world: World) -> None:
    # Another transaction holds the last game and then asks for one the batch holds: a
    # cycle. The batch's backend checks for it first (the other waits 30 s before it
    # would), so its change of the last game is the one rolled back.
    changes = [first_move(game) for game in world.games]
    other = await asyncpg.connect(world.url)
    try:
        await other.execute("set deadlock_timeout = '30s'")
        async with other.transaction():
            await other.execute(LOCK_GAME, world.games[-1].game_id)
            gathered = asyncio.gather(
                *(world.store.commit_change(c.game, c.event, c.actor) for c in changes),
                return_exceptions=True,
            )
            await waiting_backend(world.url)
            await other.execute(LOCK_GAME, world.games[1].game_id)  # waits for the COMMIT
            outcomes = await gathered
    finally:
        await other.close()
    assert outcomes[:3] == [None] * 3
    assert isinstance(outcomes[3], StaleVersion), outcomes[3]
    assert await versions(world.url, world.games) == [1, 1, 1, 0]


async def first_moves_while_the_last_waits(world: World, signal: str) -> list[Any]:
    """Every game's first move committed at once while the last game's row is locked;
    `signal` (pg_terminate_backend or pg_cancel_backend) is sent to the backend that
    waits for that row. The outcomes, an exception or None per change, in game order."""
    changes = [first_move(game) for game in world.games]
    async with row_locked(world.url, world.games[-1]):
        gathered = asyncio.gather(
            *(world.store.commit_change(c.game, c.event, c.actor) for c in changes),
            return_exceptions=True,
        )
        pid = await waiting_backend(world.url)
        admin = await asyncpg.connect(world.url)
        try:
            assert await admin.fetchval(f"select {signal}($1)", pid)
        finally:
            await admin.close()
        return await gathered


async def test_a_connection_lost_mid_batch_fails_every_caller_and_stores_nothing(
    world: World,
) -> None:
    outcomes = await first_moves_while_the_last_waits(world, "pg_terminate_backend")
    for outcome in outcomes:
        assert isinstance(outcome, Exception) and not isinstance(outcome, StoreError), outcome
    assert await versions(world.url, world.games) == [0] * 4
    # The store goes on with a new connection.
    retry = first_move(world.games[0])
    await world.store.commit_change(retry.game, retry.event, retry.actor)
    assert await versions(world.url, world.games[:1]) == [1]


async def test_append_event_as_takes_only_the_writing_roles(world: World) -> None:
    change = first_move(world.games[0])
    _, *rest = append_arguments(change.game, change.event, change.actor)
    for api_role in (Actor.ANONYMOUS, ALICE):  # PostgREST's roles may not call it at all
        async with sql_as(world.url, api_role) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(APPEND_EVENT_AS, "gamesocket_player", *rest)
    async with sql_as(world.url, ALICE, write=True) as conn:
        for role in ("postgres", "authenticated", "service_role"):  # nor take another role
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"not {role}$"):
                async with conn.transaction():
                    await conn.execute(APPEND_EVENT_AS, role, *rest)
        await conn.execute(APPEND_EVENT_AS, "gamesocket_player", *rest)  # the control
        assert await conn.fetchval("select current_user") == "gamesocket_player"
        stored = await conn.fetchval(
            "select version from public.games where id = $1", change.game.game_id
        )
        assert stored == 1


async def test_a_stale_and_a_refused_change_in_one_call_fail_alone_as_on_their_own(
    world: World,
) -> None:
    # The batch goes in one call of try_append_events_as, each change in its own
    # subtransaction: each failing change has the error it has when it is sent alone.
    stale = first_move(world.games[0])
    await world.store.commit_change(stale.game, stale.event, stale.actor)
    intruder = Change(*next_version(world.games[1], 4, actor=CAROL), CAROL)
    alone: list[BaseException | None] = []
    for change in (stale, intruder):
        try:
            await world.store.commit_change(change.game, change.event, change.actor)
        except StoreError as error:
            alone.append(error)
    changes = [stale, intruder, *(first_move(g) for g in world.games[2:])]
    outcomes = await one_batch(world, changes)
    assert [type(o) for o in outcomes] == [StaleVersion, NotPermitted, type(None), type(None)]
    assert [str(o) for o in outcomes[:2]] == [str(e) for e in alone]
    assert await versions(world.url, world.games) == [1, 0, 1, 1]


async def test_try_append_events_as_is_for_the_writing_roles_only(world: World) -> None:
    change = first_move(world.games[0])
    columns = [[value] for value in append_arguments(change.game, change.event, change.actor)]
    for api_role in (Actor.ANONYMOUS, ALICE):
        async with sql_as(world.url, api_role) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.fetch(TRY_APPEND_EVENTS_AS, *columns)
    async with sql_as(world.url, ALICE, write=True) as conn:
        columns[0] = ["postgres"]  # a role append_event_as refuses: an outcome, not an error
        [refused] = await conn.fetch(TRY_APPEND_EVENTS_AS, *columns)
        assert refused["o_code"] == "42501" and refused["o_message"].endswith("not postgres")
        assert await conn.fetchval("select current_user") == "gamesocket_player"
        columns[0] = ["gamesocket_player"]
        assert [tuple(row) for row in await conn.fetch(TRY_APPEND_EVENTS_AS, *columns)] == [
            (None, None, None)
        ]
        stored = await conn.fetchval(
            "select version from public.games where id = $1", change.game.game_id
        )
        assert stored == 1


async def test_a_change_whose_statement_is_cancelled_fails_alone(world: World) -> None:
    # A cancel (pg_cancel_backend, a statement timeout) while the last change waits for
    # its row: that change is rolled back with the error, the batch's others commit.
    outcomes = await first_moves_while_the_last_waits(world, "pg_cancel_backend")
    assert outcomes[:3] == [None] * 3
    assert isinstance(outcomes[3], asyncpg.QueryCanceledError), outcomes[3]
    assert await versions(world.url, world.games) == [1, 1, 1, 0]
