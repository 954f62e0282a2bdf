"""Connect4: the exact solver on Pons' test sets, and the agent's play."""

from __future__ import annotations

import random
import time
from functools import cache

import pytest

import agents
from agents.base import SearchInfo, SearchLimit
from agents.connect4 import solve
from games import Connect4State
from tests.conftest import shared_data


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    agents.shutdown()


def pons_lines(name: str, count: int | None = None) -> list[tuple[str, int]]:
    """Pons' test set `name` from ../shared/data (the test skips without it)."""
    lines = shared_data("connect4", name).read_text().split("\n")
    pairs = [(seq, int(score)) for seq, score in (line.split() for line in lines if line.strip())]
    return pairs[:count] if count is not None else pairs


@pytest.mark.parametrize(
    ("name", "count"), [("Test_L3_R1", 200), ("Test_L2_R1", 200), ("Test_L2_R2", 20)]
)
def test_solve_matches_the_pons_sets(name: str, count: int) -> None:
    lines = pons_lines(name, count)
    assert len(lines) == count
    wrong = [(seq, score, solve(seq)) for seq, score in lines if solve(seq) != score]
    assert wrong == []


# All 1000 lines of the sets this solver gets through in minutes (L2_R2: about 10).
# L1_R2 and L1_R3 take seconds to minutes per line in Python: bench/connect4_pons.py
# measures them on a sample.
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", ["Test_L3_R1", "Test_L2_R1", "Test_L1_R1", "Test_L2_R2"])
def test_solve_matches_every_pons_line(name: str) -> None:
    lines = pons_lines(name)
    assert len(lines) == 1000
    assert [(seq, score) for seq, score in lines if solve(seq) != score] == []


# -- an independent brute force on a small board ---------------------------------------


def _completes_four(grid: tuple[tuple[int, ...], ...], column: int) -> bool:
    """Whether the top stone of `column` makes four in a row."""
    row = len(grid[column]) - 1
    who = grid[column][row]

    def owner(c: int, r: int) -> int | None:
        if 0 <= c < len(grid) and 0 <= r < len(grid[c]):
            return grid[c][r]
        return None

    for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
        run = 1
        for sign in (1, -1):
            step = 1
            while owner(column + sign * step * dc, row + sign * step * dr) == who:
                run += 1
                step += 1
        if run >= 4:
            return True
    return False


def _drop(grid: tuple[tuple[int, ...], ...], column: int, who: int) -> tuple[tuple[int, ...], ...]:
    return (*grid[:column], (*grid[column], who), *grid[column + 1 :])


def brute_score(columns: int, rows: int, sequence: list[int]) -> int:
    """Pons score by plain minimax over column stacks (no bitboards, no pruning)."""

    @cache
    def value(grid: tuple[tuple[int, ...], ...], stones: int) -> int:
        if stones == columns * rows:
            return 0
        best = -100
        for c in range(columns):
            if len(grid[c]) == rows:
                continue
            child = _drop(grid, c, stones % 2)
            if _completes_four(child, c):
                score = (columns * rows + 1 - stones) // 2
            else:
                score = -value(child, stones + 1)
            best = max(best, score)
        return best

    grid: tuple[tuple[int, ...], ...] = tuple(() for _ in range(columns))
    for stones, c in enumerate(sequence):
        grid = _drop(grid, c, stones % 2)
    return value(grid, len(sequence))


def random_line(columns: int, rows: int, length: int, rng: random.Random) -> list[int]:
    """A random game prefix of `length` moves in which nobody has won yet."""
    while True:
        state = Connect4State.initial({"columns": columns, "rows": rows})
        for _ in range(length):
            state = state.apply(rng.choice(state.legal_moves()))
            if state.result is not None:
                break
        else:
            return list(state.history)


@pytest.mark.parametrize(("columns", "rows", "played"), [(5, 4, 8), (4, 5, 6), (6, 5, 18)])
def test_solve_other_board_sizes_against_brute_force(columns: int, rows: int, played: int) -> None:
    rng = random.Random(columns * 100 + rows)
    for _ in range(6):
        line = random_line(columns, rows, played, rng)
        sequence = "".join(str(c + 1) for c in line)
        assert solve(sequence, columns, rows) == brute_score(columns, rows, line), sequence


def test_solve_refuses_boards_too_large_for_the_bitboard() -> None:
    with pytest.raises(ValueError, match="64"):
        solve("", 9, 7)


# -- the agent --------------------------------------------------------------------------


