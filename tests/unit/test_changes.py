"""The pure planning of `socket_server.changes`: who may do what, and what it stores.

No server, no store: records and states are built in memory and every plan function
is called directly, as a reducer would be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from games import ChessState, Connect4State, GameState, TicTacToeState
from socket_server.changes import (
    DEFAULT_AI_LEVEL,
    MAX_AI_DELAY_MS,
    Change,
    Refused,
    check_ai_delay,
    check_viewer,
    derive_status,
    initial_seats,
    next_version,
    plan_abort,
    plan_draw_accept,
    plan_draw_decline,
    plan_draw_offer,
    plan_join,
    plan_move,
    plan_player_move,
    plan_resign,
    player_seat,
    replay_event,
    seats_before_joins,
)
from socket_server.protocol import ErrorCode
from socket_server.store.base import Actor, EventRecord, GameRecord, Seat

ALICE = Actor(user_id="alice")
BOB = Actor(user_id="bob")
CAROL = Actor(user_id="carol")  # seated nowhere
ANON = Actor.ANONYMOUS
GAME_ID = "00000000-0000-4000-8000-00000000000a"
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=5)


def human(actor: Actor) -> Seat:
    return {"kind": "human", "user_id": actor.user_id}


def ai(level: int = 3) -> Seat:
    return {"kind": "ai", "level": level}


def record_of(
    state: GameState,
    seats: dict[str, Seat],
    *,
    version: int = 0,
    public: bool = True,
    created_by: str | None = "alice",
) -> GameRecord:
    """A stored game whose status and turn agree with `seats` and `state`."""
    status = derive_status(seats, state)
    return GameRecord(
        game_id=GAME_ID,
        game_type=state.game_type,
        status=status,
        seats=seats,
        state=state.to_json(),
        version=version,
        public=public,
        created_by=created_by,
        turn=state.turn if status == "active" else None,
        created_at=CREATED,
        updated_at=CREATED,
    )


def ttt(*moves: int) -> TicTacToeState:
    state = TicTacToeState.initial()
    for move in moves:
        state = state.apply(move)
    return state


def active_ttt(*moves: int) -> tuple[GameRecord, TicTacToeState]:
    """Alice (x) against Bob (o), after `moves`."""
    state = ttt(*moves)
    return record_of(state, {"x": human(ALICE), "o": human(BOB)}, version=1 + len(moves)), state


def waiting_ttt() -> tuple[GameRecord, TicTacToeState]:
    """Alice took x; o is free."""
    state = ttt()
    return record_of(state, {"x": human(ALICE), "o": None}), state


def finished_ttt() -> tuple[GameRecord, TicTacToeState]:
    """x won on the fifth ply."""
    record, state = active_ttt(0, 3, 1, 4, 2)
    assert record.status == "finished"
    return record, state


def refused(code: ErrorCode, call: Any, *args: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)
    assert caught.value.code == code, caught.value.message
    assert caught.value.message  # a reason a person can read
    return caught.value


# -- derive_status ---------------------------------------------------------------------
def test_status_is_waiting_while_any_seat_is_empty() -> None:
    assert derive_status({"x": human(ALICE), "o": None}, ttt()) == "waiting"
    assert derive_status({"x": None, "o": None}, ttt()) == "waiting"


def test_status_is_active_once_every_seat_is_taken() -> None:
    assert derive_status({"x": human(ALICE), "o": ai()}, ttt()) == "active"
    assert derive_status({"x": human(ALICE), "o": human(BOB)}, ttt(4)) == "active"


def test_status_is_finished_with_a_result_of_the_rules_or_the_players() -> None:
    seats = {"x": human(ALICE), "o": human(BOB)}
    assert derive_status(seats, ttt(0, 3, 1, 4, 2)) == "finished"
    assert derive_status(seats, ttt(4).finish("x", "resignation")) == "finished"
    assert derive_status(seats, ttt(4).finish(None, "draw_agreed")) == "finished"


def test_status_is_aborted_for_an_abort_result_even_with_an_empty_seat() -> None:
    assert derive_status({"x": human(ALICE), "o": None}, ttt().finish(None, "aborted")) == (
        "aborted"
    )
    # A result outranks an empty seat.
    assert derive_status({"x": human(ALICE), "o": None}, ttt().finish("x", "resignation")) == (
        "finished"
    )


# -- check_viewer -------------------------------------------------------------------------
def test_a_public_game_is_visible_to_everyone() -> None:
    record, _ = active_ttt()
    for actor in (ALICE, CAROL, ANON, Actor.SERVER):
        check_viewer(record, actor)


def test_a_private_game_is_visible_to_its_players_and_the_server_only() -> None:
    state = ttt()
    record = record_of(state, {"x": human(ALICE), "o": human(BOB)}, public=False)
    check_viewer(record, ALICE)
    check_viewer(record, BOB)
    check_viewer(record, Actor.SERVER)
    refused(ErrorCode.UNAUTHORIZED, check_viewer, record, ANON)
    refused(ErrorCode.FORBIDDEN, check_viewer, record, CAROL)


# -- plan_join ------------------------------------------------------------------------------
def test_join_takes_the_first_free_seat() -> None:
    record, state = waiting_ttt()
    change = plan_join(record, state, BOB, None)
    assert isinstance(change, Change)
    assert change.kind == "join" and change.seat == "o"
    assert change.seats == {"x": human(ALICE), "o": human(BOB)}
    assert change.state == state  # a join changes no position
    assert change.move is None and change.san is None
    assert record.seats["o"] is None  # the stored record is not changed in place


def test_join_takes_the_named_seat() -> None:
    state = ttt()
    record = record_of(state, {"x": None, "o": None}, created_by="carol")
    change = plan_join(record, state, BOB, "o")
    assert change is not None and change.seat == "o"
    assert change.seats == {"x": None, "o": human(BOB)}


def test_joining_a_taken_seat_is_refused() -> None:
    record, state = waiting_ttt()
    refused(ErrorCode.SEAT_TAKEN, plan_join, record, state, BOB, "x")


def test_joining_a_full_game_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.SEAT_TAKEN, plan_join, record, state, CAROL, None)
    refused(ErrorCode.SEAT_TAKEN, plan_join, record, state, CAROL, "o")


def test_joining_twice_changes_nothing() -> None:
    record, state = waiting_ttt()
    assert plan_join(record, state, ALICE, None) is None
    assert plan_join(record, state, ALICE, "x") is None


def test_joining_an_unknown_seat_is_a_bad_message() -> None:
    record, state = waiting_ttt()
    refused(ErrorCode.BAD_MESSAGE, plan_join, record, state, BOB, "white")


def test_joining_needs_a_signed_in_user() -> None:
    record, state = waiting_ttt()
    refused(ErrorCode.UNAUTHORIZED, plan_join, record, state, ANON, None)


def test_joining_a_game_that_is_over_is_refused() -> None:
    state = ttt().finish(None, "aborted")
    record = record_of(state, {"x": human(ALICE), "o": None})
    assert record.status == "aborted"
    refused(ErrorCode.GAME_OVER, plan_join, record, state, BOB, None)
    record, state = finished_ttt()
    refused(ErrorCode.GAME_OVER, plan_join, record, state, CAROL, None)


# -- player_seat ------------------------------------------------------------------------------
def test_player_seat_is_the_callers_seat() -> None:
    record, state = active_ttt()
    assert player_seat(record, state, ALICE) == "x"
    assert player_seat(record, state, BOB) == "o"


def test_player_seat_of_a_user_holding_both_seats_is_the_one_to_move() -> None:
    state = ttt()
    record = record_of(state, {"x": human(ALICE), "o": human(ALICE)})
    assert player_seat(record, state, ALICE) == "x"
    state = ttt(4)
    record = record_of(state, {"x": human(ALICE), "o": human(ALICE)})
    assert player_seat(record, state, ALICE) == "o"


def test_player_seat_refuses_strangers_anonymous_waiting_and_over() -> None:
    record, state = active_ttt()
    refused(ErrorCode.FORBIDDEN, player_seat, record, state, CAROL)
    refused(ErrorCode.UNAUTHORIZED, player_seat, record, state, ANON)
    record, state = waiting_ttt()
    refused(ErrorCode.NOT_YOUR_TURN, player_seat, record, state, ALICE)
    record, state = finished_ttt()
    refused(ErrorCode.GAME_OVER, player_seat, record, state, ALICE)


# -- plan_move / plan_player_move ------------------------------------------------------------------
def test_a_move_is_stored_in_normal_form() -> None:
    record, state = active_ttt()
    change = plan_player_move(record, state, ALICE, "4")  # a numeric string is accepted
    assert change.kind == "move" and change.seat == "x" and change.move == 4
    assert change.san is None
    assert isinstance(change.state, TicTacToeState)
    assert change.state.cells[4] == "x" and change.state.history == (4,)
    assert change.seats == record.seats
    assert state.history == ()  # the old state is untouched


def test_a_chess_move_in_san_is_stored_as_uci_with_its_san() -> None:
    state = ChessState.initial()
    record = record_of(state, {"white": human(ALICE), "black": human(BOB)})
    change = plan_player_move(record, state, ALICE, "Nf3")
    assert (change.seat, change.move, change.san) == ("white", "g1f3", "Nf3")
    change = plan_player_move(record, state, ALICE, "e2e4")
    assert (change.move, change.san) == ("e2e4", "e4")


def test_plan_move_plays_for_the_named_seat() -> None:
    state = Connect4State.initial()
    record = record_of(state, {"red": ai(), "yellow": ai()})
    change = plan_move(record, state, "red", 3)
    assert change.seat == "red" and change.move == 3
    refused(ErrorCode.NOT_YOUR_TURN, plan_move, record, state, "yellow", 3)


def test_moving_out_of_turn_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.NOT_YOUR_TURN, plan_player_move, record, state, BOB, 4)
    record, state = active_ttt(4)
    refused(ErrorCode.NOT_YOUR_TURN, plan_player_move, record, state, ALICE, 0)


def test_moving_in_a_waiting_game_is_refused() -> None:
    record, state = waiting_ttt()
    refused(ErrorCode.NOT_YOUR_TURN, plan_player_move, record, state, ALICE, 4)


def test_an_illegal_move_is_refused() -> None:
    record, state = active_ttt(4)
    refused(ErrorCode.ILLEGAL_MOVE, plan_player_move, record, state, BOB, 4)  # taken
    refused(ErrorCode.ILLEGAL_MOVE, plan_player_move, record, state, BOB, 9)  # off the board
    refused(ErrorCode.ILLEGAL_MOVE, plan_player_move, record, state, BOB, True)
    refused(ErrorCode.ILLEGAL_MOVE, plan_player_move, record, state, BOB, "middle")
    chess_state = ChessState.initial()
    chess_record = record_of(chess_state, {"white": human(ALICE), "black": human(BOB)})
    refused(ErrorCode.ILLEGAL_MOVE, plan_player_move, chess_record, chess_state, ALICE, "e2e5")


def test_moving_in_a_finished_game_is_game_over() -> None:
    record, state = finished_ttt()
    refused(ErrorCode.GAME_OVER, plan_player_move, record, state, BOB, 8)


def test_moving_without_a_seat_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.FORBIDDEN, plan_player_move, record, state, CAROL, 4)
    refused(ErrorCode.UNAUTHORIZED, plan_player_move, record, state, ANON, 4)


# -- plan_resign --------------------------------------------------------------------------
def test_resigning_gives_the_win_to_the_other_seat() -> None:
    record, state = active_ttt(4)
    change = plan_resign(record, state, ALICE)
    assert change.kind == "resign" and change.seat == "x"
    assert change.state.result is not None
    assert (change.state.result.winner, change.state.result.reason) == ("o", "resignation")
    assert derive_status(change.seats, change.state) == "finished"


def test_resigning_is_allowed_when_it_is_not_the_callers_turn() -> None:
    record, state = active_ttt()  # x to move
    change = plan_resign(record, state, BOB)
    assert change.seat == "o"
    assert change.state.result is not None and change.state.result.winner == "x"


def test_resigning_is_refused_in_waiting_and_finished_games_and_to_strangers() -> None:
    record, state = waiting_ttt()
    refused(ErrorCode.NOT_YOUR_TURN, plan_resign, record, state, ALICE)
    record, state = finished_ttt()
    refused(ErrorCode.GAME_OVER, plan_resign, record, state, BOB)
    record, state = active_ttt()
    refused(ErrorCode.FORBIDDEN, plan_resign, record, state, CAROL)
    refused(ErrorCode.UNAUTHORIZED, plan_resign, record, state, ANON)


# -- plan_abort ------------------------------------------------------------------------------
def test_a_seated_player_aborts_a_game_before_its_first_move() -> None:
    record, state = active_ttt()
    change = plan_abort(record, state, BOB)
    assert change.kind == "abort" and change.seat == "o"
    assert change.state.result is not None
    assert (change.state.result.winner, change.state.result.reason) == (None, "aborted")
    assert derive_status(change.seats, change.state) == "aborted"


def test_the_creator_without_a_seat_aborts_with_no_seat() -> None:
    state = ttt()
    record = record_of(state, {"x": ai(), "o": ai()}, created_by="carol")
    change = plan_abort(record, state, CAROL)
    assert change.seat is None
    assert change.state.result is not None and change.state.result.reason == "aborted"


def test_aborting_after_a_move_is_refused() -> None:
    record, state = active_ttt(4)
    refused(ErrorCode.FORBIDDEN, plan_abort, record, state, ALICE)


def test_aborting_by_a_stranger_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.FORBIDDEN, plan_abort, record, state, CAROL)


def test_aborting_needs_a_signed_in_user() -> None:
    record, state = active_ttt()
    refused(ErrorCode.UNAUTHORIZED, plan_abort, record, state, ANON)


def test_aborting_a_game_that_is_over_is_refused() -> None:
    state = ttt().finish(None, "aborted")
    record = record_of(state, {"x": human(ALICE), "o": None})
    refused(ErrorCode.GAME_OVER, plan_abort, record, state, ALICE)


# -- draws ------------------------------------------------------------------------------------
def test_accepting_the_opponents_offer_draws_the_game() -> None:
    record, state = active_ttt(4)
    change = plan_draw_accept(record, state, BOB, "x")
    assert change.kind == "draw" and change.seat == "o"
    assert change.state.result is not None
    assert (change.state.result.winner, change.state.result.reason) == (None, "draw_agreed")
    assert change.state.history == state.history


def test_accepting_without_an_offer_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.ILLEGAL_MOVE, plan_draw_accept, record, state, BOB, None)


def test_accepting_ones_own_offer_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.ILLEGAL_MOVE, plan_draw_accept, record, state, ALICE, "x")


def test_draws_need_an_active_game_and_a_seat() -> None:
    record, state = finished_ttt()
    refused(ErrorCode.GAME_OVER, plan_draw_accept, record, state, BOB, "x")
    refused(ErrorCode.GAME_OVER, plan_draw_offer, record, state, BOB, None)
    record, state = waiting_ttt()
    refused(ErrorCode.NOT_YOUR_TURN, plan_draw_offer, record, state, ALICE, None)
    record, state = active_ttt()
    refused(ErrorCode.FORBIDDEN, plan_draw_offer, record, state, CAROL, None)
    refused(ErrorCode.UNAUTHORIZED, plan_draw_decline, record, state, ANON, "x")


def test_offering_a_draw_names_the_offering_seat() -> None:
    record, state = active_ttt()
    assert plan_draw_offer(record, state, ALICE, None) == "x"
    assert plan_draw_offer(record, state, BOB, None) == "o"  # not only on one's turn
    assert plan_draw_offer(record, state, ALICE, "x") == "x"  # offering again is harmless


def test_offering_when_the_opponent_already_offered_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.ILLEGAL_MOVE, plan_draw_offer, record, state, BOB, "x")


def test_declining_the_opponents_offer_names_the_declining_seat() -> None:
    record, state = active_ttt()
    assert plan_draw_decline(record, state, BOB, "x") == "o"


def test_declining_without_an_offer_or_ones_own_offer_is_refused() -> None:
    record, state = active_ttt()
    refused(ErrorCode.ILLEGAL_MOVE, plan_draw_decline, record, state, BOB, None)
    refused(ErrorCode.ILLEGAL_MOVE, plan_draw_decline, record, state, ALICE, "x")


# -- next_version ------------------------------------------------------------------------------
def test_next_version_stores_the_change_as_the_following_version() -> None:
    record, state = waiting_ttt()
    change = plan_join(record, state, BOB, None)
    assert change is not None
    new_record, event = next_version(record, change, BOB, "req-1", NOW)
    assert new_record.version == record.version + 1
    assert new_record.status == "active" and new_record.turn == "x"
    assert new_record.seats == {"x": human(ALICE), "o": human(BOB)}
    assert new_record.state == state.to_json()
    assert new_record.updated_at == NOW and new_record.created_at == CREATED
    assert (new_record.game_id, new_record.game_type, new_record.created_by) == (
        record.game_id,
        record.game_type,
        record.created_by,
    )
    assert record.version == 0 and record.status == "waiting"  # the input is not changed
    assert event == EventRecord(
        game_id=GAME_ID,
        version=1,
        kind="join",
        seat="o",
        move=None,
        san=None,
        user_id="bob",
        request_id="req-1",
        data={},
        at=NOW,
    )


def test_next_version_of_a_move_carries_the_move_and_the_next_turn() -> None:
    state = ChessState.initial()
    record = record_of(state, {"white": human(ALICE), "black": human(BOB)}, version=2)
    change = plan_player_move(record, state, ALICE, "e4")
    new_record, event = next_version(record, change, ALICE, None, NOW)
    assert new_record.version == 3 and new_record.turn == "black"
    assert new_record.state == change.state.to_json()
    assert (event.version, event.kind, event.seat, event.move, event.san) == (
        3,
        "move",
        "white",
        "e2e4",
        "e4",
    )
    assert event.user_id == "alice" and event.request_id is None


def test_next_version_has_no_turn_unless_active() -> None:
    record, state = active_ttt(0, 3, 1, 4)
    change = plan_player_move(record, state, ALICE, 2)  # x wins
    new_record, _ = next_version(record, change, ALICE, None, NOW)
    assert new_record.status == "finished" and new_record.turn is None
    record, state = active_ttt()
    new_record, _ = next_version(record, plan_abort(record, state, ALICE), ALICE, None, NOW)
    assert new_record.status == "aborted" and new_record.turn is None
    # A waiting game has a seat to move by the rules, but no turn.
    state = ttt()
    record = record_of(state, {"x": None, "o": None}, created_by="carol")
    joined = plan_join(record, state, ALICE, "x")
    assert joined is not None
    new_record, _ = next_version(record, joined, ALICE, None, NOW)
    assert new_record.status == "waiting" and new_record.turn is None


def test_next_version_drops_the_request_id_of_an_anonymous_actor() -> None:
    state = ttt()
    record = record_of(state, {"x": ai(), "o": ai()})
    change = plan_move(record, state, "x", 4)
    _, event = next_version(record, change, Actor.SERVER, "req-9", NOW)
    assert event.user_id is None and event.request_id is None
    _, event = next_version(record, change, ANON, "req-9", NOW)
    assert event.request_id is None
    _, event = next_version(record, change, ALICE, "req-9", NOW)
    assert event.request_id == "req-9"


def test_next_version_keeps_the_changes_data() -> None:
    state = ttt()
    record = record_of(state, {"x": human(ALICE), "o": human(BOB)})
    result = {"winner": "o", "reason": "resignation"}
    change = Change(
        record.seats, state.finish("o", "resignation"), "finish", data={"result": result}
    )
    _, event = next_version(record, change, Actor.SERVER, None, NOW)
    assert event.kind == "finish" and event.data == {"result": result}


# -- initial_seats ------------------------------------------------------------------------------
def test_initial_seats_me_and_ai_and_empty() -> None:
    seats = initial_seats(TicTacToeState, {"x": "me", "o": {"kind": "ai"}}, ALICE, True)
    assert seats == {"x": human(ALICE), "o": {"kind": "ai", "level": DEFAULT_AI_LEVEL}}
    assert list(seats) == ["x", "o"]  # turn order, whatever the request's order
    seats = initial_seats(ChessState, {"black": "me"}, BOB, True)
    assert seats == {"white": None, "black": human(BOB)}
    assert list(seats) == ["white", "black"]
    assert initial_seats(Connect4State, {}, ALICE, True) == {"red": None, "yellow": None}


@pytest.mark.parametrize("level", [1, 10])
def test_initial_seats_accepts_the_ai_level_bounds(level: int) -> None:
    seats = initial_seats(TicTacToeState, {"x": {"kind": "ai", "level": level}}, ALICE, True)
    assert seats["x"] == {"kind": "ai", "level": level}


@pytest.mark.parametrize("level", [0, 11, -1, True, False, 5.0, "5", None])
def test_initial_seats_refuses_other_ai_levels(level: Any) -> None:
    wanted = {"x": {"kind": "ai", "level": level}}
    refused(ErrorCode.BAD_MESSAGE, initial_seats, TicTacToeState, wanted, ALICE, True)


def test_initial_seats_refuses_an_unknown_seat() -> None:
    error = refused(
        ErrorCode.BAD_MESSAGE, initial_seats, TicTacToeState, {"white": "me"}, ALICE, True
    )
    assert "white" in error.message


@pytest.mark.parametrize("wanted", ["you", "ai", {"kind": "human"}, 3, ["me"]])
def test_initial_seats_refuses_a_seat_that_is_neither_me_nor_ai(wanted: Any) -> None:
    refused(ErrorCode.BAD_MESSAGE, initial_seats, TicTacToeState, {"x": wanted}, ALICE, True)


def test_initial_seats_refuses_ai_for_a_game_type_without_ai() -> None:
    error = refused(
        ErrorCode.BAD_MESSAGE, initial_seats, TicTacToeState, {"o": {"kind": "ai"}}, ALICE, False
    )
    assert "tictactoe" in error.message
    # Human seats are fine without AI.
    assert initial_seats(TicTacToeState, {"x": "me"}, ALICE, False) == {
        "x": human(ALICE),
        "o": None,
    }


# -- check_ai_delay -----------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0, 1, 500, MAX_AI_DELAY_MS])
def test_check_ai_delay_accepts_integers_in_range(delay: int) -> None:
    check_ai_delay({"ai_delay_ms": delay}, 500)


@pytest.mark.parametrize("delay", [-1, MAX_AI_DELAY_MS + 1, True, False, 1.5, "100", None])
def test_check_ai_delay_refuses_everything_else(delay: Any) -> None:
    refused(ErrorCode.BAD_MESSAGE, check_ai_delay, {"ai_delay_ms": delay}, 500)


def test_check_ai_delay_judges_the_default_when_no_delay_is_given() -> None:
    check_ai_delay({}, 500)
    check_ai_delay({"fen": "whatever"}, 0)
    refused(ErrorCode.BAD_MESSAGE, check_ai_delay, {}, MAX_AI_DELAY_MS + 1)


# -- replaying ------------------------------------------------------------------------------------
Step = Any  # (record, state) -> Change | None


def play(
    state: GameState, seats: dict[str, Seat], steps: list[tuple[Actor, Step]]
) -> tuple[GameRecord, GameState, list[GameRecord], list[EventRecord]]:
    """Store each planned step as the next version, as the service does."""
    record = record_of(state, seats)
    versions, events = [record], []
    for index, (actor, step) in enumerate(steps):
        change = step(record, state)
        assert change is not None
        record, event = next_version(record, change, actor, f"r{index}", NOW)
        state = change.state
        versions.append(record)
        events.append(event)
    return record, state, versions, events


def replay_all(
    record: GameRecord, initial: GameState, events: list[EventRecord]
) -> list[tuple[dict[str, Seat], GameState]]:
    seats = seats_before_joins(record, events)
    state = initial
    steps = [(dict(seats), state)]
    for event in events:
        seats, state = replay_event(seats, state, event, record.seats)
        steps.append((dict(seats), state))
    return steps


def mover(record: GameRecord, state: GameState) -> Actor:
    """The human who holds the seat to move."""
    assert state.turn is not None
    seat = record.seats[state.turn]
    assert seat is not None and seat["kind"] == "human"
    return Actor(user_id=seat["user_id"])


def move(raw: Any) -> Step:
    return lambda record, state: plan_player_move(record, state, mover(record, state), raw)


def assert_replay_reproduces(
    initial: GameState, seats: dict[str, Seat], steps: list[tuple[Actor, Step]]
) -> GameRecord:
    final, final_state, versions, events = play(initial, seats, steps)
    replayed = replay_all(final, initial, events)
    assert len(replayed) == len(versions)
    for (seats_then, state_then), stored in zip(replayed, versions, strict=True):
        assert seats_then == stored.seats, stored.version
        assert state_then.to_json() == stored.state, stored.version
        assert derive_status(seats_then, state_then) == stored.status, stored.version
    assert replayed[-1][1] == final_state
    return final


def test_replay_of_a_tictactoe_game_with_joins_reproduces_every_version() -> None:
    steps: list[tuple[Actor, Step]] = [(BOB, lambda r, s: plan_join(r, s, BOB, None))]
    for index, cell in enumerate([4, 0, 2, 6, 3, 5, 1, 7, 8]):  # ends with a full board
        steps.append((ALICE if index % 2 == 0 else BOB, move(cell)))
    final = assert_replay_reproduces(ttt(), {"x": human(ALICE), "o": None}, steps)
    assert final.version == 10 and final.status == "finished"
    assert TicTacToeState.from_json(final.state).result is not None


def test_replay_of_a_chess_game_joined_from_empty_and_resigned() -> None:
    steps: list[tuple[Actor, Step]] = [
        (BOB, lambda r, s: plan_join(r, s, BOB, "black")),
        (ALICE, lambda r, s: plan_join(r, s, ALICE, "white")),
        (ALICE, move("e4")),
        (BOB, move("e7e5")),
        (ALICE, move("Nf3")),
        (BOB, lambda r, s: plan_resign(r, s, BOB)),
    ]
    initial = ChessState.initial()
    final = assert_replay_reproduces(initial, {"white": None, "black": None}, steps)
    assert final.status == "finished" and final.version == 6


def test_replay_of_an_ai_game_drawn_by_agreement() -> None:
    seats = {"red": human(ALICE), "yellow": ai()}
    steps: list[tuple[Actor, Step]] = [
        (ALICE, move(3)),
        (Actor.SERVER, lambda r, s: plan_move(r, s, "yellow", 3)),
        (ALICE, lambda r, s: plan_draw_accept(r, s, ALICE, "yellow")),
    ]
    final = assert_replay_reproduces(Connect4State.initial(), seats, steps)
    assert final.status == "finished"


def test_replay_of_an_aborted_game() -> None:
    steps: list[tuple[Actor, Step]] = [
        (BOB, lambda r, s: plan_join(r, s, BOB, None)),
        (BOB, lambda r, s: plan_abort(r, s, BOB)),
    ]
    final = assert_replay_reproduces(ttt(), {"x": human(ALICE), "o": None}, steps)
    assert final.status == "aborted"


def test_replay_of_a_finish_event_applies_its_stored_result() -> None:
    state = ttt(4)
    seats = {"x": human(ALICE), "o": human(BOB)}
    event = EventRecord(
        game_id=GAME_ID,
        version=3,
        kind="finish",
        data={"result": {"winner": "o", "reason": "resignation"}},
    )
    new_seats, new_state = replay_event(seats, state, event, seats)
    assert new_seats == seats
    assert new_state.result is not None
    assert (new_state.result.winner, new_state.result.reason) == ("o", "resignation")


def test_seats_before_joins_empties_only_the_joined_seats() -> None:
    record = record_of(ttt(), {"x": human(ALICE), "o": human(BOB)}, version=1)
    join = EventRecord(game_id=GAME_ID, version=1, kind="join", seat="o", user_id="bob")
    moved = EventRecord(game_id=GAME_ID, version=2, kind="move", seat="x", move=4)
    assert seats_before_joins(record, [join, moved]) == {"x": human(ALICE), "o": None}
    assert seats_before_joins(record, [moved]) == record.seats
