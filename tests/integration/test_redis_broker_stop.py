"""RedisBroker.stop() ends its tasks even when one of them loses a cancel.

On Python 3.11 asyncio.wait_for drops a cancel that arrives once the awaitable it wraps
has finished (CPython gh-86296). redis-py sends every command through wait_for, so a
heartbeat cancelled in the middle of a send carried on, and stop() waited for it
forever (test_every_node_gets_every_message_once_and_in_order hung in its teardown).
Here a message handler hits the same race on purpose, inside the reader task.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from socket_server.fanout.redis import RedisBroker
from tests.conftest import require
from tests.integration.test_redis_broker import HEARTBEAT, REDIS_URL, _redis_reachable

MakeBroker = Callable[[str], Awaitable[RedisBroker]]


@pytest.fixture
async def make_broker() -> AsyncIterator[MakeBroker]:
    """Brokers under a key prefix of their own; stopped, and the keys deleted, after."""
    require(_redis_reachable(), f"Redis at {REDIS_URL}")
    prefix = f"gstest-stop-{uuid.uuid4().hex[:12]}"
    brokers: list[RedisBroker] = []

    async def make(node_id: str) -> RedisBroker:
        broker = RedisBroker(REDIS_URL, prefix=prefix, node_id=node_id, **HEARTBEAT)
        await broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        await broker.stop()
    admin = Redis.from_url(REDIS_URL)
    keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


def tasks_of(node: str) -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().endswith(f"-{node}")]


async def test_stop_ends_a_reader_whose_handler_lost_the_cancel(make_broker: MakeBroker) -> None:
    publisher, node = await make_broker("a"), await make_broker("b")
    inside = asyncio.Event()
    handled: list[str] = []

    async def finished() -> None:
        return None

    async def handler(game_id: str, data: bytes) -> None:
        inside.set()
        # The cancel of stop() reaches the reader here, while wait_for's inner task
        # runs to its end: on 3.11 wait_for returns its result and the cancel is gone.
        await asyncio.wait_for(finished(), 5)
        handled.append(game_id)

    await node.subscribe("g", handler)
    await publisher.publish("g", b"1")
    await asyncio.wait_for(inside.wait(), 10)
    assert [task.get_name() for task in tasks_of("b")] != []

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(20):  # it used to wait for the reader forever
        await node.stop()
    assert loop.time() - started < 3

    assert tasks_of("b") == []
    assert node._reader is None and node._heartbeat is None
    if sys.version_info < (3, 12):
        assert handled == ["g"]  # the handler did swallow the first cancel


async def test_stop_returns_even_if_a_task_never_ends(make_broker: MakeBroker) -> None:
    """A handler that ignores every cancel delays stop() by a bounded time, no more."""
    node = await make_broker("c")
    publisher = await make_broker("d")
    inside = asyncio.Event()
    release = asyncio.Event()

    async def stubborn(game_id: str, data: bytes) -> None:
        inside.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores cancellation altogether

    await node.subscribe("g", stubborn)
    await publisher.publish("g", b"1")
    await asyncio.wait_for(inside.wait(), 10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(20):
        await node.stop()
    assert 4.0 < loop.time() - started < 15.0  # the 5 s bound, not forever
    assert [task.get_name() for task in tasks_of("c")] == ["redis-reader-c"]
    # Let the reader that was left behind finish its handler, then end it.
    release.set()
    reader = tasks_of("c")[0]
    async with asyncio.timeout(5):
        while not reader.done():
            reader.cancel()
            await asyncio.wait({reader}, timeout=0.05)
