"""Clocks, pure: time controls, what a move costs, when a flag falls. No I/O.

Three kinds, from PROTOCOL.md's "Clocks": Fischer (`initial_ms` + `increment_ms`
after each move), simple delay (`initial_ms`; each turn the first `delay_ms` are free)
and per-move (`per_move_ms` for each move, correspondence style). Times are Unix epoch
milliseconds on the server. Only the seat to move (`running`) loses time; its clock
started at `since_ms`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MAX_MS = 30 * 24 * 3600 * 1000  # every figure: 0 .. 30 days
MIN_BUDGET_MS = 1000  # initial_ms or per_move_ms
FIELDS = ("initial_ms", "increment_ms", "delay_ms", "per_move_ms")


class BadTimeControl(ValueError):
    """A `clock` outside PROTOCOL.md's bounds (answered with `bad_message`)."""


@dataclass(frozen=True)
class Clock:
    """A game's clock as stored (`GameRecord.clock`)."""

    initial_ms: int = 0
    increment_ms: int = 0
    delay_ms: int = 0
    per_move_ms: int = 0
    remaining_ms: dict[str, int] = field(default_factory=dict)
    running: str | None = None
    since_ms: int = 0  # when `running`'s clock started

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_request(cls, raw: Any, seats: tuple[str, ...]) -> Clock:
        """The clock of a new game from the create request's `clock` object."""
        if not isinstance(raw, Mapping):
            raise BadTimeControl("clock must be an object")
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise BadTimeControl(f"unknown clock field(s) {unknown}; fields are {list(FIELDS)}")
        values = {name: _bounded(name, raw.get(name, 0)) for name in FIELDS}
        _check_kind(values)
        start = values["per_move_ms"] or values["initial_ms"]
        return cls(
            initial_ms=values["initial_ms"],
            increment_ms=values["increment_ms"],
            delay_ms=values["delay_ms"],
            per_move_ms=values["per_move_ms"],
            remaining_ms=dict.fromkeys(seats, start),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Clock:
        return cls(**{**data, "remaining_ms": dict(data.get("remaining_ms", {}))})

    def to_json(self) -> dict[str, Any]:
        return {
            "initial_ms": self.initial_ms,
            "increment_ms": self.increment_ms,
            "delay_ms": self.delay_ms,
            "per_move_ms": self.per_move_ms,
            "remaining_ms": dict(self.remaining_ms),
            "running": self.running,
            "since_ms": self.since_ms,
        }

    # -- reading --------------------------------------------------------------------
    def used_ms(self, now_ms: int) -> int:
        """Time the running seat has spent on this turn, as the clock counts it."""
        elapsed = max(0, now_ms - self.since_ms)
        return max(0, elapsed - self.delay_ms)

    def remaining_at(self, now_ms: int) -> dict[str, int]:
        """Every seat's time at `now_ms` (never below zero)."""
        remaining = dict(self.remaining_ms)
        if self.running is not None:
            left = remaining[self.running] - self.used_ms(now_ms)
            remaining[self.running] = max(0, left)
        return remaining

    def flag_at_ms(self) -> int | None:
        """When the running seat's time runs out, if a clock runs."""
        if self.running is None:
            return None
        return self.since_ms + self.delay_ms + self.remaining_ms[self.running]

    def is_flagged(self, now_ms: int) -> bool:
        flag = self.flag_at_ms()
        return flag is not None and now_ms >= flag

    def view(self, now_ms: int) -> dict[str, Any]:
        """The snapshot's `clock` object, exact at `server_time_ms`."""
        return {
            "initial_ms": self.initial_ms,
            "increment_ms": self.increment_ms,
            "delay_ms": self.delay_ms,
            "per_move_ms": self.per_move_ms,
            "remaining_ms": self.remaining_at(now_ms),
            "running": self.running,
            "server_time_ms": now_ms,
        }

    # -- changing -------------------------------------------------------------------
    def start(self, seat: str | None, now_ms: int) -> Clock:
        """`seat`'s clock runs from `now_ms` (None: every clock stands)."""
        remaining = dict(self.remaining_ms)
        if seat is not None and self.per_move_ms:
            remaining[seat] = self.per_move_ms  # a fresh allowance for each move
        return replace(self, remaining_ms=remaining, running=seat, since_ms=now_ms)

    def after_move(self, mover: str, moved_at_ms: int, credit_ms: int) -> Clock:
        """The clock once `mover` moved at `moved_at_ms` (crediting `credit_ms` of lag)."""
        used = max(0, self.used_ms(moved_at_ms) - credit_ms)
        remaining = dict(self.remaining_ms)
        remaining[mover] = max(0, remaining[mover] - used) + self.increment_ms
        return replace(self, remaining_ms=remaining, running=None)

    def stopped(self, now_ms: int) -> Clock:
        """Every clock stands, the running one charged up to `now_ms` (game over)."""
        return replace(self, remaining_ms=self.remaining_at(now_ms), running=None)


# What an AI keeps back from its clock for the work around a search (the pool or the
# engine, storing and publishing the move).
AI_OVERHEAD_MS = 200
AI_MIN_THINK_MS = 50


def ai_think_ms(clock: Clock, seat: str, now_ms: int) -> int:
    """How long an AI on this clock may spend on its next move, pacing included.

    A share of what is left (as if 25 more moves were to come) plus most of the
    increment or delay (on a per-move clock, 40% of the allowance), less the overhead;
    never more than 40% of what is left, even when that is below AI_MIN_THINK_MS, and
    never less than 1 ms, so that an AI does not lose on time in ordinary play.
    """
    left = clock.remaining_at(now_ms)[seat]
    cap = left * 2 // 5
    if clock.per_move_ms:
        budget = cap
    else:
        budget = left // 25 + (clock.increment_ms + clock.delay_ms) * 4 // 5
    wanted = max(AI_MIN_THINK_MS, budget - AI_OVERHEAD_MS)
    return max(1, min(wanted, cap))


def _bounded(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
        raise BadTimeControl(f"clock.{name} must be an integer 0..{MAX_MS}")
    return value


def _check_kind(values: Mapping[str, int]) -> None:
    """One kind of control: initial (+ increment or delay), or per-move alone."""
    if values["per_move_ms"]:
        if values["initial_ms"] or values["increment_ms"] or values["delay_ms"]:
            raise BadTimeControl("clock.per_move_ms goes alone, without initial/increment/delay")
        if values["per_move_ms"] < MIN_BUDGET_MS:
            raise BadTimeControl(f"clock.per_move_ms must be at least {MIN_BUDGET_MS}")
        return
    if values["initial_ms"] < MIN_BUDGET_MS:
        raise BadTimeControl(f"clock.initial_ms (or per_move_ms) must be at least {MIN_BUDGET_MS}")
    if values["increment_ms"] and values["delay_ms"]:
        raise BadTimeControl("clock: choose increment_ms or delay_ms, not both")
