"""Pure planning: who may do what, and what a request changes. No I/O, no asyncio.

Every `plan_*` function takes the game as stored now (record and state) and the
caller, and returns a `Change` (what to store as the next version), `None` (the
request is already satisfied: nothing to store) or raises `Refused` with the
protocol's error code. The service stores what these return; the rules of the game
itself live in `games`.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from games import GameState, IllegalMove
from socket_server.protocol import ErrorCode
from socket_server.ratings import is_guest, is_rated
from socket_server.store.base import (
    Actor,
    EventKind,
    EventRecord,
    GameRecord,
    GameStatus,
    Seat,
    holds,
    human_seat,
    is_ai_seat,
    may_see,
    seats_held_by,
)
from socket_server.timecontrol import BadTimeControl, Clock

DEFAULT_AI_LEVEL = 5
MAX_AI_DELAY_MS = 60_000


class Refused(Exception):
    """A refused request: `code` is a protocol error code; nothing was changed."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Not frozen (nothing changes one after it is made): a frozen dataclass's __init__ costs
# about 1.6 us here against 0.3 us with slots, and every move makes one.
@dataclass(slots=True)
class Change:
    """What one request changes: the seats and state of the next version, and its event."""

    seats: dict[str, Seat]
    state: GameState
    kind: EventKind
    seat: str | None = None
    move: Any = None  # normal form, for a move
    san: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    moved_at_ms: int | None = None  # when a move's frame arrived (it stops the clock)
    credit_ms: int = 0  # lag credited to a move's clock
    # Stored, and then the request is still refused with this (a move that arrived after
    # its mover's flag fell stores the timeout and is answered `game_over`).
    then_refuse: Refused | None = None


def derive_status(seats: Mapping[str, Seat], state: GameState) -> GameStatus:
    """`waiting` while a seat is empty, then `active`, then `finished` or `aborted`."""
    if state.result is not None:
        return "aborted" if state.result.reason == "aborted" else "finished"
    if None in seats.values():  # a seat nobody holds (no generator: every change asks)
        return "waiting"
    return "active"


def turn_of(status: GameStatus, state: GameState) -> str | None:
    """The seat to move, None unless the game is active."""
    return state.turn if status == "active" else None


def next_version(
    record: GameRecord,
    change: Change,
    actor: Actor,
    request_id: str | None,
    now: datetime,
) -> tuple[GameRecord, EventRecord]:
    """The record and event that store `change` as version `record.version + 1`."""
    status = derive_status(change.seats, change.state)
    version = record.version + 1
    # A shallow copy with what a change changes set (`replace` costs a few us a move;
    # `copy.copy`'s dispatch costs more than the copy).
    new_record = record.__copy__()
    new_record.seats = change.seats
    new_record.state = change.state.to_json()
    new_record.version = version
    new_record.status = status
    new_record.turn = turn_of(status, change.state)
    new_record.clock = clock_after(record, change, status, epoch_ms(now))
    new_record.updated_at = now
    event = EventRecord(
        game_id=record.game_id,
        version=version,
        kind=change.kind,
        seat=change.seat,
        move=change.move,
        san=change.san,
        user_id=actor.user_id,
        request_id=request_id if actor.user_id is not None else None,
        data=change.data,
        at=now,
    )
    return new_record, event


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def clock_after(
    record: GameRecord, change: Change, status: GameStatus, now_ms: int
) -> dict[str, Any] | None:
    """The stored clock after `change`: the mover charged, the next seat's clock started."""
    if record.clock is None:
        return None
    clock = Clock.from_json(record.clock)
    if change.kind == "move" and clock.running == change.seat and change.seat is not None:
        moved_at = change.moved_at_ms if change.moved_at_ms is not None else now_ms
        clock = clock.after_move(change.seat, moved_at, change.credit_ms)
    if status != "active":
        return clock.stopped(now_ms).to_json()
    turn = change.state.turn
    if clock.running != turn:
        clock = clock.start(turn, now_ms)
    return clock.to_json()


