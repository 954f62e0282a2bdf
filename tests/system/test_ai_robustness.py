"""The AI never stalls a game: a stale read cannot derail it, a bad search is retried.

Agents added through the factory misbehave on purpose on their first searches of a
game; the real server (uvicorn in a thread, real sockets) must still finish the game.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import pytest

import agents
from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from agents.chess import stockfish_host, stockfish_path
from games import ChessState, Connect4State, GameState, TicTacToeState
from socket_server.ai_turns import AiTurns
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from socket_server.fanout.memory import MemoryBroker
from socket_server.registry import GameTypes
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store.base import Actor, EventRecord, GameRecord
from socket_server.store.memory import MemoryStore
from tests.conftest import require
from tests.server_harness import Api, ServerThread

AI_SEATS = {"x": {"kind": "ai", "level": 1}, "o": {"kind": "ai", "level": 1}}


def first_move(state: GameState) -> SearchResult:
    move = state.legal_moves()[0]
    return SearchResult(move=move, info=SearchInfo(depth=1, score=0, pv=[move], nodes=1))


class StallingTicTacToe(TicTacToeState):
    """Tic-tac-toe under another name, so its agents are the ones below."""

    game_type: ClassVar[str] = "stalling_tictactoe"


class MisbehavingAgent(Agent):
    """Plays the first legal move, after misbehaving on the game's first `bad` searches."""

    game_type: ClassVar[str] = "stalling_tictactoe"
    bad: ClassVar[int] = 0
    searches: ClassVar[Counter[str]]  # searches started, per (class and) position
    cancelled: ClassVar[int]  # misbehaving searches the server cancelled

    async def misbehave(self) -> None:
        raise NotImplementedError

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        key = ",".join(map(str, state.history))
        type(self).searches[key] += 1
        if sum(type(self).searches.values()) <= self.bad:
            try:
                await self.misbehave()
            except asyncio.CancelledError:
                type(self).cancelled += 1
                raise
        return first_move(state)


class HangingAgent(MisbehavingAgent):
    """Its first search never answers (a lost engine reply, a dead worker)."""

    bad = 1
    searches = Counter()
    cancelled = 0

    async def misbehave(self) -> None:
        await asyncio.Event().wait()


class RaisingAgent(MisbehavingAgent):
    """Its first two searches raise."""

    bad = 2
    searches = Counter()
    cancelled = 0

    async def misbehave(self) -> None:
        raise RuntimeError("the engine crashed")


async def play_ai_game(
    start_server: Callable[..., ServerThread],
    server_settings: Settings,
    agent_class: type[MisbehavingAgent],
    **overrides: Any,
) -> tuple[str, dict[str, Any]]:
    """An AI-vs-AI game of `agent_class` to its end: (game id, final snapshot)."""
    agent_class.searches.clear()
    agent_class.cancelled = 0
    app = create_app(replace(server_settings, **overrides))
    GameSocketFactory().create_socket(app, agent_class, StallingTicTacToe, "/ws/stalling")
    server = start_server(app)
    api = Api(server.base_url)
    try:
        user = await api.guest()
        game = await api.create(user, "stalling_tictactoe", seats=AI_SEATS)
        final = await api.wait_for(game["game_id"], lambda s: s["status"] == "finished", wait=30)
        return game["game_id"], final
    finally:
        await api.close()


def failures(caplog: pytest.LogCaptureFixture, game_id: str) -> list[tuple[int, float]]:
    """(attempt, retry delay) of each logged AI failure of the game."""
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "gamesocket.ai" and message.startswith("ai failed"):
            assert record.levelno == logging.ERROR
            match = re.search(r"game=(\S+) attempt=(\d+) retry_in=([\d.]+)s", message)
            assert match is not None, message
            if match[1] == game_id:
                found.append((int(match[2]), float(match[3])))
    return found


async def test_a_hanging_search_is_cancelled_logged_and_retried(
    start_server: Callable[..., ServerThread],
    server_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="gamesocket.ai")
    game_id, final = await play_ai_game(
        start_server, server_settings, HangingAgent, ai_search_timeout_seconds=0.3
    )
    assert final["moves"] == 7 and final["result"]["winner"] == "x"  # first legal moves
    assert HangingAgent.cancelled == 1  # the hanging search was cancelled, not abandoned
    assert HangingAgent.searches[""] == 2  # the first position was searched again
    assert failures(caplog, game_id) == [(1, 0.5)]
    logged = next(r for r in caplog.records if r.getMessage().startswith("ai failed"))
    assert "no move within 0.3 s" in logged.getMessage()


async def test_a_raising_agent_is_retried_with_backoff(
    start_server: Callable[..., ServerThread],
    server_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="gamesocket.ai")
    game_id, final = await play_ai_game(start_server, server_settings, RaisingAgent)
    assert final["moves"] == 7
    assert RaisingAgent.searches[""] == 3
    assert failures(caplog, game_id) == [(1, 0.5), (2, 1.0)]  # later each time
    logged = next(r for r in caplog.records if r.getMessage().startswith("ai failed"))
    assert logged.exc_info is not None and "the engine crashed" in logged.getMessage()


