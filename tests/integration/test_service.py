"""`GameService` and `AiTurns` on the memory store and the memory broker.

The real parts, wired as the factory wires them, without a web server: every change
goes load -> plan -> store -> publish -> after-commit hooks, and the AI plays through
the same path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import agents
from games import Connect4State, GameState, TicTacToeState
from socket_server.ai_turns import AiTurns
from socket_server.changes import Refused, next_version, plan_player_move
from socket_server.fanout.memory import MemoryBroker
from socket_server.protocol import ErrorCode, Header
from socket_server.registry import GameTypes
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store.base import Actor, GameRecord
from socket_server.store.memory import MemoryStore

ALICE = Actor(user_id="00000000-0000-4000-8000-0000000000a1")
BOB = Actor(user_id="00000000-0000-4000-8000-0000000000b2")
AI_SEATS = {"x": {"kind": "ai", "level": 1}, "o": {"kind": "ai", "level": 10}}


@dataclass
class Rig:
    store: MemoryStore
    broker: MemoryBroker
    service: GameService
    ai_turns: AiTurns
    published: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def listen(self, game_id: str) -> list[dict[str, Any]]:
        """Every message the broker carries for `game_id` from now on, decoded."""
        received: list[dict[str, Any]] = self.published.setdefault(game_id, [])

        def handler(_game_id: str, data: bytes) -> None:
            received.append(json.loads(data))

        await self.broker.subscribe(game_id, handler)
        return received

    async def events(self, game_id: str) -> list[Any]:
        return await self.store.events_after(game_id, 0, Actor.SERVER)

    async def stored(self, game_id: str) -> GameRecord:
        record = await self.store.get_game(game_id, Actor.SERVER)
        assert record is not None
        return record


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    store, broker = MemoryStore(), MemoryBroker()
    settings = Settings(default_ai_delay_ms=0)
    game_types = GameTypes()
    game_types.register(TicTacToeState, agents.TicTacToeAgent)
    game_types.register(Connect4State, None)  # a game type without AI
    service = GameService(store, broker, settings, game_types)
    ai_turns = AiTurns(service, broker, settings, game_types, service.metrics)
    try:
        yield Rig(store, broker, service, ai_turns)
    finally:
        await service.shutdown()
        await ai_turns.shutdown()


async def two_player_game(rig: Rig) -> str:
    """Alice (x) and Bob (o): the game id, at version 1 (Bob's join)."""
    snapshot = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
    assert await rig.service.join(BOB, snapshot.game_id, None) == 1
    return snapshot.game_id


def refused(error: pytest.ExceptionInfo[Refused], code: ErrorCode) -> None:
    assert error.value.code == code, error.value.message


# -- the commit path ---------------------------------------------------------------------
async def test_a_game_is_created_joined_and_moved(rig: Rig) -> None:
    await rig.service.profiles.rename(ALICE, "Alice")
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
    assert (created.version, created.status, created.turn) == (0, "waiting", None)
    alice = {"kind": "human", "user_id": ALICE.user_id, "name": "Alice"}
    assert created.seats == {"x": alice, "o": None}
    game_id = created.game_id
    assert (await rig.stored(game_id)).version == 0 and await rig.events(game_id) == []

    assert await rig.service.join(BOB, game_id, None) == 1
    record = await rig.stored(game_id)
    assert (record.status, record.turn) == ("active", "x")
    # Bob had no profile: it is made at his first join, with a generated name.
    bob = (await rig.service.profiles.me(BOB)).name
    assert record.seats["o"] == {"kind": "human", "user_id": BOB.user_id, "name": bob}

    assert await rig.service.move(ALICE, game_id, 4) == 2
    assert await rig.service.move(BOB, game_id, "0") == 3
    record = await rig.stored(game_id)
    assert (record.version, record.turn) == (3, "x")
    state = TicTacToeState.from_json(record.state)
    assert state.cells[4] == "x" and state.cells[0] == "o"
    events = await rig.events(game_id)
    assert [(e.version, e.kind, e.seat, e.move, e.user_id) for e in events] == [
        (1, "join", "o", None, BOB.user_id),
        (2, "move", "x", 4, ALICE.user_id),
        (3, "move", "o", 0, BOB.user_id),
    ]
    snapshot = await rig.service.snapshot(game_id, Actor.ANONYMOUS)
    assert snapshot.version == 3 and snapshot.moves == 2 and snapshot.turn == "x"


async def test_a_private_game_is_closed_to_strangers(rig: Rig) -> None:
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, False, None)
    game_id = created.game_id
    with pytest.raises(Refused) as error:
        await rig.service.join(BOB, game_id, None)
    refused(error, ErrorCode.FORBIDDEN)
    with pytest.raises(Refused) as error:
        await rig.service.snapshot(game_id, BOB)
    refused(error, ErrorCode.FORBIDDEN)
    with pytest.raises(Refused) as error:
        await rig.service.snapshot(game_id, Actor.ANONYMOUS)
    refused(error, ErrorCode.UNAUTHORIZED)
    assert (await rig.service.snapshot(game_id, ALICE)).version == 0
    assert await rig.events(game_id) == []


