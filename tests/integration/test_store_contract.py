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

from games import ChessState, Connect4State, GameState, TicTacToeState
from socket_server.settings import Settings
from socket_server.store import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStore,
    MemoryStore,
    Seat,
    StaleVersion,
    create_store,
)
from socket_server.store.base import ChatLimit, ChatRateLimited, ChatRecord, ChatRoom
from socket_server.store.seeks import SeekRecord, seeks_for
from socket_server.store.sqlite import SqliteStore
from tests.pgutil import postgres_store


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
    "postgres": postgres_store,
}


@pytest.fixture(params=list(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GameStore]:
    async with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


ALICE = Actor(user_id=str(uuid.uuid4()), claims={"sub": "alice", "role": "authenticated"})
BOB = Actor(user_id=str(uuid.uuid4()), claims={"sub": "bob", "role": "authenticated"})
CAROL = Actor(user_id=str(uuid.uuid4()), claims={"sub": "carol", "role": "authenticated"})
ACTORS = {actor.user_id: actor for actor in (ALICE, BOB, CAROL)}
AI: Seat = {"kind": "ai", "level": 5}
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

# The games are real (states from the rules, moves legal, each made by the player whose
# turn it is), so that a store which checks who may change what (Postgres under RLS)
# runs this suite unchanged. Games are created by the server unless a test says so.


GAME_TYPES: dict[str, type[GameState]] = {
    cls.game_type: cls for cls in (ChessState, Connect4State, TicTacToeState)
}


def human(actor: Actor) -> Seat:
    return {"kind": "human", "user_id": actor.user_id}


def make_game(
    game_type: str = "tictactoe", seats: tuple[Seat, Seat] = (None, None), **fields: Any
) -> GameRecord:
    """A new game at version 0; `seats` in turn order, default: alice, then bob."""
    state_class = GAME_TYPES[game_type]
    if seats == (None, None):
        seats = (human(ALICE), human(BOB))
    values: dict[str, Any] = {
        "game_id": str(uuid.uuid4()),
        "game_type": game_type,
        "status": "active",
        "seats": dict(zip(state_class.seats, seats, strict=True)),
        "state": state_class.initial().to_json(),
        "version": 0,
        "turn": state_class.initial().turn,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    if values["status"] != "active":
        values["turn"] = None
    return GameRecord(**values)


def mover(game: GameRecord) -> Actor:
    """Who makes the next move: the seated human, or the server for an AI seat."""
    seat = game.seats[GAME_TYPES[game.game_type].from_json(game.state).turn or ""]
    assert seat is not None, "nobody sits in the seat to move"
    return ACTORS[seat["user_id"]] if seat["kind"] == "human" else Actor.SERVER


def next_version(
    game: GameRecord, move: Any, *, request_id: str | None = None, actor: Actor | None = None
) -> tuple[GameRecord, EventRecord]:
    """The game after `move` and its event, as the service would build them."""
    state = GAME_TYPES[game.game_type].from_json(game.state)
    move = state.parse_move(move)
    after = state.apply(move)
    new = replace(
        game,
        version=game.version + 1,
        status="finished" if after.result else game.status,
        state=after.to_json(),
        turn=None if after.result else after.turn,
        updated_at=game.updated_at + timedelta(seconds=1),
    )
    event = EventRecord(
        game_id=game.game_id,
        version=new.version,
        kind="move",
        seat=state.turn,
        move=move,
        san=state.move_san(move),
        user_id=(actor or mover(game)).user_id,
        request_id=request_id,
        at=new.updated_at,
    )
    return new, event


async def play(
    store: GameStore, game: GameRecord, *moves: Any, with_ids: bool = True
) -> GameRecord:
    """Each move by the player to move, with request id req-<version before it> (or none)."""
    for move in moves:
        actor = mover(game)
        request_id = f"req-{game.version}" if with_ids else None
        game, event = next_version(game, move, request_id=request_id)
        await store.commit_change(game, event, actor)
    return game


async def test_health(store: GameStore) -> None:
    assert await store.health() is True


async def test_create_and_get_round_trip_every_field(store: GameStore) -> None:
    # Created by a player, seating only themselves (and an AI).
    game = make_game(
        "chess",
        (human(ALICE), {"kind": "ai", "level": 7}),
        status="waiting",
        version=3,
        public=False,
        options={"ai_delay_ms": 250, "clock": {"base": 300, "nested": [1, 2.5, None, True]}},
        created_by=ALICE.user_id,
        created_at=T0,
        updated_at=T0 + timedelta(minutes=5, microseconds=7),
    )
    await store.create_game(game, ALICE)
    loaded = await store.get_game(game.game_id, Actor.SERVER)
    assert loaded == game
    assert loaded is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.updated_at.utcoffset() == timedelta(0)
    assert await store.get_game(game.game_id, ALICE) == game


async def test_returned_records_are_copies(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
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
    public = make_game(seats=(human(ALICE), None), public=True)
    # Carol created the private game but holds no seat; bob plays the AI.
    private = make_game(
        seats=(AI, human(BOB)),
        public=False,
        created_by=CAROL.user_id,
        created_at=T0 + timedelta(seconds=1),
    )
    for game in (public, private):
        await store.create_game(game, Actor.SERVER)

    for actor in (ALICE, BOB, CAROL, Actor.ANONYMOUS, Actor.SERVER):
        assert await store.get_game(public.game_id, actor) == public
    assert await store.get_game(private.game_id, BOB) == private
    assert await store.get_game(private.game_id, Actor.SERVER) == private
    for stranger in (ALICE, CAROL, Actor.ANONYMOUS, Actor(user_id=None, claims={})):
        assert await store.get_game(private.game_id, stranger) is None

    async def listed(actor: Actor) -> list[str]:
        return [g.game_id for g in await store.list_games(actor)]

    assert await listed(BOB) == [private.game_id, public.game_id]
    assert await listed(Actor.SERVER) == [private.game_id, public.game_id]
    assert await listed(ALICE) == [public.game_id]
    assert await listed(CAROL) == [public.game_id]
    assert await listed(Actor.ANONYMOUS) == [public.game_id]


async def test_an_ai_seat_does_not_count_as_a_user_seat(store: GameStore) -> None:
    # A seat only grants visibility when it is a human seat of that very user.
    odd = Actor(user_id=str(uuid.uuid4()))
    game = make_game(seats=({"kind": "ai", "level": 7, "user_id": odd.user_id}, AI), public=False)
    await store.create_game(game, Actor.SERVER)
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
        make_game(kind, status=status, created_at=T0 + timedelta(seconds=i))
        for i, (kind, status) in enumerate(specs)
    ]
    # Inserted out of order: the store must sort, not return insertion order.
    for game in [*reversed(games[2:]), *games[:2]]:
        await store.create_game(game, Actor.SERVER)
    newest_first = [g.game_id for g in reversed(games)]

    async def listed(**filters: Any) -> list[str]:
        return [g.game_id for g in await store.list_games(ALICE, **filters)]

    assert await listed() == newest_first
    assert await listed(limit=2) == newest_first[:2]
    assert await listed(game_type="chess") == [games[3].game_id, games[1].game_id]
    assert await listed(status="active") == [g.game_id for g in (games[4], games[3], games[0])]
    assert await listed(game_type="tictactoe", status="active", limit=1) == [games[4].game_id]
    assert await listed(game_type="connect4") == []


async def test_commit_change_stores_game_and_event(store: GameStore) -> None:
    game = make_game("chess")
    await store.create_game(game, Actor.SERVER)
    new, event = next_version(game, "e4", request_id="m1")
    event.data = {"clock": {"white": 299.5}}
    assert event.move == "e2e4" and event.san == "e4" and event.seat == "white"
    await store.commit_change(new, event, ALICE)

    assert await store.get_game(game.game_id, ALICE) == new
    assert await store.events_after(game.game_id, 0, ALICE) == [event]
    assert await store.events_after(game.game_id, 0, BOB) == [event]


async def test_a_finishing_move_stores_the_result(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
    final = await play(store, game, 0, 3, 1, 4, 2)  # x takes the top row
    assert final.status == "finished"
    stored = await store.get_game(game.game_id, Actor.ANONYMOUS)
    assert stored == final
    assert stored is not None and stored.state["result"]["winner"] == "x"


async def test_stale_version_changes_nothing(store: GameStore) -> None:
    start = make_game()
    await store.create_game(start, Actor.SERVER)
    game = await play(store, start, 4)
    # Computed from version 0 again: another change already took version 1.
    stale, stale_event = next_version(start, 8)
    with pytest.raises(StaleVersion):
        await store.commit_change(stale, stale_event, ALICE)
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
    await store.create_game(game, Actor.SERVER)
    v1, e1 = next_version(game, 4, request_id="same")
    await store.commit_change(v1, e1, ALICE)
    # Alice's retry of the same message, although it is bob's turn by now.
    v2, e2 = next_version(v1, 0, request_id="same", actor=ALICE)
    with pytest.raises(DuplicateRequest) as raised:
        await store.commit_change(v2, e2, ALICE)
    assert raised.value.version == 1
    assert await store.get_game(game.game_id, ALICE) == v1

    # The same id from another user, or for another game, is a different request.
    v2, e2 = next_version(v1, 0, request_id="same")
    await store.commit_change(v2, e2, BOB)
    other = make_game()
    await store.create_game(other, Actor.SERVER)
    o1, oe1 = next_version(other, 4, request_id="same")
    await store.commit_change(o1, oe1, ALICE)
    # Events without a request id never collide.
    v4 = await play(store, v2, 8, 1, with_ids=False)
    assert await store.get_game(game.game_id, ALICE) == v4
    assert await store.find_request(game.game_id, BOB.user_id or "", "same", BOB) == 2


async def test_events_after_in_order_and_private(store: GameStore) -> None:
    game = make_game(public=False)
    await store.create_game(game, Actor.SERVER)
    final = await play(store, game, 4, 0, 8, 2)
    assert final.version == 4
    events = await store.events_after(game.game_id, 1, ALICE)
    assert [e.version for e in events] == [2, 3, 4]
    assert [e.move for e in events] == [0, 8, 2]
    assert [e.seat for e in events] == ["o", "x", "o"]
    assert await store.events_after(game.game_id, 4, BOB) == []
    everything = await store.events_after(game.game_id, 0, Actor.SERVER)
    assert [e.version for e in everything] == [1, 2, 3, 4]
    assert await store.events_after(game.game_id, 0, CAROL) == []
    assert await store.events_after(game.game_id, 0, Actor.ANONYMOUS) == []


async def test_find_request(store: GameStore) -> None:
    game = make_game(public=False)
    await store.create_game(game, Actor.SERVER)
    await play(store, game, 4, 0)  # alice's req-0, then bob's req-1
    alice, bob = ALICE.user_id or "", BOB.user_id or ""
    assert await store.find_request(game.game_id, alice, "req-0", ALICE) == 1
    assert await store.find_request(game.game_id, bob, "req-1", BOB) == 2
    assert await store.find_request(game.game_id, bob, "req-1", ALICE) == 2
    assert await store.find_request(game.game_id, alice, "req-1", ALICE) is None
    assert await store.find_request(game.game_id, alice, "nope", ALICE) is None
    # A stranger learns nothing about a private game.
    assert await store.find_request(game.game_id, alice, "req-0", CAROL) is None


async def test_active_ai_games(store: GameStore) -> None:
    wanted = [
        make_game(seats=(human(ALICE), AI), public=False),
        make_game(
            "connect4", (AI, {"kind": "ai", "level": 2}), created_at=T0 + timedelta(seconds=1)
        ),
    ]
    others = [
        make_game(seats=(human(ALICE), AI), status="waiting"),
        make_game(seats=(AI, AI), status="finished"),
        make_game(seats=(human(ALICE), human(BOB))),
        make_game(seats=(human(ALICE), None)),
    ]
    for game in [*others, *wanted]:
        await store.create_game(game, Actor.SERVER)
    found = await store.active_ai_games()
    assert sorted(g.game_id for g in found) == sorted(g.game_id for g in wanted)
    assert {g.game_id: g for g in found}[wanted[0].game_id] == wanted[0]


async def test_ai_moves_are_committed_by_the_server(store: GameStore) -> None:
    game = make_game("connect4", (AI, human(BOB)))
    await store.create_game(game, Actor.SERVER)
    final = await play(store, game, 3, 3, 4)
    events = await store.events_after(game.game_id, 0, BOB)
    assert [e.user_id for e in events] == [None, BOB.user_id, None]
    assert await store.get_game(game.game_id, BOB) == final


async def test_concurrent_commits_have_one_winner(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
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


# Chat: seq per game over both rooms, history per room, request ids, the rate limit.
CHAT_LIMIT = ChatLimit(count=5, window_seconds=10.0)


def chat(
    game: GameRecord,
    actor: Actor,
    text: str,
    room: ChatRoom = "players",
    *,
    at: datetime = T0,
    request_id: str | None = None,
) -> ChatRecord:
    assert actor.user_id is not None
    return ChatRecord(game.game_id, room, actor.user_id, text, request_id, at=at)


async def test_chat_seq_counts_both_rooms_and_history_reads_one(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
    written: list[tuple[Actor, ChatRoom, str]] = [
        (ALICE, "players", "hi"),
        (CAROL, "spectators", "go bob"),
        (BOB, "players", "hello"),
        (CAROL, "spectators", "nice"),
    ]
    seqs = [
        await store.append_chat(chat(game, actor, text, room), CHAT_LIMIT, actor)
        for actor, room, text in written
    ]
    assert seqs == [1, 2, 3, 4]
    players = await store.chat_after(game.game_id, "players", 0, 50, CAROL)
    assert [(m.seq, m.user_id, m.text, m.room) for m in players] == [
        (1, ALICE.user_id, "hi", "players"),
        (3, BOB.user_id, "hello", "players"),
    ]
    assert players[0].at == T0 and players[0].game_id == game.game_id
    spectators = await store.chat_after(game.game_id, "spectators", 0, 50, CAROL)
    assert [m.seq for m in spectators] == [2, 4]
    assert [m.seq for m in await store.chat_after(game.game_id, "spectators", 2, 50, CAROL)] == [4]
    assert [m.seq for m in await store.chat_after(game.game_id, "players", 0, 1, ALICE)] == [1]
    other = make_game()
    await store.create_game(other, Actor.SERVER)
    assert await store.append_chat(chat(other, ALICE, "first"), CHAT_LIMIT, ALICE) == 1


async def test_a_chat_request_id_is_stored_once_per_author(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
    first = chat(game, ALICE, "once", request_id="c-1")
    assert await store.append_chat(first, CHAT_LIMIT, ALICE) == 1
    with pytest.raises(DuplicateRequest) as refused:
        await store.append_chat(chat(game, ALICE, "again", request_id="c-1"), CHAT_LIMIT, ALICE)
    assert refused.value.version == 1
    # Another author's message with the same id is a message of its own.
    assert await store.append_chat(chat(game, BOB, "mine", request_id="c-1"), CHAT_LIMIT, BOB) == 2
    stored = await store.chat_after(game.game_id, "players", 0, 50, ALICE)
    assert [m.text for m in stored] == ["once", "mine"]


async def test_chat_rate_limit_counts_the_authors_window(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
    for n in range(5):
        at = T0 + timedelta(seconds=n)
        await store.append_chat(chat(game, ALICE, f"m{n}", at=at), CHAT_LIMIT, ALICE)
    with pytest.raises(ChatRateLimited):
        at = T0 + timedelta(seconds=9)
        await store.append_chat(chat(game, ALICE, "m5", at=at), CHAT_LIMIT, ALICE)
    # Bob has his own allowance; alice's first message leaves the window after 10 s.
    assert await store.append_chat(chat(game, BOB, "b", at=T0), CHAT_LIMIT, BOB) == 6
    later = T0 + timedelta(seconds=10, milliseconds=500)
    assert await store.append_chat(chat(game, ALICE, "m6", at=later), CHAT_LIMIT, ALICE) == 7
    texts = [m.text for m in await store.chat_after(game.game_id, "players", 0, 50, ALICE)]
    assert texts == ["m0", "m1", "m2", "m3", "m4", "b", "m6"]


async def test_a_private_games_chat_is_hidden_from_strangers(store: GameStore) -> None:
    game = make_game(public=False)
    await store.create_game(game, Actor.SERVER)
    await store.append_chat(chat(game, ALICE, "secret"), CHAT_LIMIT, ALICE)
    assert [m.text for m in await store.chat_after(game.game_id, "players", 0, 50, BOB)] == [
        "secret"
    ]
    for stranger in (CAROL, Actor.ANONYMOUS):
        assert await store.chat_after(game.game_id, "players", 0, 50, stranger) == []


async def test_concurrent_chat_gets_contiguous_seqs(store: GameStore) -> None:
    game = make_game()
    await store.create_game(game, Actor.SERVER)
    writers = [Actor(user_id=str(uuid.uuid4()), claims={"role": "authenticated"}) for _ in range(6)]
    results = await asyncio.gather(
        *(
            store.append_chat(chat(game, actor, f"w{n}", "spectators"), CHAT_LIMIT, actor)
            for n, actor in enumerate(writers)
            for _ in range(2)
        )
    )
    assert sorted(results) == list(range(1, 13))
    stored = await store.chat_after(game.game_id, "spectators", 0, 50, writers[0])
    assert [m.seq for m in stored] == list(range(1, 13))


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


# -- seeks (store/seeks.py, in each store's database) -----------------------------------
def a_seek(user: str, at: float, game_type: str = "chess") -> SeekRecord:
    return SeekRecord(str(uuid.uuid4()), user, game_type, None, False, created_at=at, seen_at=at)


async def test_seeks_pair_the_oldest_compatible_once(store: GameStore) -> None:
    seeks = seeks_for(store)
    alice, bob, carol = (str(uuid.uuid4()) for _ in range(3))
    first = await seeks.place(a_seek(alice, 100.0), str(uuid.uuid4()), 60)
    assert first.seek.status == "waiting" and first.partner is None
    await seeks.place(a_seek(bob, 101.0, "connect4"), str(uuid.uuid4()), 60)  # another pool
    game_id = str(uuid.uuid4())
    paired = await seeks.place(a_seek(carol, 102.0), game_id, 60)
    assert paired.seek.status == "paired" and paired.seek.game_id == game_id
    assert paired.partner is not None and paired.partner.seek_id == first.seek.seek_id
    stored = await seeks.get(first.seek.seek_id, 103.0, 60)
    assert stored is not None and (stored.status, stored.game_id) == ("paired", game_id)
    # Paired once: a fourth seeker waits.
    fourth = await seeks.place(a_seek(str(uuid.uuid4()), 104.0), str(uuid.uuid4()), 60)
    assert fourth.partner is None
    assert [s.game_type for s in await seeks.waiting()] == ["connect4", "chess"]


async def test_a_users_second_seek_replaces_the_first(store: GameStore) -> None:
    seeks = seeks_for(store)
    alice = str(uuid.uuid4())
    first = await seeks.place(a_seek(alice, 100.0), str(uuid.uuid4()), 60)
    second = await seeks.place(a_seek(alice, 101.0), str(uuid.uuid4()), 60)
    assert second.partner is None and [s.seek_id for s in second.gone] == [first.seek.seek_id]
    replaced = await seeks.get(first.seek.seek_id, 102.0, 60)
    assert replaced is not None and replaced.status == "withdrawn"
    assert [s.seek_id for s in await seeks.waiting()] == [second.seek.seek_id]


async def test_seeks_lapse_unless_seen_and_are_withdrawn_by_their_owner(store: GameStore) -> None:
    seeks = seeks_for(store)
    alice, bob, carol = (str(uuid.uuid4()) for _ in range(3))
    kept = await seeks.place(a_seek(alice, 100.0), str(uuid.uuid4()), 60)
    lapsing = await seeks.place(a_seek(bob, 100.0, "connect4"), str(uuid.uuid4()), 60)
    await seeks.touch([alice], 150.0)
    assert [s.seek_id for s in await seeks.lapse(170.0, 60)] == [lapsing.seek.seek_id]
    assert (await seeks.get(kept.seek.seek_id, 171.0, 60)).status == "waiting"  # type: ignore[union-attr]
    assert await seeks.withdraw(kept.seek.seek_id, carol) is None
    withdrawn = await seeks.withdraw(kept.seek.seek_id, alice)
    assert withdrawn is not None and withdrawn.status == "withdrawn"
    # Neither a lapsed nor a withdrawn seek pairs.
    late = await seeks.place(a_seek(carol, 172.0), str(uuid.uuid4()), 60)
    assert late.partner is None
    # A seek unseen for the ttl lapses when fetched.
    assert (await seeks.get(late.seek.seek_id, 240.0, 60)).status == "expired"  # type: ignore[union-attr]


async def test_an_undone_pairing_leaves_the_partner_waiting(store: GameStore) -> None:
    seeks = seeks_for(store)
    alice, bob, carol = (str(uuid.uuid4()) for _ in range(3))
    first = await seeks.place(a_seek(alice, 100.0), str(uuid.uuid4()), 60)
    paired = await seeks.place(a_seek(bob, 101.0), str(uuid.uuid4()), 60)
    await seeks.undo_pairing(first.seek.seek_id, paired.seek.seek_id)
    partner = await seeks.get(first.seek.seek_id, 102.0, 60)
    newcomer = await seeks.get(paired.seek.seek_id, 102.0, 60)
    assert partner is not None and (partner.status, partner.game_id) == ("waiting", None)
    assert newcomer is not None and (newcomer.status, newcomer.game_id) == ("withdrawn", None)
    again = await seeks.place(a_seek(carol, 103.0), str(uuid.uuid4()), 60)
    assert again.partner is not None and again.partner.seek_id == first.seek.seek_id
