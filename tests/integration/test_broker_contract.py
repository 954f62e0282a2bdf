"""One behavioural suite for every `Broker`; add a backend by adding to BACKENDS.

A backend is an async context manager yielding a factory of started broker handles
that share one backend, each standing for one server process ("node"): handles on
one `MemoryBackplane`, or `RedisBroker`s on the real Redis at 127.0.0.1:6379 under a
key prefix of their own. When the block ends it stops every handle and cleans up.

Redis delivers asynchronously, so the suite waits for messages; the memory broker
delivers before `publish` returns, which its own tests at the end check.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from redis.asyncio import Redis

from socket_server.fanout.base import Broker, Presence
from socket_server.fanout.memory import MemoryBackplane, MemoryBroker
from socket_server.fanout.redis import RedisBroker
from tests.broker_helpers import Inbox, eventually, numbered
from tests.conftest import require

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

MakeBroker = Callable[[str], Awaitable[Broker]]


@asynccontextmanager
async def memory_backend() -> AsyncIterator[MakeBroker]:
    backplane = MemoryBackplane()
    handles: list[MemoryBroker] = []

    async def make(node_id: str) -> Broker:
        handle = MemoryBroker(backplane)
        await handle.start()
        handles.append(handle)
        return handle

    try:
        yield make
    finally:
        for handle in handles:
            await handle.stop()


def _redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@asynccontextmanager
async def redis_backend() -> AsyncIterator[MakeBroker]:
    require(_redis_reachable(), f"Redis at {REDIS_HOST}:{REDIS_PORT}")
    prefix = f"gstest-contract-{uuid.uuid4().hex[:12]}"
    brokers: list[RedisBroker] = []

    async def make(node_id: str) -> Broker:
        broker = RedisBroker(
            REDIS_URL, prefix=prefix, node_id=node_id, heartbeat_interval=0.2, heartbeat_ttl=1.0
        )
        await broker.start()
        brokers.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            await broker.stop()
        admin = Redis.from_url(REDIS_URL)
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[MakeBroker]]] = {
    "memory": memory_backend,
    "redis": redis_backend,
}


@pytest.fixture(params=list(BACKENDS))
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    async with BACKENDS[request.param]() as make:
        yield make


async def settle() -> None:
    """Give stray (duplicate or late) messages time to show up before counting."""
    await asyncio.sleep(0.2)


# -- fan-out ---------------------------------------------------------------------------


async def test_every_subscribed_handle_gets_every_message_once_and_in_order(
    make_broker: MakeBroker,
) -> None:
    handles = [await make_broker(name) for name in "abc"]
    inboxes = [Inbox() for _ in handles]
    for handle, inbox in zip(handles, inboxes, strict=True):
        await handle.subscribe("g1", inbox.handler)
        await handle.subscribe("g2", inbox.handler)

    # Two games interleaved, from two publishing handles that are subscribed too.
    for data in numbered(300):
        await handles[0].publish("g1", data)
        await handles[1].publish("g2", data)

    for inbox in inboxes:
        await inbox.wait_for("g1", 300)
        await inbox.wait_for("g2", 300)
    await settle()
    for inbox in inboxes:
        assert inbox.of("g1") == numbered(300)
        assert inbox.of("g2") == numbered(300)


async def test_an_unsubscribed_handle_gets_nothing(make_broker: MakeBroker) -> None:
    publisher, leaver, stranger = [await make_broker(name) for name in "abc"]
    inboxes = {handle: Inbox() for handle in (publisher, leaver, stranger)}
    await publisher.subscribe("g", inboxes[publisher].handler)
    await leaver.subscribe("g", inboxes[leaver].handler)
    for handle in (leaver, stranger):  # never subscribed to "g"
        await handle.subscribe("marker", inboxes[handle].handler)

    await publisher.publish("g", b"before")
    await inboxes[leaver].wait_for("g", 1)
    await leaver.unsubscribe("g")
    await leaver.unsubscribe("never-subscribed")  # changes nothing
    for data in numbered(20):
        await publisher.publish("g", data)
    # A handle's messages arrive in publish order: once the marker is in, the rest
    # would be too.
    await publisher.publish("marker", b"m")
    for handle in (leaver, stranger):
        await inboxes[handle].wait_for("marker", 1)

    assert await inboxes[publisher].wait_for("g", 21) == [b"before", *numbered(20)]
    assert inboxes[leaver].of("g") == [b"before"]
    assert inboxes[stranger].of("g") == []


def broadcasts_to(inbox: Inbox) -> Callable[[bytes], None]:
    """A broadcast handler that files what it gets under the game "*" of `inbox`."""

    def handler(data: bytes) -> None:
        inbox.handler("*", data)

    return handler


async def test_publish_all_reaches_every_handle_but_no_game(make_broker: MakeBroker) -> None:
    handles = [await make_broker(name) for name in "abc"]
    inboxes = [Inbox() for _ in handles]
    for handle, inbox in zip(handles, inboxes, strict=True):
        await handle.subscribe_all(broadcasts_to(inbox))
        await handle.subscribe("g", inbox.handler)
    # A game whose id is empty is no broker-wide channel either.
    await handles[0].subscribe("", inboxes[0].handler)

    for data in numbered(20):
        await handles[1].publish_all(data)
    await handles[2].publish("g", b"game")
    for inbox in inboxes:
        assert await inbox.wait_for("*", 20) == numbered(20)
        assert await inbox.wait_for("g", 1) == [b"game"]
    await settle()
    for inbox in inboxes:
        assert inbox.of("*") == numbered(20) and inbox.of("g") == [b"game"]
    assert inboxes[0].of("") == []


async def test_a_stopped_handle_gets_no_broadcast(make_broker: MakeBroker) -> None:
    stays, leaves = await make_broker("a"), await make_broker("b")
    inboxes = {stays: Inbox(), leaves: Inbox()}
    for handle, inbox in inboxes.items():
        await handle.subscribe_all(broadcasts_to(inbox))
    await leaves.stop()
    await stays.publish_all(b"after")
    assert await inboxes[stays].wait_for("*", 1) == [b"after"]
    await settle()
    assert inboxes[leaves].of("*") == []


async def test_a_handle_has_one_handler_per_game(make_broker: MakeBroker) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    first, second = Inbox(), Inbox()
    await subscriber.subscribe("g", first.handler)
    await subscriber.subscribe("g", second.handler)  # replaces the first

    await publisher.publish("g", b"1")
    assert await second.wait_for("g", 1) == [b"1"]
    await settle()
    assert second.of("g") == [b"1"]
    assert first.of("g") == []


async def test_lobby_messages_reach_every_handle_once_in_order(make_broker: MakeBroker) -> None:
    handles = [await make_broker(name) for name in ("a", "b", "c")]
    inboxes = [Inbox() for _ in handles]
    for handle, inbox in zip(handles[:2], inboxes, strict=False):
        # The lobby channel is its own: a game's handler named "lobby" hears nothing of it.
        await handle.subscribe("lobby", inbox.handler)
        await handle.subscribe_lobby(lambda data, inbox=inbox: inbox.handler("<lobby>", data))
    await handles[2].subscribe_lobby(lambda data: inboxes[2].handler("<lobby>", data))
    for data in numbered(20):
        await handles[2].publish_lobby(data)
    for inbox in inboxes:
        assert await inbox.wait_for("<lobby>", 20) == numbered(20)
    await handles[0].publish("lobby", b"game message")
    await settle()
    for inbox in inboxes:
        assert inbox.of("<lobby>") == numbered(20)
    assert inboxes[1].of("lobby") == [b"game message"]


# -- locks -----------------------------------------------------------------------------


async def test_a_lock_is_exclusive_across_handles(make_broker: MakeBroker) -> None:
    handles = [await make_broker(name) for name in "abc"]

    # Many simultaneous attempts from every handle: exactly one handle wins.
    attempts = [handle.try_lock("k", 5) for handle in handles for _ in range(10)]
    results = await asyncio.gather(*attempts)
    winners = {i // 10 for i, taken in enumerate(results) if taken}
    assert len(winners) == 1
    holder = handles[winners.pop()]
    others = [handle for handle in handles if handle is not holder]

    for other in others:
        assert not await other.try_lock("k", 5)
    assert await others[0].try_lock("other-key", 5)  # keys are independent
    assert not await holder.try_lock("other-key", 5)


async def test_the_holder_refreshes_its_lock(make_broker: MakeBroker) -> None:
    holder, other = await make_broker("a"), await make_broker("b")
    loop = asyncio.get_running_loop()

    assert await holder.try_lock("k", 0.3)
    refreshed_until = loop.time() + 1.0
    while loop.time() < refreshed_until:  # kept well past three TTLs
        assert await holder.try_lock("k", 0.3)
        assert not await other.try_lock("k", 0.3)
        await asyncio.sleep(0.1)


async def test_a_lock_lapses_after_its_ttl(make_broker: MakeBroker) -> None:
    holder, other, third = [await make_broker(name) for name in "abc"]
    loop = asyncio.get_running_loop()

    assert await holder.try_lock("k", 0.3)
    taken = loop.time()
    assert not await other.try_lock("k", 0.3)

    async def taken_over() -> bool:
        return await other.try_lock("k", 5)

    await eventually(taken_over, within=2)
    assert 0.2 < loop.time() - taken < 0.6

    # The lock is the new holder's now: the old one neither takes nor releases it.
    assert not await holder.try_lock("k", 5)
    await holder.unlock("k")
    assert not await third.try_lock("k", 5)


async def test_a_refresh_sets_the_ttl_it_is_given(make_broker: MakeBroker) -> None:
    holder, other = await make_broker("a"), await make_broker("b")
    loop = asyncio.get_running_loop()

    assert await holder.try_lock("k", 60)
    assert await holder.try_lock("k", 0.3)  # shortened, as Redis's PEXPIRE does
    refreshed = loop.time()

    async def taken_over() -> bool:
        return await other.try_lock("k", 5)

    await eventually(taken_over, within=2)
    assert loop.time() - refreshed < 0.6


async def test_unlock_by_a_non_holder_does_not_release_the_lock(
    make_broker: MakeBroker,
) -> None:
    holder, other = await make_broker("a"), await make_broker("b")
    assert await holder.try_lock("k", 5)

    await other.unlock("k")
    assert not await other.try_lock("k", 5)
    assert await holder.try_lock("k", 5)  # still the holder's


async def test_unlock_by_the_holder_releases_the_lock(make_broker: MakeBroker) -> None:
    holder, other = await make_broker("a"), await make_broker("b")
    assert await holder.try_lock("k", 60)

    await holder.unlock("k")
    assert await other.try_lock("k", 60)
    assert not await holder.try_lock("k", 60)
    await holder.unlock("k")  # not its lock any more: changes nothing
    assert not await holder.try_lock("k", 60)


# -- presence --------------------------------------------------------------------------


async def test_presence_is_summed_over_handles(make_broker: MakeBroker) -> None:
    a, b, c = [await make_broker(name) for name in "abc"]
    await a.put_presence("g", Presence(players={"white": 1}, spectators=2))
    await b.put_presence("g", Presence(players={"white": 1, "black": 1}, spectators=1))
    await c.put_presence("other", Presence(spectators=4))

    for handle in (a, b, c):
        assert await handle.get_presence("g") == Presence(
            players={"white": 2, "black": 1}, spectators=3
        )
        assert await handle.get_presence("other") == Presence(spectators=4)
        assert await handle.get_presence("nobody") == Presence()

    # A handle's new count replaces its old one.
    await a.put_presence("g", Presence(spectators=1))
    assert await c.get_presence("g") == Presence(players={"white": 1, "black": 1}, spectators=2)


async def test_an_empty_presence_removes_the_handles_entry(make_broker: MakeBroker) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    await a.put_presence("g", Presence(players={"white": 1}))
    await b.put_presence("g", Presence(spectators=2))

    await a.put_presence("g", Presence())
    assert await b.get_presence("g") == Presence(spectators=2)
    await a.put_presence("g", Presence())  # removing nothing changes nothing
    assert await b.get_presence("g") == Presence(spectators=2)

    await b.put_presence("g", Presence(players={"black": 0}))  # no socket: empty too
    assert await a.get_presence("g") == Presence()
    assert await a.all_presence() == {}


async def test_all_presence_lists_the_games_with_sockets(make_broker: MakeBroker) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    assert await a.all_presence() == {}
    await a.put_presence("g1", Presence(players={"white": 1}))
    await b.put_presence("g1", Presence(spectators=1))
    await b.put_presence("g2", Presence(players={"x": 2}))
    await a.put_presence("gone", Presence(spectators=3))
    await a.put_presence("gone", Presence())

    expected = {
        "g1": Presence(players={"white": 1}, spectators=1),
        "g2": Presence(players={"x": 2}),
    }
    assert await a.all_presence() == expected
    assert await b.all_presence() == expected


async def test_presence_is_recorded_by_value(make_broker: MakeBroker) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    mine = Presence(players={"white": 1}, spectators=1)
    await a.put_presence("g", mine)
    mine.players["white"] = 5
    mine.spectators = 5

    read = await b.get_presence("g")
    assert read == Presence(players={"white": 1}, spectators=1)
    read.players["black"] = 1
    (await b.all_presence())["g"].spectators = 9
    assert await a.get_presence("g") == Presence(players={"white": 1}, spectators=1)
    assert await a.all_presence() == {"g": Presence(players={"white": 1}, spectators=1)}


# -- a stopped handle ------------------------------------------------------------------


async def test_a_stopped_handles_presence_locks_and_subscriptions_no_longer_count(
    make_broker: MakeBroker,
) -> None:
    stays, leaves = await make_broker("a"), await make_broker("b")
    stays_inbox, leaves_inbox = Inbox(), Inbox()
    await stays.subscribe("g", stays_inbox.handler)
    await leaves.subscribe("g", leaves_inbox.handler)
    await stays.put_presence("g", Presence(spectators=2))
    await leaves.put_presence("g", Presence(players={"white": 1}))
    await leaves.put_presence("only-b", Presence(spectators=1))
    assert await leaves.try_lock("k", 60)
    assert not await stays.try_lock("k", 60)

    await leaves.stop()

    # Released at once (a stopped RedisBroker releases its locks), not after the TTL.
    assert await stays.try_lock("k", 60)
    assert await stays.get_presence("g") == Presence(spectators=2)
    assert await stays.get_presence("only-b") == Presence()
    assert await stays.all_presence() == {"g": Presence(spectators=2)}
    await stays.publish("g", b"after")
    assert await stays_inbox.wait_for("g", 1) == [b"after"]
    await settle()
    assert leaves_inbox.of("g") == []


# -- the memory broker's own guarantees ------------------------------------------------


async def test_memory_broker_alone_delivers_before_publish_returns() -> None:
    broker = MemoryBroker()
    inbox = Inbox()
    received_async: list[bytes] = []

    async def async_handler(game_id: str, data: bytes) -> None:
        await asyncio.sleep(0.01)
        received_async.append(data)

    await broker.subscribe("sync", inbox.handler)
    await broker.subscribe("async", async_handler)
    await broker.publish("sync", b"1")
    await broker.publish("async", b"2")
    assert inbox.of("sync") == [b"1"]
    assert received_async == [b"2"]


async def test_memory_brokers_without_a_shared_backplane_are_independent() -> None:
    one, two = MemoryBroker(), MemoryBroker()
    inbox_one, inbox_two = Inbox(), Inbox()
    await one.subscribe("g", inbox_one.handler)
    await two.subscribe("g", inbox_two.handler)

    # Alone on its backplane a broker holds every lock it asks for (a refresh).
    assert await one.try_lock("k", 5)
    assert await one.try_lock("k", 5)
    assert await two.try_lock("k", 5)
    await one.put_presence("g", Presence(spectators=1))
    await one.publish("g", b"1")

    assert inbox_one.of("g") == [b"1"]
    assert inbox_two.of("g") == []
    assert await two.get_presence("g") == Presence()
    assert await two.all_presence() == {}


async def test_memory_keeps_publish_order_when_handlers_suspend() -> None:
    backplane = MemoryBackplane()
    slow, fast = MemoryBroker(backplane), MemoryBroker(backplane)
    slow_got: list[bytes] = []
    fast_inbox = Inbox()

    async def slow_handler(game_id: str, data: bytes) -> None:
        await asyncio.sleep(0.02)  # another publisher runs meanwhile
        slow_got.append(data)
        if data == b"1":  # a handler publishing: delivered after this message
            await slow.publish(game_id, b"reply")

    await slow.subscribe("g", slow_handler)
    await fast.subscribe("g", fast_inbox.handler)

    await asyncio.gather(fast.publish("g", b"1"), fast.publish("g", b"2"))

    # Everything went out before the first publish returned, in publish order.
    assert slow_got == [b"1", b"2", b"reply"]
    assert fast_inbox.of("g") == [b"1", b"2", b"reply"]


async def test_memory_failing_handler_stops_no_delivery(caplog: pytest.LogCaptureFixture) -> None:
    backplane = MemoryBackplane()
    failing, working = MemoryBroker(backplane), MemoryBroker(backplane)
    inbox = Inbox()

    def broken(game_id: str, data: bytes) -> None:
        raise ValueError("broken handler")

    await failing.subscribe("g", broken)
    await working.subscribe("g", inbox.handler)
    with caplog.at_level(logging.ERROR, logger="gamesocket.fanout"):
        await working.publish("g", b"1")  # the handler's error is not the publisher's
        await working.publish("g", b"2")

    assert inbox.of("g") == [b"1", b"2"]
    failures = [r for r in caplog.records if "handler of game g failed" in r.getMessage()]
    assert len(failures) == 2


async def test_memory_delivery_carries_on_when_its_publisher_is_cancelled() -> None:
    backplane = MemoryBackplane()
    first, second = MemoryBroker(backplane), MemoryBroker(backplane)
    first_started: list[bytes] = []
    second_inbox = Inbox()
    blocked = asyncio.Event()

    async def first_handler(game_id: str, data: bytes) -> None:
        first_started.append(data)
        if data == b"1":
            blocked.set()
            await asyncio.Event().wait()  # until cancelled

    await first.subscribe("g", first_handler)
    await second.subscribe("g", second_inbox.handler)

    publishing = asyncio.create_task(second.publish("g", b"1"))
    await blocked.wait()
    await second.publish("g", b"2")  # queued behind "1"; returns at once
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing

    assert await second_inbox.wait_for("g", 2, within=2) == [b"1", b"2"]
    assert first_started == [b"1", b"2"]
    await second.publish("g", b"3")  # delivering directly again
    assert second_inbox.of("g") == [b"1", b"2", b"3"]