def new_clock(raw: Any, state: GameState, status: GameStatus, now_ms: int) -> dict[str, Any] | None:
    """The clock of a new game (running at once when the game starts active)."""
    if raw is None:
        return None
    try:
        clock = Clock.from_request(raw, type(state).seats)
    except BadTimeControl as error:
        raise Refused(ErrorCode.BAD_MESSAGE, str(error)) from None
    return clock.start(turn_of(status, state), now_ms).to_json()


# -- who may do what -----------------------------------------------------------------
def check_viewer(record: GameRecord, actor: Actor) -> None:
    if may_see(record, actor):
        return
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "this game is private: sign in as one of its players")
    raise Refused(ErrorCode.FORBIDDEN, "this game is private")


def check_not_over(record: GameRecord) -> None:
    if record.status in ("finished", "aborted"):
        raise Refused(ErrorCode.GAME_OVER, "the game is over")


def seat_to_move(record: GameRecord, state: GameState, actor: Actor) -> str | None:
    """The seat to move of an active game if `actor` holds it (the usual move: no list
    of the actor's seats needed), else None."""
    turn = state.turn
    if (
        turn is not None
        and record.status == "active"
        and holds(record.seats.get(turn), actor.user_id)
    ):
        return turn
    return None


def player_seat(record: GameRecord, state: GameState, actor: Actor) -> str:
    """The seat `actor` plays now in an active game: the one to move if it holds it."""
    seat = seat_to_move(record, state, actor)
    if seat is not None:
        return seat
    turn = state.turn
    mine = seats_held_by(record.seats, actor.user_id)
    if not mine:
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in and take a seat to play")
        raise Refused(ErrorCode.FORBIDDEN, "you have no seat in this game")
    check_not_over(record)
    if record.status == "waiting":
        raise Refused(ErrorCode.NOT_YOUR_TURN, "the game is waiting for players")
    return turn if turn in mine else mine[0]


def check_turn(state: GameState, seat: str) -> None:
    if state.turn != seat:
        raise Refused(ErrorCode.NOT_YOUR_TURN, f"it is {state.turn}'s turn")


# -- creating ------------------------------------------------------------------------
def check_ai_delay(options: Mapping[str, Any], default_ms: int) -> None:
    delay = options.get("ai_delay_ms", default_ms)
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_AI_DELAY_MS:
        raise Refused(
            ErrorCode.BAD_MESSAGE, f"options.ai_delay_ms must be an integer 0..{MAX_AI_DELAY_MS}"
        )


def only_ai(seats: Mapping[str, Seat]) -> bool:
    """Every seat is an AI: the game plays by itself (AI-vs-AI)."""
    return bool(seats) and all(is_ai_seat(seat) for seat in seats.values())


def check_ai_games_cap(active: Iterable[GameRecord], user_id: str, cap: int) -> None:
    """Refuses another AI-vs-AI game when `user_id` created `cap` of the `active` ones.

    `cap` 0: no cap. Over it: `rate_limited` (HTTP 429).
    """
    if cap <= 0:
        return
    running = sum(1 for game in active if game.created_by == user_id and only_ai(game.seats))
    if running >= cap:
        raise Refused(
            ErrorCode.RATE_LIMITED,
            f"you run {running} AI-vs-AI games, the most allowed: abort one or let one end",
        )


def initial_seats(
    state_class: type[GameState], requested: Mapping[str, Any], actor: Actor, has_ai: bool
) -> dict[str, Seat]:
    """The seats of a new game from `{seat: "me" or {"kind": "ai", "level"?}}`."""
    names = state_class.seats
    unknown = sorted(set(requested) - set(names))
    if unknown:
        raise Refused(ErrorCode.BAD_MESSAGE, f"unknown seat(s) {unknown}; seats are {names}")
    ai = state_class.game_type if not has_ai else None
    return {name: _requested_seat(name, requested.get(name), actor, ai) for name in names}


