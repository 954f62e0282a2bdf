"""The pure clocks of `socket_server.timecontrol`: bounds, arithmetic, flags, views.

Times are plain integers (epoch milliseconds); no server, no event loop.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socket_server.timecontrol import (
    MAX_MS,
    BadTimeControl,
    Clock,
    ai_think_ms,
)

SEATS = ("white", "black")
T0 = 1_700_000_000_000  # an epoch millisecond


def started(raw: dict[str, Any], seat: str = "white", at: int = T0) -> Clock:
    return Clock.from_request(raw, SEATS).start(seat, at)


# -- bounds ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "60000",
        {},  # no budget at all
        {"initial_ms": 999},
        {"per_move_ms": 999},
        {"initial_ms": 0, "increment_ms": 5000},
        {"initial_ms": MAX_MS + 1},
        {"per_move_ms": MAX_MS + 1},
        {"initial_ms": 60_000, "increment_ms": MAX_MS + 1},
        {"initial_ms": 60_000, "delay_ms": MAX_MS + 1},
        {"initial_ms": 60_000, "increment_ms": -1},
        {"initial_ms": -1000},
        {"initial_ms": 60_000.0},
        {"initial_ms": "60000"},
        {"initial_ms": None},
        {"initial_ms": True},
        {"per_move_ms": True},
        {"initial_ms": 60_000, "increment_ms": False},
        {"initial_ms": 60_000, "increment": 1000},  # unknown field
        {"initial_ms": 60_000, "running": "white"},  # a stored field, not a request one
        {"initial_ms": 60_000, "increment_ms": 1000, "delay_ms": 1000},
        {"per_move_ms": 60_000, "initial_ms": 60_000},
        {"per_move_ms": 60_000, "increment_ms": 1000},
        {"per_move_ms": 60_000, "delay_ms": 1000},
    ],
)
def test_out_of_bounds_clocks_are_refused(raw: Any) -> None:
    with pytest.raises(BadTimeControl):
        Clock.from_request(raw, SEATS)


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        ({"initial_ms": 1000}, 1000),
        ({"initial_ms": MAX_MS, "increment_ms": MAX_MS}, MAX_MS),
        ({"initial_ms": 60_000, "delay_ms": MAX_MS}, 60_000),
        ({"initial_ms": 60_000, "increment_ms": 0, "delay_ms": 0}, 60_000),
        ({"per_move_ms": 1000}, 1000),
        ({"per_move_ms": MAX_MS, "initial_ms": 0}, MAX_MS),
    ],
)
def test_clocks_at_the_bounds_are_accepted(raw: dict[str, Any], start: int) -> None:
    clock = Clock.from_request(raw, SEATS)
    assert clock.remaining_ms == {"white": start, "black": start}
    assert clock.running is None
    for name in ("initial_ms", "increment_ms", "delay_ms", "per_move_ms"):
        assert getattr(clock, name) == raw.get(name, 0)


def test_stored_form_round_trips() -> None:
    clock = started({"initial_ms": 5000, "increment_ms": 200}).after_move("white", T0 + 700, 0)
    clock = clock.start("black", T0 + 710)
    again = Clock.from_json(clock.to_json())
    assert again == clock
    assert again.remaining_ms is not clock.remaining_ms  # a copy, not shared


# -- Fischer -----------------------------------------------------------------------
def test_fischer_charges_the_mover_and_adds_the_increment() -> None:
    clock = started({"initial_ms": 10_000, "increment_ms": 2000})
    moved = clock.after_move("white", T0 + 3000, 0)
    assert moved.remaining_ms == {"white": 10_000 - 3000 + 2000, "black": 10_000}
    assert moved.running is None
    black = moved.start("black", T0 + 3005)
    assert black.flag_at_ms() == T0 + 3005 + 10_000
    assert black.remaining_at(T0 + 4005) == {"white": 9000, "black": 9000}


def test_lag_credit_is_taken_off_the_time_used_but_never_below_zero() -> None:
    clock = started({"initial_ms": 10_000})
    assert clock.after_move("white", T0 + 3000, 100).remaining_ms["white"] == 7100
    # A move faster than the credit costs nothing, and gains nothing either.
    assert clock.after_move("white", T0 + 40, 100).remaining_ms["white"] == 10_000


def test_a_move_whose_frame_arrived_before_the_clock_started_costs_nothing() -> None:
    clock = started({"initial_ms": 10_000, "increment_ms": 500})
    assert clock.after_move("white", T0 - 50, 0).remaining_ms["white"] == 10_500


def test_a_move_after_the_flag_leaves_only_the_increment() -> None:
    clock = started({"initial_ms": 1000, "increment_ms": 300})
    assert clock.after_move("white", T0 + 5000, 100).remaining_ms["white"] == 300


# -- delay -------------------------------------------------------------------------
def test_delay_is_not_counted_against_the_seat() -> None:
    clock = started({"initial_ms": 10_000, "delay_ms": 2000})
    assert clock.after_move("white", T0 + 1500, 0).remaining_ms["white"] == 10_000
    assert clock.after_move("white", T0 + 2000, 0).remaining_ms["white"] == 10_000
    assert clock.after_move("white", T0 + 3500, 0).remaining_ms["white"] == 8500
    # The credit applies after the delay, and no increment is added.
    assert clock.after_move("white", T0 + 3500, 100).remaining_ms["white"] == 8600


def test_remaining_stands_through_the_delay_then_goes_down() -> None:
    clock = started({"initial_ms": 10_000, "delay_ms": 2000})
    assert clock.remaining_at(T0 + 1999)["white"] == 10_000
    assert clock.remaining_at(T0 + 2500)["white"] == 9500
    assert clock.flag_at_ms() == T0 + 12_000
    assert not clock.is_flagged(T0 + 11_999)
    assert clock.is_flagged(T0 + 12_000)


def test_each_turn_has_its_own_delay() -> None:
    clock = started({"initial_ms": 10_000, "delay_ms": 1000})
    clock = clock.after_move("white", T0 + 4000, 0).start("black", T0 + 4000)
    clock = clock.after_move("black", T0 + 4500, 0).start("white", T0 + 4500)
    assert clock.remaining_ms == {"white": 7000, "black": 10_000}
    assert clock.flag_at_ms() == T0 + 4500 + 1000 + 7000


# -- per move ----------------------------------------------------------------------
def test_per_move_gives_a_fresh_allowance_on_each_start() -> None:
    clock = started({"per_move_ms": 5000})
    assert clock.flag_at_ms() == T0 + 5000
    moved = clock.after_move("white", T0 + 4900, 0)
    assert moved.remaining_ms["white"] == 100
    black = moved.start("black", T0 + 4900)
    assert black.flag_at_ms() == T0 + 4900 + 5000
    again = black.after_move("black", T0 + 6000, 0).start("white", T0 + 6000)
    assert again.remaining_ms == {"white": 5000, "black": 3900}
    assert again.flag_at_ms() == T0 + 11_000


def test_starting_nobody_stops_every_clock() -> None:
    clock = started({"per_move_ms": 5000}).start(None, T0 + 100)
    assert clock.running is None and clock.flag_at_ms() is None
    assert clock.remaining_at(T0 + 10**9) == {"white": 5000, "black": 5000}
    assert not clock.is_flagged(T0 + 10**9)


# -- reading -----------------------------------------------------------------------
@given(
    initial=st.integers(1000, MAX_MS),
    delay=st.integers(0, 10_000),
    elapsed=st.integers(-(10**6), 10**10),
)
def test_remaining_is_never_negative_and_never_grows(
    initial: int, delay: int, elapsed: int
) -> None:
    clock = started({"initial_ms": initial, "delay_ms": delay})
    left = clock.remaining_at(T0 + elapsed)
    assert 0 <= left["white"] <= initial
    assert left["black"] == initial
    assert (left["white"] == 0) == clock.is_flagged(T0 + elapsed)


def test_flag_time_per_kind() -> None:
    assert started({"initial_ms": 3000, "increment_ms": 700}).flag_at_ms() == T0 + 3000
    assert started({"initial_ms": 3000, "delay_ms": 700}).flag_at_ms() == T0 + 3700
    assert started({"per_move_ms": 3000}).flag_at_ms() == T0 + 3000
    assert Clock.from_request({"initial_ms": 3000}, SEATS).flag_at_ms() is None


def test_stopped_charges_the_running_seat_up_to_the_end() -> None:
    clock = started({"initial_ms": 3000}).stopped(T0 + 1200)
    assert clock.running is None and clock.remaining_ms == {"white": 1800, "black": 3000}
    assert started({"initial_ms": 3000}).stopped(T0 + 9999).remaining_ms["white"] == 0


def test_view_is_exact_at_server_time() -> None:
    clock = started({"initial_ms": 60_000, "increment_ms": 1000}, seat="black")
    assert clock.view(T0 + 1234) == {
        "initial_ms": 60_000,
        "increment_ms": 1000,
        "delay_ms": 0,
        "per_move_ms": 0,
        "remaining_ms": {"white": 60_000, "black": 60_000 - 1234},
        "running": "black",
        "server_time_ms": T0 + 1234,
    }
    stopped = clock.start(None, T0 + 5000).view(T0 + 9000)
    assert stopped["running"] is None
    assert stopped["remaining_ms"] == {"white": 60_000, "black": 60_000}


# -- the AI's time -----------------------------------------------------------------
@given(
    raw=st.one_of(
        st.builds(
            lambda i, inc: {"initial_ms": i, "increment_ms": inc},
            st.integers(1000, 10**8),
            st.integers(0, 10**6),
        ),
        st.builds(
            lambda i, d: {"initial_ms": i, "delay_ms": d},
            st.integers(1000, 10**8),
            st.integers(0, 10**6),
        ),
        st.builds(lambda p: {"per_move_ms": p}, st.integers(1000, 10**8)),
    ),
    elapsed=st.integers(0, 10**8),
)
def test_ai_never_plans_more_than_two_fifths_of_what_is_left(
    raw: dict[str, int], elapsed: int
) -> None:
    clock = started(raw)
    left = clock.remaining_at(T0 + elapsed)["white"]
    think = ai_think_ms(clock, "white", T0 + elapsed)
    assert think >= 1
    assert think <= max(1, left * 2 // 5)


def test_ai_spends_a_share_of_a_long_clock_and_most_of_its_increment() -> None:
    clock = started({"initial_ms": 250_000, "increment_ms": 5000})
    assert ai_think_ms(clock, "white", T0) == 250_000 // 25 + 4000 - 200
    # An AI that is not to move is planned on its full time.
    assert ai_think_ms(clock, "black", T0 + 100_000) == 250_000 // 25 + 4000 - 200


def test_ai_on_a_short_clock_still_gets_time_to_move() -> None:
    clock = started({"initial_ms": 3000})
    think = ai_think_ms(clock, "white", T0)
    assert 0 < think <= 3000 * 2 // 5
    assert ai_think_ms(clock, "white", T0 + 2990) == 4  # 10 ms left: 40% of it
