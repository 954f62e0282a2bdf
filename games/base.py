"""The rules contract every game implements: pure, synchronous, no I/O.

A state is an immutable pydantic model. `apply` returns a new state and never
changes the old one, so the server can keep a cached state, try a move on it and
throw the result away if the store refuses the write.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict

# A move in normal form: chess UCI strings, grid games integers.
Move = str | int

RulesStatus = Literal["active", "finished"]

# Every end a game can reach through its rules or through the players.
RESULT_REASONS = frozenset(
    {
        "checkmate",
        "stalemate",
        "insufficient_material",
        "threefold_repetition",
        "fifty_moves",
        "four_in_a_row",
        "three_in_a_row",
        "board_full",
        "resignation",
        "draw_agreed",
        "aborted",
        "timeout",
        "timeout_vs_insufficient_material",
        "abandoned",
    }
)


# Option keys the server reads for itself; `initial` accepts and ignores them, and
# refuses every other key it does not know (so a typo is an error, not a silent default).
SERVER_OPTIONS = frozenset({"ai_delay_ms", "rated"})


class IllegalMove(ValueError):
    """A move the rules refuse; `str(error)` is a reason a person can read."""


class GameResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    winner: str | None
    reason: str


class Played(NamedTuple):
    """A move made: its normal form, the state after it, its SAN (chess only)."""

    move: Move
    state: GameState
    san: str | None


class GameState(BaseModel, ABC):
    """One position of one game, plus what is needed to judge it (the move history).

    Subclasses set `game_type` and `seats` (turn order) and implement the abstract
    methods. `history` holds every move played, in normal form, oldest first.
    """

    model_config = ConfigDict(frozen=True)

    game_type: ClassVar[str]
    seats: ClassVar[tuple[str, ...]]

    history: tuple[Move, ...] = ()
    result: GameResult | None = None

    # -- construction -----------------------------------------------------------------
    @classmethod
    @abstractmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        """The starting state; bad options raise `ValueError` with a clear message."""

    # -- reading ----------------------------------------------------------------------
    @property
    def status(self) -> RulesStatus:
        return "finished" if self.result is not None else "active"

    @property
    def turn(self) -> str | None:
        """The seat to move, or None once the game has a result."""
        if self.result is not None:
            return None
        # `_seat_at_ply` spelled out: a move asks for the turn several times.
        seats = self.seats
        return seats[(self.first_seat_index() + len(self.history)) % len(seats)]

    def first_seat_index(self) -> int:
        """Index in `seats` of the side that made the first move (chess: from the FEN)."""
        return 0

    def _seat_at_ply(self, ply: int) -> str:
        seats = self.seats
        return seats[(self.first_seat_index() + ply) % len(seats)]

    @abstractmethod
    def legal_moves(self) -> list[Move]:
        """Every legal move in normal form; empty once the game is over."""

    @abstractmethod
    def parse_move(self, raw: Any) -> Move:
        """Client notation to normal form, or `IllegalMove` with the reason."""

    @abstractmethod
    def board(self) -> dict[str, Any]:
        """The protocol's `board` object for this game."""

    def move_san(self, move: Move) -> str | None:
        """Standard notation of a legal `move` in this position (chess only)."""
        return None

    def last_move(self) -> dict[str, Any] | None:
        """The protocol's `last_move`: `{"seat", "move"}` (chess adds `"san"`)."""
        history = self.history
        if not history:
            return None
        return {"seat": self._seat_at_ply(len(history) - 1), "move": history[-1]}

    # -- changing ---------------------------------------------------------------------
    @abstractmethod
    def apply(self, move: Any) -> Self:
        """The state after `move` (any accepted notation); raises `IllegalMove`."""

    def play(self, raw: Any) -> Played:
        """`raw` (any accepted notation) parsed, applied and named in one step, as the
        server plays a move; raises `IllegalMove`. A game whose parsing is costly
        (chess) overrides it to parse once."""
        move = self.parse_move(raw)
        return Played(move, self.apply(move), self.move_san(move))

    def _play_parsed_once(
        self, raw: Any, own_apply: Callable[[Any, Any], Any], place: Callable[[Any], Self]
    ) -> Played:
        """`play` for a game whose `apply` (`own_apply`) is `place(parse_move(move))`:
        the move parsed once, not again in `apply`; unless a subclass has an `apply` of
        its own, which then sees every move as before."""
        if type(self).apply is not own_apply:
            return GameState.play(self, raw)
        move = self.parse_move(raw)
        return Played(move, place(move), None)

    def finish(self, winner: str | None, reason: str) -> Self:
        """End the game for a reason outside the rules (resignation, draw, abort)."""
        if self.result is not None:
            raise IllegalMove("the game is already over")
        if reason not in RESULT_REASONS:
            raise ValueError(f"unknown result reason {reason!r}")
        if winner is not None and winner not in self.seats:
            raise ValueError(f"unknown seat {winner!r}")
        return self.evolve(result=GameResult(winner=winner, reason=reason))

    def evolve(self, **changes: Any) -> Self:
        """This state with `changes` set, unvalidated: for states the rules built (a
        move's new cells, its history and result), which need no checking. What
        `model_copy(update=...)` makes, in a third of its time (every move makes one)."""
        new = object.__new__(type(self))
        set_slot = object.__setattr__
        set_slot(new, "__dict__", {**self.__dict__, **changes})
        set_slot(new, "__pydantic_fields_set__", self.__pydantic_fields_set__ | changes.keys())
        # Copied, as model_copy does (None for a model without extras or private state).
        extra, private = self.__pydantic_extra__, self.__pydantic_private__
        set_slot(new, "__pydantic_extra__", None if extra is None else {**extra})
        set_slot(new, "__pydantic_private__", None if private is None else {**private})
        return new

    # -- (de)serialisation ------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data; `from_json(to_json())` gives an equal state."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(data)

    # -- shared helpers for subclasses ------------------------------------------------
    @staticmethod
    def _check_option_keys(options: Mapping[str, Any] | None, known: set[str]) -> dict[str, Any]:
        """The rules' own options; unknown keys raise `ValueError`."""
        rules_options = {k: v for k, v in (options or {}).items() if k not in SERVER_OPTIONS}
        unknown = sorted(set(rules_options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; this game takes {sorted(known)}")
        return rules_options

    def _require_active(self) -> None:
        if self.result is not None:
            raise IllegalMove("the game is already over")

    def other_seat(self, seat: str) -> str:
        index = self.seats.index(seat)
        return self.seats[(index + 1) % len(self.seats)]

    def can_win(self, seat: str) -> bool:
        """Whether `seat` could still win at all (chess: has mating material)."""
        return True

    def timed_out(self, seat: str) -> Self:
        """The state after `seat` ran out of time: the other seat wins if it can."""
        winner = self.other_seat(seat)
        if self.can_win(winner):
            return self.finish(winner, "timeout")
        return self.finish(None, "timeout_vs_insufficient_material")


# A numeric string move: ASCII digits only (not "²" or "٣", which `str.isdigit` takes),
# an optional minus, a few digits at most (so `int` never meets a 5,000-digit number).
_NUMERIC_MOVE = re.compile(r"-?[0-9]{1,6}")


def parse_int_move(raw: Any, *, what: str, upper: int) -> int:
    """Grid notation: an int (or numeric string) in 0..upper-1, else `IllegalMove`."""
    if isinstance(raw, bool):
        raise IllegalMove(f"a {what} must be an integer, not a boolean")
    if isinstance(raw, str):
        text = raw.strip()
        if _NUMERIC_MOVE.fullmatch(text) is None:
            raise IllegalMove(f"a {what} must be an integer, got {raw[:20]!r}")
        raw = int(text)
    if not isinstance(raw, int):
        raise IllegalMove(f"a {what} must be an integer, got {type(raw).__name__}")
    if not 0 <= raw < upper:
        raise IllegalMove(f"{what} {raw} is out of range 0..{upper - 1}")
    return raw