def _requested_seat(name: str, wanted: Any, actor: Actor, without_ai: str | None) -> Seat:
    """One seat of a new game; `without_ai` names a game type that has no AI."""
    if wanted is None:
        return None
    if wanted == "me":
        return human_seat(actor.user_id, actor.name)
    if isinstance(wanted, Mapping) and wanted.get("kind") == "ai":
        level = wanted.get("level", DEFAULT_AI_LEVEL)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
            raise Refused(ErrorCode.BAD_MESSAGE, "an AI level is an integer 1..10")
        if without_ai is not None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"{without_ai} has no AI")
        return {"kind": "ai", "level": level}
    raise Refused(
        ErrorCode.BAD_MESSAGE, f'seat {name}: use "me" or {{"kind": "ai", "level": 1..10}}'
    )


# -- rated games (PROTOCOL.md "Ratings") ---------------------------------------------------
def check_rated_player(actor: Actor) -> None:
    if is_guest(actor.claims):
        raise Refused(ErrorCode.BAD_MESSAGE, "guests play unrated games only")


def check_rated_seats(seats: Mapping[str, Seat]) -> None:
    """A rated game's seats: humans only, never one user in two (an empty seat waits for
    another user to join)."""
    if any(is_ai_seat(seat) for seat in seats.values()):
        raise Refused(ErrorCode.BAD_MESSAGE, "a rated game has no AI seat")
    users = [seat.get("user_id") for seat in seats.values() if seat is not None]
    if len(set(users)) != len(users):
        raise Refused(ErrorCode.BAD_MESSAGE, "a rated game needs two different players")


def rated_join(
    change: Change | None, record: GameRecord, actor: Actor, rating: int | None
) -> Change | None:
    """A join of a rated game (by a signed-in user who holds no other seat of it), its
    seat carrying the user's `rating` as the game starts for them (read for rated games:
    `rated` never changes)."""
    if change is None or not is_rated(record.options):
        return change
    check_rated_player(actor)
    if seats_held_by(record.seats, actor.user_id):
        raise Refused(ErrorCode.BAD_MESSAGE, "a rated game needs two different players")
    assert change.seat is not None and rating is not None
    seats = {**change.seats, change.seat: {**(change.seats[change.seat] or {}), "rating": rating}}
    return replace(change, seats=seats)


# -- the plans -----------------------------------------------------------------------
def plan_join(
    record: GameRecord, state: GameState, actor: Actor, seat: str | None
) -> Change | None:
    """Take `seat` (the first free one if None); None when the caller already sits there."""
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in to take a seat")
    check_not_over(record)
    if seat is not None and seat not in record.seats:
        raise Refused(ErrorCode.BAD_MESSAGE, f"no seat {seat!r}; seats are {list(record.seats)}")
    mine = seats_held_by(record.seats, actor.user_id)
    if mine and (seat is None or seat in mine):
        return None
    free = [name for name, value in record.seats.items() if value is None]
    chosen = seat if seat is not None else (free[0] if free else None)
    if chosen is None or record.seats[chosen] is not None:
        raise Refused(ErrorCode.SEAT_TAKEN, "that seat is taken" if seat else "no free seat")
    seats = {**record.seats, chosen: human_seat(actor.user_id, actor.name)}
    return Change(seats, state, "join", seat=chosen)


# -- invites ---------------------------------------------------------------------------
INVITE_BYTES = 18  # secrets.token_urlsafe(18): 24 characters


def new_invite(public: bool, seats: Mapping[str, Seat]) -> str | None:
    """A fresh invite code for a private game with a free seat; None otherwise."""
    if public or all(seat is not None for seat in seats.values()):
        return None
    return secrets.token_urlsafe(INVITE_BYTES)


def invite_opens(record: GameRecord, code: str | None) -> bool:
    """`code` is the invite of this private game and a seat is still free for it."""
    return (
        code is not None
        and record.invite is not None
        and not record.public
        and record.status == "waiting"
        and any(seat is None for seat in record.seats.values())
        and secrets.compare_digest(code.encode(), record.invite.encode())
    )


def invite_shown(record: GameRecord, actor: Actor) -> str | None:
    """The invite code `actor` may see: a seated player's, while it still opens the game."""
    if not seats_held_by(record.seats, actor.user_id) or not invite_opens(record, record.invite):
        return None
    return record.invite