# -- a read that overtakes a change -------------------------------------------------------
class FirstMoveAgent(Agent):
    """Plays the first legal move once `gate` is open; `searching` tells it was asked."""

    game_type: ClassVar[str] = "tictactoe"

    def __init__(self, level: int, searching: asyncio.Event, gate: asyncio.Event) -> None:
        super().__init__(level)
        self.searching = searching
        self.gate = gate

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        self.searching.set()
        await self.gate.wait()
        return first_move(state)


class LateReadStore(MemoryStore):
    """A store whose held read answers only after the next change is stored (as on a
    loaded Postgres: a snapshot request reads, a move commits, the read returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_next_read = False
        self.read_held = asyncio.Event()
        self._release = asyncio.Event()

    async def get_game(self, game_id: str, actor: Actor) -> GameRecord | None:
        record = await super().get_game(game_id, actor)
        if self.hold_next_read:
            self.hold_next_read = False
            self.read_held.set()
            await self._release.wait()
        return record

    async def commit_change(self, game: GameRecord, event: EventRecord, actor: Actor) -> None:
        await super().commit_change(game, event, actor)
        if self.read_held.is_set():
            self._release.set()


async def test_a_read_answered_after_a_move_does_not_stall_ai_against_ai() -> None:
    store, searching, gate = LateReadStore(), asyncio.Event(), asyncio.Event()
    settings, broker, game_types = Settings(default_ai_delay_ms=0), MemoryBroker(), GameTypes()
    game_types.register(TicTacToeState, lambda level: FirstMoveAgent(level, searching, gate))
    service = GameService(store, broker, settings, game_types)
    ai_turns = AiTurns(service, broker, settings, game_types, service.metrics)
    user = Actor(user_id="00000000-0000-4000-8000-000000000001")
    game = await service.create_game(user, "tictactoe", AI_SEATS, True, None)
    game_id = game.game_id
    await searching.wait()
    # While x's AI thinks, a spectator's snapshot reads version 0 and is held ...
    store.hold_next_read = True
    spectator = asyncio.create_task(service.snapshot(game_id, Actor.ANONYMOUS))
    await store.read_held.wait()
    # ... until x's move is stored: it answers with version 0 after version 1 was cached.
    gate.set()
    assert (await spectator).version == 0
    for _ in range(500):
        record, _state = await service.load(game_id, fresh=True)
        if record.status == "finished":
            break
        await asyncio.sleep(0.01)
    assert record.status == "finished" and record.version == 7, record
    await service.shutdown()
    await ai_turns.shutdown()


# -- shared engines closed by another server of the process ------------------------------
def long_search(engine: str) -> tuple[Agent, GameState]:
    """An agent and a position it searches for seconds, reporting progress meanwhile."""
    if engine == "stockfish":
        require(stockfish_path() is not None, "Stockfish")
        return agents.ChessAgent(10, engine="stockfish"), ChessState.initial()
    state = Connect4State.initial()
    for column in (3, 3, 3, 3):  # the exact solver needs far longer than this test waits
        state = state.apply(column)
    return agents.Connect4Agent(10), state


@pytest.mark.parametrize("engine", ["pool", "stockfish"])
def test_a_search_whose_engines_are_closed_fails_instead_of_hanging_or_looking_cancelled(
    engine: str,
) -> None:
    """Servers of one process share the search pool and the Stockfish host, and each
    closes them on exit: another server's search must end with an error (the service
    retries it), neither waiting forever nor posing as a cancel its caller never asked for
    (the service would take the turn as over)."""
    agent, state = long_search(engine)
    searching = threading.Event()
    outcome: list[BaseException | None] = []

    async def search_on_another_loop() -> None:
        try:
            await agent.search(state, on_progress=lambda _: searching.set())
            outcome.append(None)
        except BaseException as error:  # a CancelledError too: the very thing under test
            outcome.append(error)

    other_server = threading.Thread(target=asyncio.run, args=(search_on_another_loop(),))
    other_server.start()
    try:
        assert searching.wait(30), "the search never reported progress"
    finally:
        agents.shutdown()
        other_server.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "shut down" in str(outcome[0]) or "closed" in str(outcome[0])


def test_a_search_handed_to_a_closing_stockfish_host_fails_at_once() -> None:
    """The race a close used to lose: one server fetched the host, another was closing it.
    The search was queued on a loop about to stop, and its caller waited forever."""
    path = stockfish_path()
    require(path is not None, "Stockfish")
    assert path is not None
    host = stockfish_host(path)
    host.loop.call_soon_threadsafe(time.sleep, 3)  # a busy engine thread: the close waits
    closing = threading.Thread(target=agents.shutdown)
    closing.start()
    try:
        deadline = time.monotonic() + 2.5
        while not host._closed and time.monotonic() < deadline:  # the close has begun
            time.sleep(0.01)
        with pytest.raises(RuntimeError, match="closed"):
            host.submit(asyncio.sleep(1)).result(timeout=5)
    finally:
        closing.join(15)