async def test_a_stranger_learns_nothing_of_a_private_game_from_a_stale_version(
    rig: Rig,
) -> None:
    """Visibility is judged before the expected version: the answer to a stranger (or an
    anonymous caller) is the same whatever version it sends, and never names the
    game's version."""
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, False, None)
    game_id = created.game_id
    for actor, code in [(BOB, ErrorCode.FORBIDDEN), (Actor.ANONYMOUS, ErrorCode.UNAUTHORIZED)]:
        for version in (None, 0, 7):
            with pytest.raises(Refused) as error:
                await rig.service.move(actor, game_id, 4, version=version)
            assert error.value.code == code, (actor, version, error.value.message)


async def test_refusals_change_nothing(rig: Rig) -> None:
    game_id = await two_player_game(rig)
    for call, code in [
        (rig.service.move(BOB, game_id, 4), ErrorCode.NOT_YOUR_TURN),
        (rig.service.move(ALICE, game_id, 9), ErrorCode.ILLEGAL_MOVE),
        (rig.service.move(Actor(user_id="stranger"), game_id, 4), ErrorCode.FORBIDDEN),
        (rig.service.join(Actor(user_id="stranger"), game_id, "o"), ErrorCode.SEAT_TAKEN),
        (rig.service.move(ALICE, "not-a-uuid", 4), ErrorCode.NOT_FOUND),
    ]:
        with pytest.raises(Refused) as error:
            await call
        refused(error, code)
    assert (await rig.stored(game_id)).version == 1
    assert len(await rig.events(game_id)) == 1


async def test_creating_refuses_bad_requests(rig: Rig) -> None:
    service = rig.service
    cases = [
        (service.create_game(Actor.ANONYMOUS, "tictactoe", None, True, None), "unauthorized"),
        (service.create_game(ALICE, "go", None, True, None), "bad_message"),
        (service.create_game(ALICE, "connect4", {"red": {"kind": "ai"}}, True, None), "bad"),
        (service.create_game(ALICE, "tictactoe", None, True, {"ai_delay_ms": -5}), "bad"),
        (service.create_game(ALICE, "tictactoe", None, True, {"board": 4}), "bad"),
    ]
    for call, code in cases:
        with pytest.raises(Refused) as error:
            await call
        assert error.value.code.startswith(code), error.value
    assert await rig.store.count_games() == {}


async def test_a_repeated_request_id_is_stored_once_and_answers_the_same_version(
    rig: Rig,
) -> None:
    game_id = await two_player_game(rig)
    first = await rig.service.move(ALICE, game_id, 4, request_id="m-1")
    again = await rig.service.move(ALICE, game_id, 4, request_id="m-1")
    assert first == again == 2
    assert await rig.service.move(BOB, game_id, 0, request_id="m-1") == 3  # Bob's own id
    # A resend after the game moved on still answers where it landed.
    assert await rig.service.move(ALICE, game_id, 4, request_id="m-1") == 2
    events = await rig.events(game_id)
    assert [(e.version, e.seat, e.move) for e in events if e.kind == "move"] == [
        (2, "x", 4),
        (3, "o", 0),
    ]
    assert (await rig.stored(game_id)).version == 3
    # A join resent with its id answers the version of the join.
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
    assert await rig.service.join(BOB, created.game_id, None, request_id="j-1") == 1
    assert await rig.service.join(BOB, created.game_id, None, request_id="j-1") == 1
    assert len(await rig.events(created.game_id)) == 1


