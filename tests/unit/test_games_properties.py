"""Random legal playouts of every game, with a JSON round trip at every ply."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games import RESULT_REASONS, ChessState, Connect4State, GameState, TicTacToeState

CHESS_MAX_PLIES = 120


def playout(state: GameState, data: st.DataObject, max_plies: int) -> GameState:
    """Play random legal moves, checking the invariants after each one."""
    for _ in range(max_plies):
        moves = state.legal_moves()
        if state.result is not None:
            assert moves == []
            assert state.turn is None
            break
        assert moves, "an unfinished game must have a legal move"
        assert state.turn in state.seats
        move = data.draw(st.sampled_from(moves))
        assert state.parse_move(move) == move
        after = state.apply(move)
        # `play` (the server's one step) agrees with parse_move, apply and move_san.
        played = state.play(move)
        assert (played.move, played.state, played.san) == (move, after, state.move_san(move))
        assert after.history == (*state.history, move)
        last = after.last_move()
        assert last is not None
        assert last["move"] == move
        check_round_trip(after)
        state = after
    return state


def check_round_trip(state: GameState) -> None:
    # A game's own `to_json` (connect4 spells it out for speed) is pydantic's dump.
    assert state.to_json() == state.model_dump(mode="json")
    reloaded = type(state).from_json(json.loads(json.dumps(state.to_json())))
    assert reloaded == state
    assert reloaded.board() == state.board()
    assert reloaded.legal_moves() == state.legal_moves()
    assert reloaded.last_move() == state.last_move()


def check_result(state: GameState) -> None:
    assert state.result is not None
    assert state.result.reason in RESULT_REASONS
    assert state.result.winner is None or state.result.winner in state.seats


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tictactoe_playouts(data: st.DataObject) -> None:
    state = playout(TicTacToeState.initial(), data, max_plies=10)
    check_result(state)
    assert state.result is not None
    assert (state.result.winner is None) == (state.result.reason == "board_full")


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from([(7, 6), (4, 4), (10, 5), (5, 10), (8, 7)]))
def test_connect4_playouts(data: st.DataObject, size: tuple[int, int]) -> None:
    columns, rows = size
    state = playout(Connect4State.initial({"columns": columns, "rows": rows}), data, 100)
    check_result(state)
    assert isinstance(state, Connect4State)
    assert state.result is not None
    if state.result.reason == "four_in_a_row":
        last = state.last_move()
        assert last is not None
        assert state.result.winner == last["seat"]
        assert len(state.winning_cells() or []) >= 4
    else:
        assert state.result.reason == "board_full"
        assert len(state.history) == columns * rows
    cells: list[list[Any]] = state.board()["cells"]
    assert len(cells) == rows
    assert sum(cell is not None for row in cells for cell in row) == len(state.history)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_chess_playouts(data: st.DataObject) -> None:
    state = playout(ChessState.initial(), data, CHESS_MAX_PLIES)
    assert isinstance(state, ChessState)
    if state.result is not None:
        check_result(state)
        assert state.result.reason not in {"resignation", "draw_agreed", "aborted"}
    board = state.board()
    assert len(board["san"]) == len(state.history)
    assert state.pgn().count(".") >= len(state.history) // 2


@pytest.mark.parametrize("game", [Connect4State, TicTacToeState])
def test_play_goes_through_a_subclass_apply(game: type[GameState]) -> None:
    """The grid games' `play` parses a move once and skips `apply`, unless a subclass
    has its own `apply` (a custom game built on them): that one sees every move."""

    class Custom(game):  # type: ignore[valid-type,misc]
        def apply(self, move: Any) -> GameState:
            raise RuntimeError(f"custom rules saw {move!r}")

    with pytest.raises(RuntimeError, match="custom rules saw 1"):
        Custom.initial().play(1)
    assert game.initial().play(1).state == game.initial().apply(1)