def plan_invited_join(
    record: GameRecord, state: GameState, actor: Actor, seat: str | None, code: str | None
) -> Change | None:
    """`plan_join`, carrying the invite code in the event of a private game's join (the
    database compares it: under RLS only a join with the code seats a stranger)."""
    change = plan_join(record, state, actor, seat)
    if change is None or record.public or code is None:
        return change
    return replace(change, data={**change.data, "invite": code})


def plan_move(
    record: GameRecord,
    state: GameState,
    seat: str,
    raw: Any,
    *,
    moved_at_ms: int | None = None,
    credit_ms: int = 0,
) -> Change:
    """`seat` plays `raw` (any notation the game accepts), its frame arrived at
    `moved_at_ms` (None: when stored) with `credit_ms` of lag credited to its clock."""
    check_turn(state, seat)
    return _played(record, state, seat, raw, moved_at_ms, credit_ms)


def _played(
    record: GameRecord,
    state: GameState,
    seat: str,
    raw: Any,
    moved_at_ms: int | None,
    credit_ms: int,
) -> Change:
    """`plan_move` once `seat` is known to be the one to move."""
    try:
        played = state.play(raw)
    except IllegalMove as error:
        raise Refused(ErrorCode.ILLEGAL_MOVE, str(error)) from None
    return Change(
        record.seats,
        played.state,
        "move",
        seat=seat,
        move=played.move,
        san=played.san,
        moved_at_ms=moved_at_ms,
        credit_ms=credit_ms,
    )


def plan_player_move(
    record: GameRecord,
    state: GameState,
    actor: Actor,
    raw: Any,
    *,
    at_ms: int | None = None,
    credit_ms: int = 0,
) -> Change:
    """A player's move, whose frame arrived at `at_ms`; a fallen flag is stored first."""
    if at_ms is not None:
        timeout = plan_timeout(record, state, at_ms)
        if timeout is not None:
            late = Refused(ErrorCode.GAME_OVER, "your time ran out before this move arrived")
            return replace(timeout, then_refuse=late)
    seat = seat_to_move(record, state, actor)
    if seat is not None:  # the usual move: its turn is checked already
        return _played(record, state, seat, raw, at_ms, credit_ms)
    seat = player_seat(record, state, actor)
    return plan_move(record, state, seat, raw, moved_at_ms=at_ms, credit_ms=credit_ms)


def plan_seat_move(
    record: GameRecord, state: GameState, seat: str, raw: Any, now_ms: int
) -> Change:
    """`seat` plays `raw` at `now_ms` for the server (an AI); a fallen flag is stored first."""
    timeout = plan_timeout(record, state, now_ms)
    if timeout is not None:
        late = Refused(ErrorCode.GAME_OVER, f"{seat}'s time ran out before this move")
        return replace(timeout, then_refuse=late)
    return plan_move(record, state, seat, raw)


def plan_timeout(record: GameRecord, state: GameState, now_ms: int) -> Change | None:
    """The running seat loses on time, if its flag has fallen by `now_ms`."""
    if record.clock is None or record.status != "active":
        return None
    clock = Clock.from_json(record.clock)
    if clock.running is None or not clock.is_flagged(now_ms):
        return None
    ended = state.timed_out(clock.running)
    return Change(record.seats, ended, "timeout", clock.running, data=_result_data(ended))


def plan_claim(record: GameRecord, state: GameState, actor: Actor, gone: Collection[str]) -> Change:
    """Win an abandoned game: `gone` are the seats offline (on every process) long enough."""
    seat = player_seat(record, state, actor)
    mine = seats_held_by(record.seats, actor.user_id)
    opponents = [name for name in record.seats if name not in mine]
    if not opponents:
        raise Refused(ErrorCode.FORBIDDEN, "you hold every seat: there is nobody to claim against")
    if any(is_ai_seat(record.seats[name]) for name in opponents):
        raise Refused(ErrorCode.FORBIDDEN, "an AI opponent never leaves")
    if not all(name in gone for name in opponents):
        raise Refused(ErrorCode.FORBIDDEN, "your opponent is online or left too recently")
    ended = state.finish(seat, "abandoned")
    return Change(record.seats, ended, "claim", seat, data=_result_data(ended))


