"""One behavioural suite for every `GameStore`; add a store by adding to STORE_FACTORIES.

A factory is an async context manager taking pytest's `tmp_path` and yielding an
opened store with no games in it; it must clean up (close, drop) when the block ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from socket_server.settings import Settings
from socket_server.store import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStore,
    MemoryStore,
    StaleVersion,
    create_store,
)
from socket_server.store.sqlite import SqliteStore


@asynccontextmanager
async def memory_store(tmp_path: Path) -> AsyncIterator[GameStore]:
    store = MemoryStore()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[GameStore]:
    store = SqliteStore(tmp_path / "games.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


StoreFactory = Callable[[Path], AbstractAsyncContextManager[GameStore]]
STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
}


@pytest.fixture(params=list(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GameStore]:
    async with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


ALICE = Actor(user_id=str(uuid.uuid4()), claims={"sub": "alice"})
BOB = Actor(user_id=str(uuid.uuid4()), claims={"sub": "bob"})
CAROL = Actor(user_id=str(uuid.uuid4()), claims={"sub": "carol"})
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def human(actor: Actor) -> dict[str, Any]:
    return {"kind": "human", "user_id": actor.user_id}


def make_game(**fields: Any) -> GameRecord:
    values: dict[str, Any] = {
        "game_id": str(uuid.uuid4()),
        "game_type": "tictactoe",
        "status": "active",
        "seats": {"x": human(ALICE), "o": human(BOB)},
        "state": {"board": [None] * 9, "history": []},
        "version": 0,
        "public": True,
        "options": {},
        "created_by": ALICE.user_id,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return GameRecord(**values)


def next_version(
    game: GameRecord, move: int, *, actor: Actor = ALICE, request_id: str | None = None
) -> tuple[GameRecord, EventRecord]:
    """The game after `move` and its event, as the service would build them."""
    history = [*game.state["history"], move]
    new = replace(
        game,
        version=game.version + 1,
        state={**game.state, "history": history},
        updated_at=game.updated_at + timedelta(seconds=1),
    )
    event = EventRecord(
        game_id=game.game_id,
        version=new.version,
        kind="move",
        seat="x" if game.version % 2 == 0 else "o",
        move=move,
        user_id=actor.user_id,
        request_id=request_id,
        at=new.updated_at,
    )
    return new, event


async def play(store: GameStore, game: GameRecord, *moves: int) -> GameRecord:
    for move in moves:
        game, event = next_version(game, move, request_id=f"req-{game.version}")
        await store.commit_change(game, event, ALICE)
    return game


async def test_health(store: GameStore) -> None:
    assert await store.health() is True


async def test_create_and_get_round_trip_every_field(store: GameStore) -> None:
    game = make_game(
        game_type="chess",
        status="waiting",
        seats={"white": human(ALICE), "black": {"kind": "ai", "level": 7}},
        state={"fen": "startpos", "history": [], "nested": {"a": [1, 2.5, None, True]}},
        version=3,
        public=False,
        options={"ai_delay_ms": 250, "clock": {"base": 300}},
        created_by=BOB.user_id,
        created_at=T0,
        updated_at=T0 + timedelta(minutes=5, microseconds=7),
    )
    await store.create_game(game, ALICE)
    loaded = await store.get_game(game.game_id, Actor.SERVER)
    assert loaded == game
    assert loaded is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.updated_at.utcoffset() == timedelta(0)


async def test_returned_records_are_copies(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    game.state["history"].append(4)  # the caller's object changes after the call
    loaded = await store.get_game(game.game_id, ALICE)
    assert loaded is not None and loaded.state["history"] == []
    loaded.state["history"].append(8)
    loaded.seats["x"] = None
    listed = await store.list_games(ALICE)
    listed[0].options["x"] = 1
    again = await store.get_game(game.game_id, ALICE)
    assert again is not None
    assert again.state["history"] == [] and again.seats["x"] == human(ALICE)
    assert again.options == {}


async def test_get_missing_game_is_none(store: GameStore) -> None:
    assert await store.get_game(str(uuid.uuid4()), Actor.SERVER) is None


async def test_visibility(store: GameStore) -> None:
    public = make_game(public=True, seats={"x": human(ALICE), "o": None})
    # Carol created the private game but holds no seat; bob holds an AI-facing seat.
    private = make_game(
        public=False,
        seats={"x": {"kind": "ai", "level": 3}, "o": human(BOB)},
        created_by=CAROL.user_id,
        created_at=T0 + timedelta(seconds=1),
    )
    for game in (public, private):
        await store.create_game(game, ALICE)

    for actor in (ALICE, BOB, CAROL, Actor.ANONYMOUS, Actor.SERVER):
        assert await store.get_game(public.game_id, actor) is not None
    assert await store.get_game(private.game_id, BOB) is not None
    assert await store.get_game(private.game_id, Actor.SERVER) is not None
    for stranger in (ALICE, Actor.ANONYMOUS, Actor(user_id=None, claims={})):
        assert await store.get_game(private.game_id, stranger) is None

    async def listed(actor: Actor) -> list[str]:
        return [g.game_id for g in await store.list_games(actor)]

    assert await listed(BOB) == [private.game_id, public.game_id]
    assert await listed(Actor.SERVER) == [private.game_id, public.game_id]
    assert await listed(ALICE) == [public.game_id]
    assert await listed(Actor.ANONYMOUS) == [public.game_id]


async def test_an_ai_seat_level_does_not_match_a_user(store: GameStore) -> None:
    # A seat only grants visibility when it is a human seat of that very user.
    odd = Actor(user_id="7")
    game = make_game(public=False, seats={"x": {"kind": "ai", "level": 7, "user_id": "7"}})
    await store.create_game(game, ALICE)
    assert await store.get_game(game.game_id, odd) is None
    assert await store.list_games(odd) == []


async def test_list_games_filters_limit_and_order(store: GameStore) -> None:
    specs = [
        ("tictactoe", "active"),
        ("chess", "waiting"),
        ("tictactoe", "finished"),
        ("chess", "active"),
        ("tictactoe", "active"),
    ]
    games = [
        make_game(game_type=kind, status=status, created_at=T0 + timedelta(seconds=i))
        for i, (kind, status) in enumerate(specs)
    ]
    # Inserted out of order: the store must sort, not return insertion order.
    for game in reversed(games[2:]):
        await store.create_game(game, ALICE)
    for game in games[:2]:
        await store.create_game(game, ALICE)
    newest_first = [g.game_id for g in reversed(games)]

    assert [g.game_id for g in await store.list_games(ALICE)] == newest_first
    assert [g.game_id for g in await store.list_games(ALICE, limit=2)] == newest_first[:2]
    assert [g.game_id for g in await store.list_games(ALICE, game_type="chess")] == [
        games[3].game_id,
        games[1].game_id,
    ]
    assert [g.game_id for g in await store.list_games(ALICE, status="active")] == [
        games[4].game_id,
        games[3].game_id,
        games[0].game_id,
    ]
    both = await store.list_games(ALICE, game_type="tictactoe", status="active", limit=1)
    assert [g.game_id for g in both] == [games[4].game_id]
    assert await store.list_games(ALICE, game_type="connect4") == []


async def test_commit_change_stores_game_and_event(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    new, event = next_version(game, 4, request_id="m1")
    event.san = "e5"
    event.data = {"result": {"winner": None, "reason": "board_full"}}
    new.status = "finished"
    await store.commit_change(new, event, ALICE)

    assert await store.get_game(game.game_id, ALICE) == new
    assert await store.events_after(game.game_id, 0, ALICE) == [event]


async def test_stale_version_changes_nothing(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    game = await play(store, game, 4)
    # Computed from version 0 again: another change already took version 1.
    stale, stale_event = next_version(replace(game, version=0), 8)
    with pytest.raises(StaleVersion):
        await store.commit_change(stale, stale_event, BOB)
    # A version from the future is just as stale.
    ahead, ahead_event = next_version(replace(game, version=5), 8)
    with pytest.raises(StaleVersion):
        await store.commit_change(ahead, ahead_event, BOB)

    assert await store.get_game(game.game_id, ALICE) == game
    assert [e.version for e in await store.events_after(game.game_id, 0, ALICE)] == [1]


async def test_commit_to_missing_game_is_stale(store: GameStore) -> None:
    new, event = next_version(make_game(), 1)
    with pytest.raises(StaleVersion):
        await store.commit_change(new, event, ALICE)
    assert await store.get_game(new.game_id, Actor.SERVER) is None


async def test_duplicate_request_reports_original_version(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    v1, e1 = next_version(game, 4, request_id="same")
    await store.commit_change(v1, e1, ALICE)
    v2, e2 = next_version(v1, 0, request_id="same")
    with pytest.raises(DuplicateRequest) as raised:
        await store.commit_change(v2, e2, ALICE)
    assert raised.value.version == 1
    assert (await store.get_game(game.game_id, ALICE)) == v1

    # The same id from another user, or for another game, is a different request.
    v2_bob, e2_bob = next_version(v1, 0, actor=BOB, request_id="same")
    await store.commit_change(v2_bob, e2_bob, BOB)
    other = make_game()
    await store.create_game(other, ALICE)
    o1, oe1 = next_version(other, 4, request_id="same")
    await store.commit_change(o1, oe1, ALICE)
    # Events without a request id never collide.
    v3, e3 = next_version(v2_bob, 8, request_id=None)
    await store.commit_change(v3, e3, ALICE)
    v4, e4 = next_version(v3, 1, request_id=None)
    await store.commit_change(v4, e4, ALICE)
    assert (await store.get_game(game.game_id, ALICE)) == v4


async def test_events_after_in_order_and_private(store: GameStore) -> None:
    game = make_game(public=False)
    await store.create_game(game, ALICE)
    final = await play(store, game, 4, 0, 8, 2)
    assert final.version == 4
    events = await store.events_after(game.game_id, 1, ALICE)
    assert [e.version for e in events] == [2, 3, 4]
    assert [e.move for e in events] == [0, 8, 2]
    assert await store.events_after(game.game_id, 4, ALICE) == []
    assert [e.version for e in await store.events_after(game.game_id, 0, Actor.SERVER)] == [
        1,
        2,
        3,
        4,
    ]
    assert await store.events_after(game.game_id, 0, CAROL) == []
    assert await store.events_after(game.game_id, 0, Actor.ANONYMOUS) == []


async def test_find_request(store: GameStore) -> None:
    game = make_game(public=False)
    await store.create_game(game, ALICE)
    await play(store, game, 4, 0)  # request ids req-0 and req-1
    assert await store.find_request(game.game_id, ALICE.user_id or "", "req-1", ALICE) == 2
    assert await store.find_request(game.game_id, ALICE.user_id or "", "req-0", BOB) == 1
    assert await store.find_request(game.game_id, ALICE.user_id or "", "nope", ALICE) is None
    assert await store.find_request(game.game_id, BOB.user_id or "", "req-1", BOB) is None
    # A stranger learns nothing about a private game.
    assert await store.find_request(game.game_id, ALICE.user_id or "", "req-1", CAROL) is None


async def test_active_ai_games(store: GameStore) -> None:
    ai = {"kind": "ai", "level": 5}
    wanted = [
        make_game(seats={"x": human(ALICE), "o": ai}, public=False),
        make_game(seats={"x": ai, "o": dict(ai)}, created_at=T0 + timedelta(seconds=1)),
    ]
    others = [
        make_game(seats={"x": human(ALICE), "o": ai}, status="waiting"),
        make_game(seats={"x": ai, "o": ai}, status="finished"),
        make_game(seats={"x": human(ALICE), "o": human(BOB)}),
        make_game(seats={"x": human(ALICE), "o": None}),
    ]
    for game in [*others, *wanted]:
        await store.create_game(game, ALICE)
    found = await store.active_ai_games()
    assert sorted(g.game_id for g in found) == sorted(g.game_id for g in wanted)
    assert {g.game_id: g for g in found}[wanted[0].game_id] == wanted[0]


async def test_concurrent_commits_have_one_winner(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    attempts = [next_version(game, move, request_id=f"race-{move}") for move in range(8)]
    results = await asyncio.gather(
        *(store.commit_change(new, event, ALICE) for new, event in attempts),
        return_exceptions=True,
    )
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleVersion) for r in results if r is not None), results
    stored = await store.get_game(game.game_id, ALICE)
    assert stored == attempts[winners[0]][0]
    assert await store.events_after(game.game_id, 0, ALICE) == [attempts[winners[0]][1]]


# create_store: the URL in the settings picks the store.


def test_create_store_memory() -> None:
    assert isinstance(create_store(Settings(database_url="memory://")), MemoryStore)


async def test_create_store_default_sqlite_in_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    store = create_store(Settings(data_dir=data_dir))
    assert isinstance(store, SqliteStore)
    assert store.path == data_dir / "gamesocket.sqlite3"
    await store.open()
    try:
        assert await store.health()
    finally:
        await store.close()
    assert (data_dir / "gamesocket.sqlite3").is_file()


def test_create_store_relative_sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = create_store(Settings(database_url="sqlite:///rel/dir/db.sqlite3"))
    assert isinstance(store, SqliteStore)
    assert store.path == Path("rel/dir/db.sqlite3")
    assert (tmp_path / "rel" / "dir").is_dir()


def test_create_store_postgres_is_lazy() -> None:
    postgres = pytest.importorskip("socket_server.store.postgres")
    for url in ("postgresql://u@127.0.0.1/db", "postgres://u@127.0.0.1/db"):
        store = create_store(Settings(database_url=url, database_prepared_statements=False))
        assert isinstance(store, postgres.PostgresStore)


@pytest.mark.parametrize(
    "url", ["mysql://root:hunter2@db/x", "sqlite://", "sqlite:///", "memory", "nonsense"]
)
def test_create_store_refuses_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        create_store(Settings(database_url=url))
    assert "hunter2" not in str(raised.value)
    assert "sqlite:///" in str(raised.value)
