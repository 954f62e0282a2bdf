"""The pure parts of the abuse limits: addresses, socket caps, keyed buckets, the AI rules.

The limits against real servers are in tests/system/test_hardening_limits.py.
"""

from __future__ import annotations

import pytest

from games import TicTacToeState
from socket_server import limits
from socket_server.changes import Refused, check_ai_games_cap, only_ai, plan_abort
from socket_server.limits import KeyedBuckets, SocketCaps, client_key
from socket_server.protocol import ErrorCode
from socket_server.store.base import Actor, GameRecord, Seat

AI: Seat = {"kind": "ai", "level": 3}
ALICE = Actor(user_id="alice")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limits, "time", fake)
    return fake


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_an_address_counts_by_itself_or_its_ipv6_slash_64(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_socket_caps_count_per_address_and_in_all() -> None:
    caps = SocketCaps(total=3, per_address=2)
    assert caps.admit("a") is None and caps.admit("a") is None
    assert caps.admit("a") == "too many sockets from your address: close some first"
    assert caps.admit("b") is None
    assert caps.admit("c") == "the server is full: try again later"
    assert caps.open == 3 and caps.held_by("a") == 2
    caps.release("a")
    assert caps.admit("c") is None and caps.held_by("a") == 1
    unlimited = SocketCaps(total=0, per_address=0)
    assert all(unlimited.admit("a") is None for _ in range(1000))


def test_keyed_buckets_refuse_with_the_wait_and_keep_keys_apart(clock: Clock) -> None:
    buckets = KeyedBuckets(per_period=30, period=3600.0)  # one back every 120 s
    assert all(buckets.take("x") is None for _ in range(30))
    assert buckets.take("x") == pytest.approx(120.0)
    assert buckets.take("y") is None
    clock.now += 60
    assert buckets.take("x") == pytest.approx(60.0)
    clock.now += 60
    assert buckets.take("x") is None


def test_keyed_buckets_forget_keys_that_are_full_again(clock: Clock) -> None:
    buckets = KeyedBuckets(per_period=10, period=60.0)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 30
    buckets.take("c")
    clock.now += 31  # a and b idle for a whole period: full again, so forgotten
    buckets.take("d")
    assert len(buckets) == 2


def ai_game(moves: int, created_by: str = "alice") -> tuple[GameRecord, TicTacToeState]:
    state = TicTacToeState.initial()
    for cell in range(moves):
        state = state.apply(cell)
    record = GameRecord(
        game_id="00000000-0000-4000-8000-00000000000b",
        game_type="tictactoe",
        status="active",
        seats={"x": dict(AI), "o": dict(AI)},
        state=state.to_json(),
        version=moves,
        created_by=created_by,
        turn=state.turn,
    )
    return record, state


def test_the_creator_aborts_an_ai_game_after_moves_and_nobody_else_does() -> None:
    record, state = ai_game(3)
    change = plan_abort(record, state, ALICE)
    assert change.kind == "abort" and change.seat is None
    assert change.state.result is not None
    assert (change.state.result.winner, change.state.result.reason) == (None, "aborted")
    with pytest.raises(Refused) as refused:
        plan_abort(record, state, Actor(user_id="mallory"))
    assert refused.value.code == ErrorCode.FORBIDDEN


def test_a_game_with_a_human_seat_is_not_aborted_after_its_first_move() -> None:
    record, state = ai_game(1)
    record.seats["o"] = {"kind": "human", "user_id": "alice"}
    with pytest.raises(Refused) as refused:
        plan_abort(record, state, ALICE)
    assert refused.value.code == ErrorCode.FORBIDDEN
    assert not only_ai(record.seats) and not only_ai({})


def test_the_ai_games_cap_counts_the_users_own_ai_vs_ai_games() -> None:
    mine = [ai_game(0)[0] for _ in range(2)]
    theirs = ai_game(0, created_by="bob")[0]
    half, _ = ai_game(0)
    half.seats["o"] = {"kind": "human", "user_id": "alice"}
    check_ai_games_cap([*mine, theirs, half], "alice", 3)  # two of hers count
    with pytest.raises(Refused) as refused:
        check_ai_games_cap([*mine, ai_game(0)[0]], "alice", 3)
    assert refused.value.code == ErrorCode.RATE_LIMITED
    check_ai_games_cap([*mine, ai_game(0)[0]], "alice", 0)  # 0: no cap
