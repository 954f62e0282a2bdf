"""Tic-tac-toe: cells 0..8 row by row from the top left; x moves first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from games.base import GameResult, GameState, IllegalMove, Move, Played, parse_int_move

LINES: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
)  # fmt: skip


class TicTacToeState(GameState):
    game_type: ClassVar[str] = "tictactoe"
    seats: ClassVar[tuple[str, ...]] = ("x", "o")

    cells: tuple[str | None, ...] = (None,) * 9

    @classmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        cls._check_option_keys(options, known=set())
        return cls()

    def legal_moves(self) -> list[Move]:
        if self.result is not None:
            return []
        return [index for index, cell in enumerate(self.cells) if cell is None]

    def parse_move(self, raw: Any) -> int:
        self._require_active()
        cell = parse_int_move(raw, what="cell", upper=9)
        if self.cells[cell] is not None:
            raise IllegalMove(f"cell {cell} is already taken by {self.cells[cell]}")
        return cell

    def apply(self, move: Any) -> Self:
        return self._mark(self.parse_move(move))

    def play(self, raw: Any) -> Played:
        return self._play_parsed_once(raw, TicTacToeState.apply, self._mark)

    def _mark(self, cell: int) -> Self:
        """The state after the seat to move marks `cell`, a legal move of this position."""
        seat = self.turn
        assert seat is not None  # parse_move refused a finished game
        cells = list(self.cells)
        cells[cell] = seat
        result = None
        if any(all(cells[i] == seat for i in line) for line in LINES):
            result = GameResult(winner=seat, reason="three_in_a_row")
        elif all(c is not None for c in cells):
            result = GameResult(winner=None, reason="board_full")
        return self.evolve(cells=tuple(cells), history=(*self.history, cell), result=result)

    def board(self) -> dict[str, Any]:
        return {"cells": list(self.cells)}

    def winning_line(self) -> tuple[int, int, int] | None:
        """The three cells that won, for clients that highlight them."""
        for line in LINES:
            first = self.cells[line[0]]
            if first is not None and all(self.cells[i] == first for i in line):
                return line
        return None
