"""Tic-tac-toe: memoised negamax over the 5,478 reachable positions.

Level 10 searches to the end (perfect play that prefers the fastest win and the
slowest loss); lower levels look `level` plies ahead and pick at random among the
moves that look best from there. Even so the search runs in the pool, like every
other agent: the first full table costs tens of milliseconds in CPython.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any, ClassVar

from agents.base import SearchInfo, SearchLimit
from agents.pool import PooledAgent, SearchJob, WorkerContext
from games import GameState, TicTacToeState
from games.tictactoe import LINES

# A board as a 9-character string of "x", "o" and "." (empty), row by row.
Board = str
FULL_DEPTH = 9


def _winner(board: Board) -> str | None:
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return None


@cache
def negamax(board: Board, player: str, depth: int) -> int:
    """Score for `player` (to move): 10 - stones at the end for a win, minus for a loss.

    A win found sooner has fewer stones on the board and so scores higher. Positions
    beyond `depth` plies count as 0 (unknown, treated like a draw).
    """
    empty = [i for i, cell in enumerate(board) if cell == "."]
    if not empty or depth == 0:
        return 0
    other = "o" if player == "x" else "x"
    best = -100
    for cell in empty:
        child = board[:cell] + player + board[cell + 1 :]
        if _winner(child) == player:
            score = 10 - (FULL_DEPTH - len(empty) + 1)
        else:
            score = -negamax(child, other, depth - 1)
        best = max(best, score)
    return best


def move_scores(board: Board, player: str, depth: int) -> dict[int, int]:
    """The score of each legal move for `player`, looking `depth` plies ahead."""
    other = "o" if player == "x" else "x"
    scores = {}
    stones = FULL_DEPTH - board.count(".")
    for cell, mark in enumerate(board):
        if mark != ".":
            continue
        child = board[:cell] + player + board[cell + 1 :]
        if _winner(child) == player:
            scores[cell] = 10 - (stones + 1)
        else:
            scores[cell] = -negamax(child, other, depth - 1)
    return scores


def choose(board: Board, player: str, depth: int, rng: random.Random) -> tuple[int, SearchInfo]:
    """A best move within `depth` plies (random among equals) and its search info."""
    scores = move_scores(board, player, depth)
    best = max(scores.values())
    move = rng.choice([cell for cell, score in scores.items() if score == best])
    pv = principal_variation(board, player, move, depth)
    info = SearchInfo(depth=depth, score=best, pv=pv, nodes=negamax.cache_info().currsize)
    return move, info


def principal_variation(board: Board, player: str, first: int, depth: int) -> list[Any]:
    pv: list[Any] = []
    move: int | None = first
    while move is not None and depth > 0:
        pv.append(move)
        board = board[:move] + player + board[move + 1 :]
        player = "o" if player == "x" else "x"
        depth -= 1
        if _winner(board) or "." not in board or depth == 0:
            break
        scores = move_scores(board, player, depth)
        move = max(scores, key=lambda cell: scores[cell])
    return pv


def search_job(ctx: WorkerContext, board: Board, player: str, depth: int) -> tuple[int, SearchInfo]:
    return choose(board, player, depth, random.Random())


class TicTacToeAgent(PooledAgent):
    game_type: ClassVar[str] = "tictactoe"

    def default_limit(self) -> SearchLimit:
        return SearchLimit(depth=FULL_DEPTH if self.level >= 10 else self.level)

    def job(self, state: GameState, limit: SearchLimit) -> tuple[SearchJob, tuple[Any, ...]]:
        assert isinstance(state, TicTacToeState)
        board = "".join(cell or "." for cell in state.cells)
        depth = min(limit.depth or FULL_DEPTH, FULL_DEPTH)
        assert state.turn is not None
        return search_job, (board, state.turn, depth)
