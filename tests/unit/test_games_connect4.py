import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games import Connect4State, IllegalMove


def play(*moves: object, **options: int) -> Connect4State:
    state = Connect4State.initial(options)
    for move in moves:
        state = state.apply(move)
    return state


# (moves, board options, the cells (row, col) of the winning line, top row = 0).
# Every direction, each touching a board edge; the last two use non-default sizes.
WINS = [
    pytest.param([0, 0, 1, 1, 2, 2, 3], {}, [(5, 0), (5, 1), (5, 2), (5, 3)], id="row-left"),
    pytest.param([6, 6, 5, 5, 4, 4, 3], {}, [(5, 3), (5, 4), (5, 5), (5, 6)], id="row-right"),
    pytest.param([0, 1, 0, 1, 0, 1, 0], {}, [(2, 0), (3, 0), (4, 0), (5, 0)], id="column-bottom"),
    pytest.param(
        [0, 6, 1, 6, 6, 0, 6, 1, 6, 0, 6], {}, [(0, 6), (1, 6), (2, 6), (3, 6)], id="column-top"
    ),
    pytest.param(
        [0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], {}, [(2, 3), (3, 2), (4, 1), (5, 0)], id="rising"
    ),
    pytest.param(
        [6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], {}, [(2, 3), (3, 4), (4, 5), (5, 6)], id="falling"
    ),
    pytest.param(
        [0, 1, 1, 2, 2, 3, 2, 3, 3, 0, 3],
        {"columns": 4, "rows": 4},
        [(0, 3), (1, 2), (2, 1), (3, 0)],
        id="corner-to-corner-4x4",
    ),
    pytest.param(
        [9, 9, 8, 8, 7, 7, 6],
        {"columns": 10, "rows": 5},
        [(4, 6), (4, 7), (4, 8), (4, 9)],
        id="row-right-10x5",
    ),
]


@pytest.mark.parametrize(("moves", "options", "line"), WINS)
def test_four_in_a_row_in_every_direction(
    moves: list[int], options: dict[str, int], line: list[tuple[int, int]]
) -> None:
    before = play(*moves[:-1], **options)
    assert before.result is None
    state = before.apply(moves[-1])
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == ("red", "four_in_a_row")
    assert state.winning_cells() == line
    assert state.turn is None
    assert state.legal_moves() == []
    cells = state.board()["cells"]
    assert all(cells[row][col] == "red" for row, col in line)


def test_a_line_of_five_reports_every_cell() -> None:
    # Red fills (5,0), (5,1), (5,3), (5,4) and then closes the gap at (5,2).
    state = play(0, 0, 1, 1, 3, 3, 4, 4, 2)
    assert state.winning_cells() == [(5, 0), (5, 1), (5, 2), (5, 3), (5, 4)]


def test_yellow_can_win() -> None:
    state = play(6, 0, 1, 0, 1, 0, 1, 0)
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == ("yellow", "four_in_a_row")


@pytest.mark.parametrize(
    ("moves", "options"),
    [
        pytest.param(
            [int(column) for column in "361313645534311043046626105524515600224220"],
            {},
            id="7x6",
        ),
        pytest.param(
            [0, 2, 1, 2, 0, 0, 2, 3, 0, 2, 3, 3, 1, 3, 1, 1],
            {"columns": 4, "rows": 4},
            id="4x4",
        ),
    ],
)
def test_full_board_is_a_draw(moves: list[int], options: dict[str, int]) -> None:
    state = play(*moves, **options)
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == (None, "board_full")
    assert state.winning_cells() is None
    assert all(cell is not None for row in state.board()["cells"] for cell in row)


@pytest.mark.parametrize(
    ("moves", "raw", "reason"),
    [
        ([], 7, r"column 7 is out of range 0\.\.6"),
        ([], -1, "out of range"),
        ([], "three", "must be an integer"),
        ([], 2.0, "must be an integer, got float"),
        ([], None, "must be an integer"),
        ([], True, "not a boolean"),
        ([], [3], "must be an integer"),
        ([0, 0, 0, 0, 0, 0], 0, "column 0 is full"),
        ([0, 1, 0, 1, 0, 1, 0], 2, "already over"),
    ],
)
def test_illegal_moves_are_refused_with_a_reason(
    moves: list[int], raw: object, reason: str
) -> None:
    state = play(*moves)
    with pytest.raises(IllegalMove, match=reason):
        state.apply(raw)
    with pytest.raises(IllegalMove, match=reason):
        state.parse_move(raw)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"columns": 3}, "'columns' must be in 4..10"),
        ({"rows": 11}, "'rows' must be in 4..10"),
        ({"columns": "7"}, "must be an integer"),
        ({"rows": True}, "must be an integer"),
        ({"columns": 10, "rows": 6}, "too large"),
        ({"depth": 3}, "unknown option"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Connect4State.initial(options)


def test_board_sequence_and_round_trip() -> None:
    state = play(3, "3", 4, **{"columns": 8, "rows": 7})
    assert state.legal_moves() == list(range(8))
    assert state.turn == "yellow"
    assert state.sequence == "445"
    assert state.last_move() == {"seat": "red", "move": 4}
    board = state.board()
    assert (board["columns"], board["rows"], len(board["cells"])) == (8, 7, 7)
    assert board["cells"][6] == [None, None, None, "red", "red", None, None, None]
    assert board["cells"][5] == [None, None, None, "yellow", None, None, None, None]
    assert all(cell is None for row in board["cells"][:5] for cell in row)
    assert Connect4State.from_json(state.to_json()) == state


def test_apply_is_pure_and_full_columns_leave_legal_moves() -> None:
    start = play(2, 2, 2, 2, 2)
    after = start.apply(2)
    assert start.board()["cells"][0][2] is None
    assert after.board()["cells"][0][2] == "yellow"
    assert 2 in start.legal_moves()
    assert after.legal_moves() == [0, 1, 3, 4, 5, 6]
    assert after.turn == "red"


def test_finish_ends_the_game() -> None:
    state = play(3).finish("red", "resignation")
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == ("red", "resignation")
    assert state.winning_cells() is None
    with pytest.raises(IllegalMove, match="already over"):
        state.apply(0)


def test_a_reload_whose_cells_do_not_fit_the_board_is_refused() -> None:
    data = play(3).to_json()
    data["rows"] = 5
    with pytest.raises(ValueError, match="42 cells do not fit a 7x5 board"):
        Connect4State.from_json(data)


def _has_four(cells: tuple[str | None, ...], columns: int, rows: int) -> bool:
    """Any line of four discs of one colour anywhere on the board, by brute force."""
    for row in range(rows):
        for column in range(columns):
            colour = cells[row * columns + column]
            if colour is None:
                continue
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                end_row, end_column = row + 3 * dr, column + 3 * dc
                if not (0 <= end_row < rows and 0 <= end_column < columns):
                    continue
                line = (cells[(row + k * dr) * columns + column + k * dc] for k in range(4))
                if all(disc == colour for disc in line):
                    return True
    return False


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(4, 8), st.integers(4, 7))
def test_the_win_check_agrees_with_a_search_of_the_whole_board(
    data: st.DataObject, columns: int, rows: int
) -> None:
    """The win check walks precomputed rays from the last disc: a game ends with four in
    a row exactly when the board, searched whole, holds a line of four."""
    state = Connect4State.initial({"columns": columns, "rows": rows})
    while state.result is None:
        state = state.apply(data.draw(st.sampled_from(state.legal_moves())))
        won = state.result is not None and state.result.reason == "four_in_a_row"
        assert won == _has_four(state.cells, columns, rows)
