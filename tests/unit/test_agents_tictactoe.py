"""Tic-tac-toe agent: perfect at level 10, checked against an independent brute force."""

from __future__ import annotations

import random
from functools import cache

import pytest

import agents
from agents.base import SearchInfo
from agents.tictactoe import FULL_DEPTH, choose, move_scores
from games import TicTacToeState
from games.tictactoe import LINES


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    agents.shutdown()


def _won(cells: str, mark: str) -> bool:
    return any(all(cells[i] == mark for i in line) for line in LINES)


@cache
def oracle(cells: str, mark: str) -> tuple[int, int]:
    """(outcome for `mark` to move: 1 win, 0 draw, -1 loss; plies until the end)."""
    other = "o" if mark == "x" else "x"
    if "." not in cells:
        return 0, 0
    results = []
    for i, cell in enumerate(cells):
        if cell != ".":
            continue
        child = cells[:i] + mark + cells[i + 1 :]
        if _won(child, mark):
            results.append((1, 1))
        else:
            outcome, plies = oracle(child, other)
            results.append((-outcome, plies + 1))
    # Best outcome; a win as fast as possible, a loss or draw as late as possible.
    return max(results, key=lambda r: (r[0], -r[1] if r[0] == 1 else r[1]))


def reachable() -> list[tuple[str, str]]:
    """Every position reachable in play with the game not over, and the side to move."""
    seen: set[tuple[str, str]] = set()
    frontier = [("." * 9, "x")]
    while frontier:
        cells, mark = frontier.pop()
        if (cells, mark) in seen:
            continue
        seen.add((cells, mark))
        other = "o" if mark == "x" else "x"
        for i, cell in enumerate(cells):
            if cell == ".":
                child = cells[:i] + mark + cells[i + 1 :]
                if not _won(child, mark) and "." in child:
                    frontier.append((child, other))
    return sorted(seen)


def after(cells: str, cell: int, mark: str) -> tuple[int, int]:
    """The oracle's verdict on playing `cell`, from the mover's view."""
    child = cells[:cell] + mark + cells[cell + 1 :]
    if _won(child, mark):
        return 1, 1
    other = "o" if mark == "x" else "x"
    outcome, plies = oracle(child, other)
    return -outcome, plies + 1


def test_level_10_plays_perfectly_from_every_reachable_position() -> None:
    positions = reachable()
    assert len(positions) == 4520  # the 5,478 states minus the 958 finished ones
    rng = random.Random(1)
    for cells, mark in positions:
        # Every move the agent may pick (it chooses at random among equals) is optimal.
        best = oracle(cells, mark)
        scores = move_scores(cells, mark, FULL_DEPTH)
        top = max(scores.values())
        for cell in (c for c, s in scores.items() if s == top):
            assert after(cells, cell, mark) == best, (cells, mark, cell)
        move, info = choose(cells, mark, FULL_DEPTH, rng)
        assert cells[move] == "."
        assert (info.score > 0) == (best[0] == 1) and (info.score < 0) == (best[0] == -1)


def test_never_loses_against_every_opponent_line() -> None:
    """Play every opponent reply against every optimal agent choice, as x and as o."""

    def explore(cells: str, mark: str, agent: str) -> None:
        if _won(cells, "x") or _won(cells, "o") or "." not in cells:
            assert not _won(cells, "o" if agent == "x" else "x"), cells
            return
        other = "o" if mark == "x" else "x"
        if mark == agent:
            scores = move_scores(cells, mark, FULL_DEPTH)
            top = max(scores.values())
            moves = [c for c, s in scores.items() if s == top]
        else:
            moves = [i for i, c in enumerate(cells) if c == "."]
        for cell in moves:
            explore(cells[:cell] + mark + cells[cell + 1 :], other, agent)

    explore("." * 9, "x", "x")
    explore("." * 9, "x", "o")


def test_takes_the_fastest_win() -> None:
    # x can win at once (cell 2) or set up a later win; it must win now.
    cells = "xx." "oo." "..."  # fmt: skip
    move, info = choose(cells, "x", FULL_DEPTH, random.Random(0))
    assert move == 2
    assert info.score == 10 - 5
    assert info.pv[0] == 2


def test_low_levels_are_legal_and_see_their_horizon() -> None:
    rng = random.Random(3)
    # Level 1 looks one ply ahead: it still completes its own line.
    assert choose("xx." "oo." "...", "x", 1, rng)[0] == 2  # fmt: skip
    # Level 2 sees the opponent's threat and blocks it.
    for _ in range(20):
        assert choose("x.." "oo." "x..", "x", 2, rng)[0] == 5  # fmt: skip


async def test_agent_searches_in_the_pool_and_reports_progress() -> None:
    state = TicTacToeState.initial().apply(4).apply(0)
    seen: list[SearchInfo] = []
    result = await agents.TicTacToeAgent(10).search(state, on_progress=seen.append)
    assert result.move in state.legal_moves()
    assert seen and seen[-1] == result.info
    assert result.info.depth == FULL_DEPTH
    assert result.info.score == 0  # the centre against a corner is a draw
    assert result.info.pv[0] == result.move
    # The agent plays on from there without ever losing to a random opponent.
    rng = random.Random(7)
    agent = agents.TicTacToeAgent(10)
    while state.result is None:
        if state.turn == "x":
            state = state.apply((await agent.search(state)).move)
        else:
            state = state.apply(rng.choice(state.legal_moves()))
    assert state.result.winner != "o"


async def test_finished_game_is_refused() -> None:
    state = TicTacToeState.initial()
    for cell in (0, 3, 1, 4, 2):
        state = state.apply(cell)
    with pytest.raises(ValueError, match="over"):
        await agents.TicTacToeAgent(5).search(state)
