"""The token bucket of the per-socket and REST rate limits, judged on the limits module's clock."""

from __future__ import annotations

import time

import pytest

from socket_server import limits
from socket_server.limits import TokenBucket


class Clock:
    """Stands in for the `time` module inside `socket_server.limits`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limits, "time", fake)
    return fake


def takes(bucket: TokenBucket, count: int) -> list[bool]:
    return [bucket.take() for _ in range(count)]


def test_a_full_bucket_allows_its_burst_then_refuses(clock: Clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=5)
    assert takes(bucket, 5) == [True] * 5
    assert takes(bucket, 3) == [False] * 3


def test_tokens_come_back_at_the_rate(clock: Clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert takes(bucket, 4) == [True, True, True, False]
    clock.advance(0.4)  # 0.8 of a token
    assert bucket.take() is False
    clock.advance(0.1)  # 1.0 in all: a refusal spends nothing
    assert bucket.take() is True
    assert bucket.take() is False
    clock.advance(1.0)  # two more
    assert takes(bucket, 3) == [True, True, False]


def test_refill_is_capped_at_the_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=10.0, burst=4)
    assert takes(bucket, 4) == [True] * 4
    clock.advance(3600)
    assert takes(bucket, 6) == [True] * 4 + [False] * 2


def test_the_sustained_rate_is_the_rate(clock: Clock) -> None:
    bucket = TokenBucket(rate=5.0, burst=10)
    allowed = 0
    for _ in range(1000):  # 10 s of a client sending every 10 ms
        allowed += bucket.take()
        clock.advance(0.01)
    assert allowed == pytest.approx(10 + 5 * 10, abs=1)


def test_a_bucket_refills_on_the_real_clock() -> None:
    bucket = TokenBucket(rate=20.0, burst=1)
    assert takes(bucket, 2) == [True, False]
    time.sleep(0.1)  # two tokens' worth, capped at one
    assert takes(bucket, 2) == [True, False]