async def test_a_request_id_already_stored_is_not_applied_again_even_when_legal_now(
    rig: Rig,
) -> None:
    """The store's own check: the plan succeeds again, the id still names version 2."""
    game_id = await two_player_game(rig)
    assert await rig.service.move(ALICE, game_id, 4, request_id="m-1") == 2
    assert await rig.service.move(BOB, game_id, 0) == 3
    # Alice's turn again, and cell 8 is free: only the id says this was done before.
    received = await rig.listen(game_id)
    assert await rig.service.move(ALICE, game_id, 8, request_id="m-1") == 2
    record = await rig.stored(game_id)
    assert record.version == 3 and TicTacToeState.from_json(record.state).cells[8] is None
    assert len(await rig.events(game_id)) == 3 and received == []
    assert await rig.service.move(ALICE, game_id, 8, request_id="m-2") == 4


async def test_a_stale_expected_version_is_refused(rig: Rig) -> None:
    game_id = await two_player_game(rig)
    received = await rig.listen(game_id)
    with pytest.raises(Refused) as error:
        await rig.service.move(ALICE, game_id, 4, version=0)
    refused(error, ErrorCode.STALE_VERSION)
    assert (await rig.stored(game_id)).version == 1 and received == []
    assert await rig.service.move(ALICE, game_id, 4, version=1) == 2
    with pytest.raises(Refused) as error:
        await rig.service.move(BOB, game_id, 0, version=1)
    refused(error, ErrorCode.STALE_VERSION)
    assert [m["version"] for m in received] == [2]


async def test_every_version_is_published_once_in_order(rig: Rig) -> None:
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
    game_id = created.game_id
    received = await rig.listen(game_id)
    await rig.service.join(BOB, game_id, "o")
    for actor, cell in [(ALICE, 4), (BOB, 0), (ALICE, 8)]:
        await rig.service.move(actor, game_id, cell)
    await rig.service.resign(BOB, game_id)
    updates = [m for m in received if m["type"] == "update"]
    assert updates == received  # nothing but updates here
    assert [m["version"] for m in updates] == [1, 2, 3, 4, 5]
    assert [m["event"]["kind"] for m in updates] == ["join", "move", "move", "move", "resign"]
    assert [m["status"] for m in updates] == ["active"] * 4 + ["finished"]
    assert updates[1]["event"] == {"kind": "move", "seat": "x", "move": 4}
    assert updates[-1]["result"] == {"winner": "x", "reason": "resignation"}
    assert updates[-1]["turn"] is None and updates[-1]["legal_moves"] == []
    # The same updates rebuilt from the store (a `since` replay) match byte for byte.
    replayed = await rig.service.replay_updates(game_id, 0)
    assert [json.loads(data) for _, data in replayed] == updates


async def test_a_draw_offered_and_accepted_finishes_the_game(rig: Rig) -> None:
    game_id = await two_player_game(rig)
    received = await rig.listen(game_id)
    assert await rig.service.draw(ALICE, game_id, "offer") == 1  # stores no version
    with pytest.raises(Refused) as error:
        await rig.service.draw(ALICE, game_id, "accept")  # one's own offer
    refused(error, ErrorCode.ILLEGAL_MOVE)
    assert await rig.service.draw(BOB, game_id, "accept") == 2
    assert [m["type"] for m in received] == ["draw_offer", "update"]
    assert received[-1]["result"] == {"winner": None, "reason": "draw_agreed"}


# -- hooks and the cache -------------------------------------------------------------------
async def test_commit_hooks_see_every_committed_version(rig: Rig) -> None:
    seen: list[tuple[int, str, str | None]] = []

    def hook(record: GameRecord, state: GameState) -> None:
        seen.append((record.version, record.status, state.turn))

    rig.service.on_commit(hook)
    created = await rig.service.create_game(ALICE, "tictactoe", {"x": "me"}, True, None)
    game_id = created.game_id
    await rig.service.join(BOB, game_id, None)
    await rig.service.join(BOB, game_id, None)  # already seated: nothing committed
    await rig.service.move(ALICE, game_id, 4, request_id="m")
    await rig.service.move(ALICE, game_id, 4, request_id="m")  # a resend
    with pytest.raises(Refused):
        await rig.service.move(ALICE, game_id, 0)  # not her turn
    await rig.service.move(BOB, game_id, 0)
    await rig.service.resign(ALICE, game_id)
    assert seen == [
        (0, "waiting", "x"),
        (1, "active", "x"),
        (2, "active", "o"),
        (3, "active", "x"),
        (4, "finished", None),
    ]


