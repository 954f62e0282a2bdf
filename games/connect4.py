"""Connect Four: drop discs into columns, four in a row wins; red moves first.

The board defaults to 7 columns by 6 rows. Other sizes are allowed within 4..10 each,
as long as columns * (rows + 1) <= 64, so a 64-bit bitboard solver can hold it.
`cells` is stored row by row, top row first, like the protocol's board.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar, Self

from pydantic import model_validator

from games.base import GameResult, GameState, IllegalMove, Move, Played, parse_int_move

MIN_SIDE = 4
MAX_SIDE = 10
BITBOARD_BITS = 64
# (row step, column step) for horizontal, vertical and the two diagonals.
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))


class Connect4State(GameState):
    game_type: ClassVar[str] = "connect4"
    seats: ClassVar[tuple[str, ...]] = ("red", "yellow")

    history: tuple[int, ...] = ()
    columns: int = 7
    rows: int = 6
    cells: tuple[str | None, ...] = (None,) * 42

    @model_validator(mode="after")
    def _cells_fit_the_board(self) -> Self:
        if len(self.cells) != self.columns * self.rows:
            raise ValueError(
                f"{len(self.cells)} cells do not fit a {self.columns}x{self.rows} board"
            )
        return self

    @classmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        opts = cls._check_option_keys(options, known={"columns", "rows"})
        columns = _side(opts, "columns", 7)
        rows = _side(opts, "rows", 6)
        if columns * (rows + 1) > BITBOARD_BITS:
            raise ValueError(
                f"a {columns}x{rows} board is too large: columns * (rows + 1) must be "
                f"at most {BITBOARD_BITS}"
            )
        return cls(columns=columns, rows=rows, cells=(None,) * (columns * rows))

    # -- reading ----------------------------------------------------------------------
    def legal_moves(self) -> list[Move]:
        if self.result is not None:
            return []
        top = self.cells[: self.columns]  # read once: a model's attributes are slow to get
        return [column for column, cell in enumerate(top) if cell is None]

    def parse_move(self, raw: Any) -> int:
        self._require_active()
        column = parse_int_move(raw, what="column", upper=self.columns)
        if self.cells[column] is not None:
            raise IllegalMove(f"column {column} is full")
        return column

    def board(self) -> dict[str, Any]:
        width, cells = self.columns, self.cells
        return {
            "columns": width,
            "rows": self.rows,
            "cells": [list(cells[start : start + width]) for start in range(0, len(cells), width)],
        }

    @property
    def sequence(self) -> str:
        """The moves as 1-based column digits, the notation of the Pons test sets."""
        return "".join(str(column + 1) for column in self.history)

    def winning_cells(self) -> list[tuple[int, int]] | None:
        """(row, col) of every disc in a line of four or more through the last move.

        Row 0 is the top row. None unless the game was won by four in a row.
        """
        if self.result is None or self.result.reason != "four_in_a_row" or not self.history:
            return None
        column = self.history[-1]
        row = next(r for r in range(self.rows) if self.cells[r * self.columns + column])
        cells: list[tuple[int, int]] = []
        for line in _runs(self.cells, self.columns, self.rows, row, column):
            if len(line) >= 4:
                cells.extend(cell for cell in line if cell not in cells)
        return sorted(cells)

    # -- changing ---------------------------------------------------------------------
    def apply(self, move: Any) -> Self:
        return self._drop(self.parse_move(move))

    def play(self, raw: Any) -> Played:
        return self._play_parsed_once(raw, Connect4State.apply, self._drop)

    def _drop(self, column: int) -> Self:
        """The state after a disc drops in `column`, a legal move of this position."""
        seat = self.turn
        assert seat is not None  # parse_move refused a finished game
        width, height = self.columns, self.rows
        # The disc lands on the column's stones so far (counted in C, not by a scan).
        played = self.history  # read once: a model's attributes are slow to get
        row = height - 1 - played.count(column)
        cells = list(self.cells)
        cells[row * width + column] = seat
        history = (*played, column)
        result = None
        if _makes_four(cells, width, height, row, column):
            result = GameResult(winner=seat, reason="four_in_a_row")
        elif len(history) == width * height:
            result = GameResult(winner=None, reason="board_full")
        return self.evolve(cells=tuple(cells), history=history, result=result)

    def to_json(self) -> dict[str, Any]:
        # What `model_dump(mode="json")` gives, spelled out: a third of its time, and
        # every move stores one.
        ended = self.result
        return {
            "history": list(self.history),
            "result": None if ended is None else {"winner": ended.winner, "reason": ended.reason},
            "columns": self.columns,
            "rows": self.rows,
            "cells": list(self.cells),
        }


def _makes_four(
    cells: Sequence[str | None], width: int, height: int, row: int, column: int
) -> bool:
    """Whether the disc at (row, column) completes a line of four (every move asks)."""
    index = row * width + column
    colour = cells[index]
    for behind, ahead in _rays(width, height)[index]:
        line = 1
        for other in ahead:
            if cells[other] != colour:
                break
            line += 1
        for other in behind:
            if cells[other] != colour:
                break
            line += 1
        if line >= 4:
            return True
    return False


@lru_cache(maxsize=64)
def _rays(width: int, height: int) -> tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]:
    """Per cell, per direction, the indices of the (at most three) cells on each side of
    it, nearest first: the win check walks these instead of working out coordinates."""

    def ray(row: int, column: int, dr: int, dc: int) -> tuple[int, ...]:
        indices: list[int] = []
        r, c = row + dr, column + dc
        while len(indices) < 3 and 0 <= r < height and 0 <= c < width:
            indices.append(r * width + c)
            r, c = r + dr, c + dc
        return tuple(indices)

    return tuple(
        tuple((ray(row, column, -dr, -dc), ray(row, column, dr, dc)) for dr, dc in DIRECTIONS)
        for row in range(height)
        for column in range(width)
    )


def _runs(
    cells: Sequence[str | None], width: int, height: int, row: int, column: int
) -> list[list[tuple[int, int]]]:
    """For each direction, the run of same-coloured discs through (row, column)."""
    runs = []
    for dr, dc in DIRECTIONS:
        back = _reach(cells, width, height, row, column, -dr, -dc)
        ahead = _reach(cells, width, height, row, column, dr, dc)
        runs.append([(row + k * dr, column + k * dc) for k in range(-back, ahead + 1)])
    return runs


def _reach(
    cells: Sequence[str | None], width: int, height: int, row: int, column: int, dr: int, dc: int
) -> int:
    """How many discs of the colour at (row, column) follow it in the direction (dr, dc)."""
    colour = cells[row * width + column]
    steps = 0
    r, c = row + dr, column + dc
    while 0 <= r < height and 0 <= c < width and cells[r * width + c] == colour:
        steps += 1
        r, c = r + dr, c + dc
    return steps


def _side(options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"option {name!r} must be an integer, got {value!r}")
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise ValueError(f"option {name!r} must be in {MIN_SIDE}..{MAX_SIDE}, got {value}")
    return value