def _result_data(state: GameState) -> dict[str, Any]:
    """An event's `data` for an end decided outside the moves (replayed from it)."""
    assert state.result is not None
    return {"result": {"winner": state.result.winner, "reason": state.result.reason}}


def plan_resign(record: GameRecord, state: GameState, actor: Actor) -> Change:
    seat = player_seat(record, state, actor)
    return Change(record.seats, state.finish(state.other_seat(seat), "resignation"), "resign", seat)


def plan_abort(record: GameRecord, state: GameState, actor: Actor) -> Change:
    """The creator or a seated player may abort a game before its first move; the
    creator of an AI-vs-AI game at any time (the AI's move under way is then dropped)."""
    check_not_over(record)
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in to abort a game")
    seated = seats_held_by(record.seats, actor.user_id)
    creator = actor.user_id == record.created_by
    if not creator and not seated:
        raise Refused(ErrorCode.FORBIDDEN, "only the creator or a player may abort")
    if state.history and not (creator and only_ai(record.seats)):
        raise Refused(ErrorCode.FORBIDDEN, "a game with moves cannot be aborted: resign")
    seat = seated[0] if seated else None
    return Change(record.seats, state.finish(None, "aborted"), "abort", seat)


def plan_draw_accept(
    record: GameRecord, state: GameState, actor: Actor, offered_by: str | None
) -> Change:
    seat = player_seat(record, state, actor)
    if offered_by is None or offered_by == seat:
        raise Refused(ErrorCode.ILLEGAL_MOVE, "there is no draw offer to accept")
    return Change(record.seats, state.finish(None, "draw_agreed"), "draw", seat)


def plan_draw_offer(
    record: GameRecord, state: GameState, actor: Actor, offered_by: str | None
) -> str:
    """The seat that offers a draw (an offer stores no version)."""
    seat = player_seat(record, state, actor)
    if offered_by == state.other_seat(seat):
        raise Refused(ErrorCode.ILLEGAL_MOVE, "your opponent offered a draw: accept it")
    return seat


def plan_draw_decline(
    record: GameRecord, state: GameState, actor: Actor, offered_by: str | None
) -> str:
    """The seat that declines the standing offer (stores no version)."""
    seat = player_seat(record, state, actor)
    if offered_by is None or offered_by == seat:
        raise Refused(ErrorCode.ILLEGAL_MOVE, "there is no draw offer to decline")
    return seat


# -- replaying -----------------------------------------------------------------------
def seats_before_joins(record: GameRecord, events: list[EventRecord]) -> dict[str, Seat]:
    """The seats a game was created with: the stored ones minus those a `join` filled."""
    joined = {event.seat for event in events if event.kind == "join"}
    return {name: (None if name in joined else seat) for name, seat in record.seats.items()}


def replay_event(
    seats: dict[str, Seat], state: GameState, event: EventRecord, stored: Mapping[str, Seat]
) -> tuple[dict[str, Seat], GameState]:
    """One stored event applied to (seats, state) while rebuilding old versions; a join
    fills its seat as `stored` (the game's stored seats) has it: no seat changes after
    its join, so that is the seat the join took, its player's name included."""
    kind = event.kind
    if kind == "join" and event.seat is not None:
        return {**seats, event.seat: stored[event.seat]}, state
    if kind == "move":
        return seats, state.apply(event.move)
    if kind == "resign" and event.seat is not None:
        return seats, state.finish(state.other_seat(event.seat), "resignation")
    if kind == "draw":
        return seats, state.finish(None, "draw_agreed")
    if kind == "abort":
        return seats, state.finish(None, "aborted")
    # "finish", "timeout", "claim": an end decided outside the moves, stored with the event
    result = event.data.get("result") or {}
    return seats, state.finish(result.get("winner"), result.get("reason", "aborted"))