async def test_a_newer_foreign_version_drops_the_cached_game(rig: Rig) -> None:
    game_id = await two_player_game(rig)
    cached = rig.service.cached(game_id)
    assert cached is not None and cached[0].version == 1
    # Another process stores version 2 behind this one's back.
    record, state = cached
    new_record, event = next_version(
        record, plan_player_move(record, state, ALICE, 4), ALICE, None, record.updated_at
    )
    await rig.store.commit_change(new_record, event, ALICE)
    assert (await rig.service.load(game_id))[0].version == 1  # the cache answers
    # Its update for the version the cache holds, or an older one, changes nothing ...
    rig.service.note_published(game_id, Header(type="update", version=1))
    rig.service.note_published(game_id, Header(type="update", version=0))
    rig.service.note_published(game_id, Header(type="presence"))
    assert rig.service.cached(game_id) is cached
    # ... a newer one drops the entry, and the next load reads the store.
    rig.service.note_published(game_id, Header(type="update", version=2))
    assert rig.service.cached(game_id) is None
    record, state = await rig.service.load(game_id)
    assert record.version == 2 and state.history == (4,)
    assert await rig.service.move(BOB, game_id, 0) == 3


# -- AI turns --------------------------------------------------------------------------------
async def wait_for_version(
    rig: Rig, game_id: str, done: Callable[[GameRecord], bool]
) -> GameRecord:
    """The stored game once `done` holds for it (within a minute: the first search
    starts the worker pool)."""
    for _ in range(3000):
        record, _ = await rig.service.load(game_id, fresh=True)
        if done(record):
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"game {game_id} stuck at {record.version} ({record.status})")


async def test_ai_against_ai_tictactoe_runs_to_the_end(rig: Rig) -> None:
    try:
        created = await rig.service.create_game(ALICE, "tictactoe", AI_SEATS, True, None)
        assert created.status == "active" and created.turn == "x"
        game_id = created.game_id
        received = await rig.listen(game_id)
        record = await wait_for_version(rig, game_id, lambda r: r.status == "finished")
    finally:
        agents.shutdown()
    state = TicTacToeState.from_json(record.state)
    assert record.status == "finished" and state.result is not None
    events = await rig.events(game_id)
    assert [e.version for e in events] == list(range(1, record.version + 1))
    assert all(e.kind == "move" and e.user_id is None for e in events)
    assert [e.seat for e in events] == [("x", "o")[i % 2] for i in range(len(events))]
    assert tuple(e.move for e in events) == state.history
    assert 5 <= record.version <= 9
    updates = [m for m in received if m["type"] == "update"]
    assert [m["version"] for m in updates] == list(range(1, record.version + 1))
    thinking = [m for m in received if m["type"] == "thinking"]
    assert thinking and {m["seat"] for m in thinking} <= {"x", "o"}
    assert game_id not in rig.ai_turns.agents  # released once the game ended


async def test_an_ai_seat_answers_a_human_move(rig: Rig) -> None:
    try:
        seats = {"x": "me", "o": {"kind": "ai", "level": 10}}
        created = await rig.service.create_game(ALICE, "tictactoe", seats, True, None)
        game_id = created.game_id
        assert await rig.service.move(ALICE, game_id, 0) == 1
        await wait_for_version(rig, game_id, lambda r: r.version >= 2)
    finally:
        agents.shutdown()
    record = await rig.stored(game_id)
    assert record.version == 2 and record.turn == "x"
    events = await rig.events(game_id)
    assert (events[-1].kind, events[-1].seat, events[-1].user_id) == ("move", "o", None)
    assert events[-1].move == 4  # perfect play answers a corner with the centre
