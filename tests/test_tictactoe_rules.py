import pytest

from games import IllegalMove, TicTacToeState
from games.tictactoe import LINES


def play(*moves: object) -> TicTacToeState:
    state = TicTacToeState.initial()
    for move in moves:
        state = state.apply(move)
    return state


@pytest.mark.parametrize("line", LINES)
def test_every_line_wins_for_x(line: tuple[int, int, int]) -> None:
    filler = [cell for cell in range(9) if cell not in line]
    # o plays two cells that never complete a line of its own.
    o_cells = [c for c in filler if not any(set(ln) <= {c, *filler[:2]} for ln in LINES)][:2]
    moves: list[int] = []
    for x_cell, o_cell in zip(line, [*o_cells, None], strict=True):
        moves.append(x_cell)
        if o_cell is not None:
            moves.append(o_cell)
    state = play(*moves)
    assert state.result is not None
    assert state.result.winner == "x"
    assert state.result.reason == "three_in_a_row"
    assert state.winning_line() == line
    assert state.turn is None
    assert state.legal_moves() == []


def test_board_full_is_a_draw() -> None:
    state = play(0, 1, 2, 4, 3, 5, 7, 6, 8)
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == (None, "board_full")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (9, "out of range"),
        (-1, "out of range"),
        ("x", "must be an integer"),
        (1.5, "must be an integer"),
        (True, "not a boolean"),
        (None, "must be an integer"),
    ],
)
def test_bad_cells_are_refused(raw: object, reason: str) -> None:
    with pytest.raises(IllegalMove, match=reason):
        TicTacToeState.initial().apply(raw)


def test_occupied_cell_and_finished_game_are_refused() -> None:
    with pytest.raises(IllegalMove, match="already taken"):
        play(4, 4)
    with pytest.raises(IllegalMove, match="already over"):
        play(0, 3, 1, 4, 2, 5)


def test_numeric_string_is_accepted_and_apply_is_pure() -> None:
    start = TicTacToeState.initial()
    after = start.apply("4")
    assert start.cells[4] is None
    assert after.cells[4] == "x"
    assert after.turn == "o"
    assert after.last_move() == {"seat": "x", "move": 4}
    assert TicTacToeState.from_json(after.to_json()) == after
