"""Coarse timers for many sockets on one loop timer (`TimerWheel`).

Why: every socket keeps two timers for its lifetime, its idle limit and its keep-alive
ping, and a `call_at` is a handle, its libuv timer and a bound method: about half a KiB
a timer (tracemalloc), a KiB of every idle socket's 15. Here a timer is an entry in the
set of its tick (`TICK` seconds, rounded up), and one loop timer waits for the earliest
tick. A timer fires up to a tick late, never early; one set again while its tick fires
goes to a later tick.

`timer_wheel(loop)` is the loop's wheel; what it holds is called by `on_timer()`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from typing import Protocol

log = logging.getLogger("gamesocket.ws")

TICK = 0.1  # seconds
# A loop timer may run a little before its time (the clock's resolution).
_EARLY = 0.002


class Timed(Protocol):
    def on_timer(self) -> None: ...


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The wheel is kept per loop, in a map weakly keyed by it: a strong reference
        # here would keep every test's closed loop alive.
        self._loop = weakref.ref(loop)
        self._ticks: dict[int, set[Timed]] = {}
        self._due: list[int] = []  # the ticks in `_ticks`, a heap
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None
        self._fired_through = 0  # the last tick fired

    def __len__(self) -> int:
        """Timers set (an emptied tick waits for its time: it fires nothing)."""
        return sum(len(items) for items in self._ticks.values())

    def add(self, when: float, item: Timed) -> int:
        """Call `item.on_timer()` at loop time `when` (up to a tick later); the tick to
        `discard` it from."""
        tick = max(math.ceil(when / TICK), self._fired_through + 1)
        items = self._ticks.get(tick)
        if items is None:
            items = self._ticks[tick] = set()
            heapq.heappush(self._due, tick)
        items.add(item)
        if self._armed_for is None or tick < self._armed_for:
            self._arm(tick)
        return tick

    def discard(self, tick: int, item: Timed) -> None:
        items = self._ticks.get(tick)
        if items is not None:
            items.discard(item)

    def _arm(self, tick: int) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = tick
        self._handle = loop.call_at(tick * TICK, self._fire)

    def _fire(self) -> None:
        loop = self._loop()
        self._handle = self._armed_for = None
        if loop is None:
            return
        now = loop.time() + _EARLY
        due = self._due
        while due and due[0] * TICK <= now:
            tick = heapq.heappop(due)
            self._fired_through = tick
            for item in self._ticks.pop(tick):
                try:
                    item.on_timer()
                except Exception:  # one socket's failure stops no other's timer
                    log.exception("a socket's timer failed")
        if due:
            self._arm(due[0])


_WHEELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerWheel] = (
    weakref.WeakKeyDictionary()
)


def timer_wheel(loop: asyncio.AbstractEventLoop) -> TimerWheel:
    wheel = _WHEELS.get(loop)
    if wheel is None:
        wheel = _WHEELS[loop] = TimerWheel(loop)
    return wheel
