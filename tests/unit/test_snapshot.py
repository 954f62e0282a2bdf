"""`build_snapshot`: the PROTOCOL.md snapshot of a stored game, for each status."""

from __future__ import annotations

from datetime import UTC, datetime

from games import ChessState, Connect4State, GameState, TicTacToeState
from socket_server.changes import derive_status
from socket_server.protocol import Event, Result
from socket_server.snapshot import build_snapshot, event_of
from socket_server.store.base import EventRecord, GameRecord, Seat

GAME_ID = "00000000-0000-4000-8000-0000000000cc"
CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ALICE: Seat = {"kind": "human", "user_id": "alice"}
BOB: Seat = {"kind": "human", "user_id": "bob"}


def record_of(
    state: GameState, seats: dict[str, Seat], version: int = 0, public: bool = True
) -> GameRecord:
    status = derive_status(seats, state)
    return GameRecord(
        game_id=GAME_ID,
        game_type=state.game_type,
        status=status,
        seats=seats,
        state=state.to_json(),
        version=version,
        public=public,
        created_by="alice",
        turn=state.turn if status == "active" else None,
        created_at=CREATED,
    )


def ttt(*moves: int) -> TicTacToeState:
    state = TicTacToeState.initial()
    for move in moves:
        state = state.apply(move)
    return state


def test_a_waiting_game_has_no_turn_and_no_legal_moves() -> None:
    state = ttt()
    record = record_of(state, {"x": ALICE, "o": None}, public=False)
    snapshot = build_snapshot(record, state)
    assert snapshot.status == "waiting"
    assert snapshot.turn is None and snapshot.legal_moves == []
    assert state.turn == "x" and state.legal_moves()  # the rules would allow them
    assert snapshot.moves == 0 and snapshot.last_move is None and snapshot.result is None
    assert snapshot.seats == {"x": ALICE, "o": None}
    assert snapshot.public is False
    assert snapshot.board == {"cells": [None] * 9}


def test_an_active_game_has_its_turn_legal_moves_and_last_move() -> None:
    state = ttt(4, 0)
    record = record_of(state, {"x": ALICE, "o": BOB}, version=3)
    snapshot = build_snapshot(record, state)
    assert snapshot.status == "active" and snapshot.turn == "x"
    assert snapshot.legal_moves == [1, 2, 3, 5, 6, 7, 8]
    assert snapshot.moves == 2
    assert snapshot.last_move == {"seat": "o", "move": 0}
    assert snapshot.result is None
    assert (snapshot.game_id, snapshot.game_type, snapshot.version) == (GAME_ID, "tictactoe", 3)
    assert snapshot.created_at == CREATED.isoformat()
    assert snapshot.public is True
    assert snapshot.board["cells"][4] == "x" and snapshot.board["cells"][0] == "o"


def test_a_finished_game_has_its_result_and_no_turn_or_legal_moves() -> None:
    state = ttt(0, 3, 1, 4, 2)
    record = record_of(state, {"x": ALICE, "o": BOB}, version=6)
    snapshot = build_snapshot(record, state)
    assert snapshot.status == "finished"
    assert snapshot.turn is None and snapshot.legal_moves == []
    assert snapshot.result == Result("x", "three_in_a_row")
    assert snapshot.moves == 5
    assert snapshot.last_move == {"seat": "x", "move": 2}


def test_a_resigned_game_keeps_its_moves_and_has_the_resignation_result() -> None:
    state = ttt(4).finish("x", "resignation")
    record = record_of(state, {"x": ALICE, "o": BOB}, version=3)
    snapshot = build_snapshot(record, state)
    assert snapshot.status == "finished" and snapshot.turn is None
    assert snapshot.legal_moves == []
    assert snapshot.result == Result("x", "resignation")
    assert snapshot.moves == 1 and snapshot.last_move == {"seat": "x", "move": 4}


def test_an_aborted_game() -> None:
    state = ttt().finish(None, "aborted")
    record = record_of(state, {"x": ALICE, "o": None}, version=1)
    snapshot = build_snapshot(record, state)
    assert snapshot.status == "aborted" and snapshot.turn is None
    assert snapshot.legal_moves == [] and snapshot.moves == 0
    assert snapshot.result == Result(None, "aborted")


def test_a_chess_snapshot_has_uci_legal_moves_and_san_in_the_last_move() -> None:
    state = ChessState.initial().apply("e4").apply("e5")
    record = record_of(state, {"white": ALICE, "black": {"kind": "ai", "level": 4}}, version=2)
    snapshot = build_snapshot(record, state)
    assert snapshot.turn == "white"
    assert "g1f3" in snapshot.legal_moves and len(snapshot.legal_moves) == 29
    assert snapshot.last_move == {"seat": "black", "move": "e7e5", "san": "e5"}
    assert snapshot.board["san"] == ["e4", "e5"] and snapshot.board["check"] is False
    assert snapshot.moves == 2


def test_a_connect4_snapshot_has_the_grid_board() -> None:
    state = Connect4State.initial().apply(3)
    record = record_of(state, {"red": ALICE, "yellow": BOB}, version=2)
    snapshot = build_snapshot(record, state)
    assert snapshot.turn == "yellow" and snapshot.legal_moves == list(range(7))
    assert snapshot.board["columns"] == 7 and snapshot.board["rows"] == 6
    assert len(snapshot.board["cells"]) == 6
    assert snapshot.board["cells"][-1][3] == "red"  # the bottom row is last


def test_the_snapshot_follows_the_stored_status_not_the_rules() -> None:
    """A record stored as waiting shows no turn even though the position has one."""
    state = ttt(4)
    record = record_of(state, {"x": ALICE, "o": BOB})
    record.status = "waiting"
    snapshot = build_snapshot(record, state)
    assert snapshot.turn is None and snapshot.legal_moves == [] and snapshot.moves == 1


def test_event_of_keeps_kind_seat_move_and_san() -> None:
    event = EventRecord(
        game_id=GAME_ID, version=5, kind="move", seat="white", move="g1f3", san="Nf3"
    )
    assert event_of(event) == Event(kind="move", seat="white", move="g1f3", san="Nf3")
    join = EventRecord(game_id=GAME_ID, version=1, kind="join", seat="o", user_id="bob")
    assert event_of(join) == Event(kind="join", seat="o")
