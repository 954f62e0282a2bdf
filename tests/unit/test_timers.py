"""timers.py: the loop's wheel fires each timer once, never early and at most a tick
late, in time order; what is discarded does not fire; one failure stops no other."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import weakref

import pytest

from socket_server.timers import TICK, TimerWheel, timer_wheel

# A loop timer runs within a few ms of its time; a busy test machine adds more.
SLACK = 0.05


class Recorder:
    def __init__(self, loop: asyncio.AbstractEventLoop, fired: list[tuple[Recorder, float]]):
        self.loop = loop
        self.fired = fired

    def on_timer(self) -> None:
        self.fired.append((self, self.loop.time()))


async def test_every_timer_fires_once_not_early_and_at_most_a_tick_late() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    fired: list[tuple[Recorder, float]] = []
    start = loop.time()
    due = {Recorder(loop, fired): start + random.uniform(0.0, 0.6) for _ in range(300)}
    for item, when in due.items():
        wheel.add(when, item)
    await asyncio.sleep(0.6 + TICK + SLACK)
    assert sorted(id(item) for item, _ in fired) == sorted(id(item) for item in due)
    for item, at in fired:
        assert due[item] <= at + 0.003 < due[item] + TICK + SLACK
    assert [at for _, at in fired] == sorted(at for _, at in fired)  # in time order
    assert len(wheel) == 0


async def test_a_discarded_timer_does_not_fire_and_a_timer_set_while_firing_waits() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    fired: list[tuple[Recorder, float]] = []
    kept, dropped = Recorder(loop, fired), Recorder(loop, fired)
    wheel.add(loop.time() + 0.1, kept)
    wheel.discard(wheel.add(loop.time() + 0.1, dropped), dropped)

    class Again:
        """Sets itself again for a time already past, as an early-fired idle check may."""

        times: list[float] = []

        def on_timer(self) -> None:
            self.times.append(loop.time())
            if len(self.times) < 3:
                wheel.add(loop.time() - 1.0, self)

    again = Again()
    wheel.add(loop.time(), again)
    await asyncio.sleep(0.2 + 2 * TICK + SLACK)
    assert [item for item, _ in fired] == [kept]
    assert len(again.times) == 3  # not a busy loop: each later time a tick on
    assert all(b - a >= TICK * 0.5 for a, b in zip(again.times, again.times[1:], strict=False))


async def test_a_failing_timer_is_logged_and_the_others_still_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    fired: list[tuple[Recorder, float]] = []

    class Failing:
        def on_timer(self) -> None:
            raise RuntimeError("boom")

    when = loop.time() + 0.05
    wheel.add(when, Failing())
    after = Recorder(loop, fired)
    wheel.add(when, after)
    with caplog.at_level(logging.ERROR, logger="gamesocket.ws"):
        await asyncio.sleep(0.05 + TICK + SLACK)
    assert [item for item, _ in fired] == [after]
    assert "a socket's timer failed" in caplog.text


def test_each_loop_has_its_own_wheel_which_does_not_keep_the_loop() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert timer_wheel(first) is timer_wheel(first)
        assert timer_wheel(first) is not timer_wheel(second)
    finally:
        first.close()
        second.close()
    gone = weakref.ref(first)
    kept = timer_wheel(first)
    del first
    gc.collect()
    assert gone() is None  # neither the map of wheels nor the wheel keeps it
    kept.add(0.0, Recorder(second, []))  # its loop is gone: nothing is armed, nothing raises
