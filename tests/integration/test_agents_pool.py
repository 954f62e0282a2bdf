"""Searches run off the event loop: cancellation, progress and loop responsiveness."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

import agents
from agents.base import SearchInfo, SearchLimit
from agents.chess import ChessAgent, stockfish_host, stockfish_path
from agents.pool import get_pool
from games import ChessState, Connect4State, GameState, TicTacToeState
from tests.conftest import require

# Hard for the exact solver: it keeps searching for far longer than the tests wait.
HARD_CONNECT4 = (3, 3, 3, 3)
MIDDLEGAME = "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 8"


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    agents.shutdown()


def connect4_state() -> GameState:
    state = Connect4State.initial()
    for column in HARD_CONNECT4:
        state = state.apply(column)
    return state


async def warm_pool() -> None:
    """Start every worker before timing anything (spawning one takes a while)."""
    state = TicTacToeState.initial()
    agent = agents.TicTacToeAgent(10)
    size = get_pool().size
    await asyncio.gather(*(agent.search(state) for _ in range(size)))


async def cancel_after(task: asyncio.Task, wait: float) -> float:
    await asyncio.sleep(wait)
    assert not task.done()
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - start


@pytest.mark.parametrize("game", ["connect4", "chess-builtin"])
async def test_cancellation_frees_the_worker_within_100_ms(game: str) -> None:
    await warm_pool()
    if game == "connect4":
        agent, state = agents.Connect4Agent(10), connect4_state()
    else:
        agent = ChessAgent(10, engine="builtin")
        state = ChessState.initial({"fen": MIDDLEGAME})
    seen: list[SearchInfo] = []
    task = asyncio.create_task(
        agent.search(state, limit=SearchLimit(time=60.0), on_progress=seen.append)
    )
    assert await cancel_after(task, 0.5) < 0.1
    # The worker itself stopped: every worker is free again for quick searches at once.
    start = time.monotonic()
    await warm_pool()
    assert time.monotonic() - start < 0.5
    assert all(info.depth >= 0 for info in seen)


async def test_stockfish_cancellation_within_100_ms() -> None:
    require(stockfish_path() is not None, "Stockfish")
    agent = ChessAgent(10, engine="stockfish")
    state = ChessState.initial({"fen": MIDDLEGAME})
    task = asyncio.create_task(agent.search(state, limit=SearchLimit(time=60.0)))
    assert await cancel_after(task, 0.5) < 0.1
    host = stockfish_host(stockfish_path() or "")
    engines = host.pids()
    # The next search gets an engine at once and finishes on time.
    start = time.monotonic()
    result = await agent.search(state, limit=SearchLimit(time=0.2))
    assert result.move in state.legal_moves()
    assert time.monotonic() - start < 1.0
    # The stopped engine was not killed: it is kept for later searches.
    assert set(engines) <= set(host.pids())
    assert len(host.pids()) <= get_pool().size


async def test_progress_is_throttled_and_ends_with_the_result() -> None:
    await warm_pool()
    seen: list[tuple[float, SearchInfo]] = []
    state = ChessState.initial({"fen": MIDDLEGAME})
    result = await ChessAgent(10, engine="builtin").search(
        state,
        limit=SearchLimit(time=1.5),
        on_progress=lambda info: seen.append((time.monotonic(), info)),
    )
    assert seen[-1][1] == result.info
    intermediate = [at for at, _ in seen[:-1]]
    gaps = [b - a for a, b in itertools.pairwise(intermediate)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # at most ~4 a second
    assert result.info.nodes > 1000 and result.info.depth >= 3


async def test_more_searches_than_workers_queue_for_them() -> None:
    agents.shutdown()  # a fresh pool: every worker starts during this test
    state = Connect4State.initial()
    agent = agents.Connect4Agent(3)
    results = await asyncio.gather(
        *(agent.search(state, limit=SearchLimit(depth=2)) for _ in range(3 * get_pool().size))
    )
    assert all(result.move in state.legal_moves() for result in results)
    assert get_pool().started == get_pool().size


async def test_errors_in_a_worker_reach_the_caller() -> None:
    # A history the rules never produced (a full column): the worker raises, the pool survives.
    state = Connect4State.model_construct(history=(0,) * 7, columns=7, rows=6)
    with pytest.raises(ValueError, match="cannot be played"):
        await agents.Connect4Agent(5).search(state, limit=SearchLimit(time=0.2))
    await warm_pool()


async def test_loop_stays_responsive_with_8_concurrent_searches() -> None:
    await warm_pool()
    chess_state = ChessState.initial({"fen": MIDDLEGAME})
    searches = [
        agents.Connect4Agent(10).search(connect4_state(), limit=SearchLimit(time=0.8))
        for _ in range(4)
    ] + [
        ChessAgent(10, engine="builtin").search(chess_state, limit=SearchLimit(time=0.8))
        for _ in range(4)
    ]
    lateness: list[float] = []
    done = asyncio.Event()

    async def ping() -> None:
        while not done.is_set():
            start = time.monotonic()
            await asyncio.sleep(0.005)
            lateness.append(time.monotonic() - start - 0.005)

    pinger = asyncio.create_task(ping())
    start = time.monotonic()
    results = await asyncio.gather(*searches)
    elapsed = time.monotonic() - start
    done.set()
    await pinger
    assert len(results) == 8
    # 8 searches of 0.8 s on a pool of `size` workers run in about 8 / size rounds.
    assert elapsed >= 0.8 * 8 / get_pool().size * 0.9
    lateness.sort()
    p99 = lateness[int(len(lateness) * 0.99)]
    assert len(lateness) > 100
    assert p99 < 0.05, p99
