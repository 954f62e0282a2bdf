import pytest

from games import IllegalMove, TicTacToeState
from games.tictactoe import LINES


def play(*moves: object) -> TicTacToeState:
    state = TicTacToeState.initial()
    for move in moves:
        state = state.apply(move)
    return state


# For every line, moves where x completes it on the fifth ply while o never threatens.
WINNING_GAMES = {
    (0, 1, 2): [0, 3, 1, 4, 2],
    (3, 4, 5): [3, 0, 4, 1, 5],
    (6, 7, 8): [6, 0, 7, 1, 8],
    (0, 3, 6): [0, 1, 3, 2, 6],
    (1, 4, 7): [1, 0, 4, 2, 7],
    (2, 5, 8): [2, 0, 5, 1, 8],
    (0, 4, 8): [0, 1, 4, 2, 8],
    (2, 4, 6): [2, 0, 4, 1, 6],
}


def test_the_table_covers_every_line() -> None:
    assert set(WINNING_GAMES) == set(LINES)


@pytest.mark.parametrize(("line", "moves"), WINNING_GAMES.items())
def test_every_line_wins_for_x(line: tuple[int, int, int], moves: list[int]) -> None:
    before = play(*moves[:-1])
    assert before.result is None
    assert before.winning_line() is None
    state = before.apply(moves[-1])
    assert state.result is not None
    assert state.result.winner == "x"
    assert state.result.reason == "three_in_a_row"
    assert state.winning_line() == line
    assert state.turn is None
    assert state.legal_moves() == []


def test_o_can_win() -> None:
    state = play(0, 3, 1, 4, 8, 5)
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == ("o", "three_in_a_row")
    assert state.winning_line() == (3, 4, 5)


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