def state_after(sequence: str, columns: int = 7, rows: int = 6):
    state = Connect4State.initial({"columns": columns, "rows": rows})
    for ch in sequence:
        state = state.apply(int(ch) - 1)
    return state


async def test_level_10_plays_an_optimal_move_and_reports_the_exact_score() -> None:
    # Late middle-game positions from Test_L2_R1, solved well inside the time limit.
    agent = agents.Connect4Agent(10)
    for sequence, score in pons_lines("Test_L2_R1", 4):
        state = state_after(sequence)
        seen: list[SearchInfo] = []
        result = await agent.search(state, on_progress=seen.append)
        assert result.move in state.legal_moves()
        assert result.info.score == score
        assert seen[-1] == result.info
        # The move keeps the exact value: the opponent's score afterwards is its negation.
        child = sequence + str(result.move + 1)
        won = state.apply(result.move).result is not None
        assert won or -solve(child) == score


@pytest.mark.parametrize("level", range(1, 11))
async def test_every_level_takes_a_win_and_blocks_a_threat(level: int) -> None:
    agent = agents.Connect4Agent(level)
    # Red (to move) has three in the bottom row: it must complete it.
    win = state_after("112233")
    assert (await agent.search(win, limit=SearchLimit(time=0.5))).move == 3
    # Yellow (to move) must block red's open three in column 1.
    block = state_after("12131")
    assert (await agent.search(block, limit=SearchLimit(time=0.5))).move == 0


async def test_other_board_sizes_in_play() -> None:
    state = Connect4State.initial({"columns": 5, "rows": 4})
    agent = agents.Connect4Agent(10)
    rng = random.Random(5)
    while state.result is None:
        if state.turn == "red":
            move = (await agent.search(state, limit=SearchLimit(time=1.0))).move
        else:
            move = rng.choice(state.legal_moves())
        assert move in state.legal_moves()
        state = state.apply(move)
    assert state.result.winner != "yellow"


async def test_time_limit_falls_back_to_the_heuristic_search() -> None:
    # The empty board cannot be solved in 0.3 s: the answer comes from the fallback.
    seen: list[SearchInfo] = []
    state = Connect4State.initial()
    result = await agents.Connect4Agent(10).search(
        state, limit=SearchLimit(time=0.3), on_progress=seen.append
    )
    assert result.move in state.legal_moves()
    assert 1 <= result.info.depth < 42
    assert result.info.nodes > 0
    assert seen[-1] == result.info
    assert all(info.depth >= 1 for info in seen)


async def test_a_high_level_beats_level_1_with_either_colour() -> None:
    # Seeded agents and a node budget, not a time limit: the same games on a loaded
    # machine as on a quiet one, every run (level 1 chooses at random among its moves,
    # and unseeded it let level 7 draw about one run in fifty).
    budget = SearchLimit(nodes=30_000)
    for seed in range(3):
        strong, weak = agents.Connect4Agent(7, seed=seed), agents.Connect4Agent(1, seed=seed)
        for strong_seat in ("red", "yellow"):
            state = Connect4State.initial()
            while state.result is None:
                agent = strong if state.turn == strong_seat else weak
                state = state.apply((await agent.search(state, limit=budget)).move)
            assert state.result.winner == strong_seat, state.sequence


async def test_a_seeded_agent_plays_the_same_game_and_seeds_differ() -> None:
    async def game(seed: int) -> str:
        red, yellow = agents.Connect4Agent(1, seed=seed), agents.Connect4Agent(2, seed=seed)
        state = Connect4State.initial()
        while state.result is None:
            agent = red if state.turn == "red" else yellow
            state = state.apply((await agent.search(state, limit=SearchLimit(depth=2))).move)
        return state.sequence

    first = await game(1)
    assert await game(1) == first
    assert len({first, await game(2), await game(3)}) > 1


@pytest.mark.parametrize(
    "limit", [SearchLimit(depth=3), SearchLimit(nodes=5000), SearchLimit()], ids=str
)
async def test_depth_and_node_limits_end_the_search(limit: SearchLimit) -> None:
    # The empty board at level 10: only the limit stops the search.
    state = Connect4State.initial()
    start = time.monotonic()
    result = await agents.Connect4Agent(10).search(state, limit=limit)
    elapsed = time.monotonic() - start
    assert result.move in state.legal_moves()
    if limit.depth is not None:
        assert result.info.depth == 3 and elapsed < 1.0
    elif limit.nodes is not None:
        assert result.info.nodes <= 5000 + 2048 and elapsed < 1.0
    else:  # no limit at all: the level's own time (3 s at level 10)
        assert 2.5 < elapsed < 4.0
