"""The Redis broker against the real Redis at 127.0.0.1:6379.

Several RedisBroker instances stand for several server processes ("nodes"); where a
process must really die (SIGKILL) or really be separate, a child Python process runs
a broker. Every test uses its own key and channel prefix and deletes its keys after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from socket_server.fanout.base import Presence
from socket_server.fanout.redis import RedisBroker
from tests.broker_helpers import Inbox, eventually, numbered
from tests.conftest import PROJECT_ROOT, require

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
# Short heartbeats so that dead nodes are noticed within a second.
HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_ttl": 1.0}


def _redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require(_redis_reachable(), f"Redis at {REDIS_HOST}:{REDIS_PORT}")
    prefix = f"gstest-{uuid.uuid4().hex[:12]}"
    yield prefix
    admin = Redis.from_url(REDIS_URL)
    keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


@pytest.fixture
async def admin() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


MakeBroker = Callable[..., Awaitable[RedisBroker]]


@pytest.fixture
async def make_broker(prefix: str) -> AsyncIterator[MakeBroker]:
    brokers: list[RedisBroker] = []

    async def make(node_id: str, url: str = REDIS_URL, **options: float) -> RedisBroker:
        broker = RedisBroker(url, prefix=prefix, node_id=node_id, **(HEARTBEAT | options))
        await broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        await broker.stop()


async def settle() -> None:
    """Give stray (duplicate or late) messages time to show up before counting."""
    await asyncio.sleep(0.2)


# A broker in a separate OS process. Modes: `publish GAME COUNT` publishes COUNT
# numbered messages and exits; `hold GAME LOCK` records presence (one white player),
# takes LOCK for 0.6 s, says "ready" and waits to be killed.
CHILD = """
import asyncio, sys
from socket_server.fanout.base import Presence
from socket_server.fanout.redis import RedisBroker

async def main(url, prefix, node_id, mode, game_id, arg):
    broker = RedisBroker(url, prefix=prefix, node_id=node_id,
                         heartbeat_interval=0.2, heartbeat_ttl=1.0)
    await broker.start()
    if mode == "publish":
        for i in range(int(arg)):
            await broker.publish(game_id, str(i).encode())
        await broker.stop()
        return
    await broker.put_presence(game_id, Presence(players={"white": 1}))
    assert await broker.try_lock(arg, 0.6)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def run_child(prefix: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        REDIS_URL,
        prefix,
        *args,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def holding_child(prefix: str, node_id: str, game_id: str, lock: str) -> AsyncIterator[int]:
    """A child node holding presence in `game_id` and `lock`; yields its pid."""
    child = await run_child(prefix, node_id, "hold", game_id, lock)
    try:
        assert child.stdout is not None
        async with asyncio.timeout(15):
            assert await child.stdout.readline() == b"ready\n"
        yield child.pid
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


# -- fan-out ---------------------------------------------------------------------------


async def test_every_node_gets_every_message_once_and_in_order(make_broker: MakeBroker) -> None:
    nodes = [await make_broker(name) for name in ("a", "b", "c")]
    inboxes = [Inbox() for _ in nodes]
    for node, inbox in zip(nodes, inboxes, strict=True):
        await node.subscribe("g1", inbox.handler)
        await node.subscribe("g2", inbox.handler)

    # Two games interleaved, from two publishing nodes (one game each).
    for i in range(1000):
        await nodes[0].publish("g1", str(i).encode())
        await nodes[1].publish("g2", str(i).encode())

    for inbox in inboxes:
        await inbox.wait_for("g1", 1000)
        await inbox.wait_for("g2", 1000)
    await settle()
    for inbox in inboxes:
        assert inbox.of("g1") == numbered(1000)
        assert inbox.of("g2") == numbered(1000)


async def test_concurrent_publishes_leave_in_call_order(make_broker: MakeBroker) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    await subscriber.subscribe("g", inbox.handler)

    await asyncio.gather(*(publisher.publish("g", data) for data in numbered(500)))

    assert await inbox.wait_for("g", 500) == numbered(500)


async def test_bytes_pass_through_unchanged(make_broker: MakeBroker) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    await subscriber.subscribe("g", inbox.handler)
    payloads = [
        b"",
        bytes(range(256)),
        b'{"type":"update","board":"\xe2\x99\x94"}',
        b"\r\n*3\r\n$7\r\nmessage\r\n",  # looks like RESP
        os.urandom(64 * 1024),
    ]
    for payload in payloads:
        await publisher.publish("g", payload)

    assert await inbox.wait_for("g", len(payloads)) == payloads
    assert all(type(data) is bytes for data in inbox.of("g"))


async def test_messages_from_a_separate_process(prefix: str, make_broker: MakeBroker) -> None:
    nodes = [await make_broker("a"), await make_broker("b")]
    inboxes = [Inbox(), Inbox()]
    for node, inbox in zip(nodes, inboxes, strict=True):
        await node.subscribe("g", inbox.handler)

    child = await run_child(prefix, "child", "publish", "g", "1000")
    assert await child.wait() == 0

    for inbox in inboxes:
        await inbox.wait_for("g", 1000)
    await settle()
    for inbox in inboxes:
        assert inbox.of("g") == numbered(1000)


async def test_publish_right_after_subscribe_is_never_lost(make_broker: MakeBroker) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    for i in range(100):
        game_id = f"race-{i}"
        await subscriber.subscribe(game_id, inbox.handler)
        await publisher.publish(game_id, b"first")
        assert await inbox.wait_for(game_id, 1, within=2) == [b"first"]


async def test_unsubscribe_stops_delivery(make_broker: MakeBroker) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    await subscriber.subscribe("g", inbox.handler)
    await subscriber.subscribe("marker", inbox.handler)
    await publisher.publish("g", b"1")
    await inbox.wait_for("g", 1)

    await subscriber.unsubscribe("g")
    await publisher.publish("g", b"2")
    # Messages of one node arrive in order: once the marker is in, "2" would be too.
    await publisher.publish("marker", b"m")
    await inbox.wait_for("marker", 1)
    assert inbox.of("g") == [b"1"]

    await subscriber.subscribe("g", inbox.handler)
    await publisher.publish("g", b"3")
    assert await inbox.wait_for("g", 2) == [b"1", b"3"]


async def test_a_failing_handler_does_not_stop_the_reader(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()

    def sync_handler(game_id: str, data: bytes) -> None:
        inbox.handler(game_id, data)
        if int(data) % 2:
            raise ValueError("odd")

    async def async_handler(game_id: str, data: bytes) -> None:
        await asyncio.sleep(0)
        inbox.handler(game_id, data)
        if int(data) % 3 == 0:
            raise RuntimeError("divisible by three")

    await subscriber.subscribe("sync", sync_handler)
    await subscriber.subscribe("async", async_handler)
    with caplog.at_level(logging.ERROR, logger="socket_server.fanout.redis"):
        for data in numbered(10):
            await publisher.publish("sync", data)
            await publisher.publish("async", data)
        assert await inbox.wait_for("sync", 10) == numbered(10)
        assert await inbox.wait_for("async", 10) == numbered(10)

    failures = [r for r in caplog.records if "handler of game" in r.getMessage()]
    assert len(failures) == 5 + 4  # odd numbers; 0, 3, 6, 9


# -- reconnecting ----------------------------------------------------------------------


async def kill_client(admin: Redis, name: str) -> None:
    clients = [c for c in await admin.client_list() if c.get("name") == name]
    assert len(clients) == 1, clients
    await admin.execute_command("CLIENT", "KILL", "ID", clients[0]["id"])


async def wait_until_delivered(publisher: RedisBroker, inbox: Inbox, game_id: str) -> None:
    """Publish probes until one arrives (those sent while reconnecting are lost)."""
    async with asyncio.timeout(10):
        while not inbox.of(game_id):
            await publisher.publish(game_id, b"probe")
            await asyncio.sleep(0.02)


async def test_delivery_resumes_after_the_pubsub_connection_is_killed(
    prefix: str, admin: Redis, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    await subscriber.subscribe("g", inbox.handler)
    await subscriber.subscribe("probe", inbox.handler)

    with caplog.at_level(logging.WARNING, logger="socket_server.fanout.redis"):
        await kill_client(admin, f"{prefix}:b:sub")
        await wait_until_delivered(publisher, inbox, "probe")

    assert subscriber.reconnects == 1
    assert any("reconnected" in r.getMessage() for r in caplog.records)
    # Both games were resubscribed, and nothing arrives twice.
    for data in numbered(100):
        await publisher.publish("g", data)
    assert await inbox.wait_for("g", 100) == numbered(100)
    await settle()
    assert inbox.of("g") == numbered(100)


async def test_subscribe_while_the_connection_is_down_waits_for_the_reconnect(
    prefix: str, admin: Redis, make_broker: MakeBroker
) -> None:
    publisher, subscriber = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    await kill_client(admin, f"{prefix}:b:sub")
    await subscriber.subscribe("g", inbox.handler)
    await publisher.publish("g", b"after")
    assert await inbox.wait_for("g", 1, within=2) == [b"after"]


class BlackholeProxy:
    """A TCP proxy to Redis that can make its open connections silently swallow data.

    That stands for connections that died without a FIN or RST (a peer host gone), which
    only the broker's own liveness check can notice. New connections work normally.
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.cutoff = 0  # connections accepted before this index forward nothing
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    def blackhole_open_connections(self) -> None:
        self.cutoff = self.accepted

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        index = self.accepted
        self.accepted += 1
        redis_r, redis_w = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers += [client_w, redis_w]

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    if index >= self.cutoff:
                        writer.write(data)
                        await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_r, redis_w), pump(redis_r, client_w))


async def test_a_silently_dead_connection_is_replaced(make_broker: MakeBroker) -> None:
    proxy = BlackholeProxy()
    url = await proxy.start()
    publisher = await make_broker("a")
    subscriber = RedisBroker(url, prefix=publisher.prefix, node_id="b", **HEARTBEAT)
    await subscriber.start()
    try:
        inbox = Inbox()
        await subscriber.subscribe("g", inbox.handler)
        await subscriber.subscribe("probe", inbox.handler)
        await publisher.publish("g", b"before")
        await inbox.wait_for("g", 1)

        proxy.blackhole_open_connections()

        async def reconnected() -> bool:
            return subscriber.reconnects > 0

        # Noticed within the heartbeat TTL (1 s) plus a heartbeat or two.
        await eventually(reconnected, within=3)
        await wait_until_delivered(publisher, inbox, "probe")
        await publisher.publish("g", b"after")
        assert await inbox.wait_for("g", 2) == [b"before", b"after"]
        assert proxy.accepted > proxy.cutoff  # it really went over a new connection
    finally:
        await subscriber.stop()
        await proxy.stop()


# -- locks -----------------------------------------------------------------------------


async def test_a_lock_has_one_holder_across_nodes(make_broker: MakeBroker) -> None:
    a, b, c = [await make_broker(name) for name in "abc"]

    # Many simultaneous attempts from every node: exactly one succeeds.
    attempts = [node.try_lock("game-1", 5) for node in (a, b, c) for _ in range(10)]
    results = await asyncio.gather(*attempts)
    winners = {i // 10 for i, taken in enumerate(results) if taken}
    assert len(winners) == 1
    holder = (a, b, c)[winners.pop()]
    others = [node for node in (a, b, c) if node is not holder]

    assert await holder.try_lock("game-1", 5)  # taking it again refreshes it
    await others[0].unlock("game-1")  # not the holder: changes nothing
    assert not await others[0].try_lock("game-1", 5)
    assert await others[0].try_lock("game-2", 5)  # other keys are independent

    await holder.unlock("game-1")
    assert await others[1].try_lock("game-1", 5)
    assert not await holder.try_lock("game-1", 5)


async def test_a_lock_lapses_after_its_ttl_unless_refreshed(make_broker: MakeBroker) -> None:
    holder, other = await make_broker("a"), await make_broker("b")
    loop = asyncio.get_running_loop()

    assert await holder.try_lock("k", 0.3)
    refreshed_until = loop.time() + 1.0
    while loop.time() < refreshed_until:  # the holder keeps it past several TTLs
        assert await holder.try_lock("k", 0.3)
        assert not await other.try_lock("k", 0.3)
        await asyncio.sleep(0.1)

    stopped_refreshing = loop.time()

    async def taken() -> bool:
        return await other.try_lock("k", 0.3)

    await eventually(taken, within=2)
    assert 0.2 < loop.time() - stopped_refreshing < 0.6


async def test_a_dead_holders_lock_lapses(prefix: str, make_broker: MakeBroker) -> None:
    other = await make_broker("a")
    async with holding_child(prefix, "child", "g", "k") as pid:
        assert not await other.try_lock("k", 5)
        os.kill(pid, signal.SIGKILL)
        killed = asyncio.get_running_loop().time()

        async def taken() -> bool:
            return await other.try_lock("k", 5)

        await eventually(taken, within=2)  # the child took it with a 0.6 s TTL
        assert asyncio.get_running_loop().time() - killed < 0.8


# -- presence --------------------------------------------------------------------------


async def test_presence_is_summed_over_nodes(make_broker: MakeBroker) -> None:
    a, b, c = [await make_broker(name) for name in "abc"]
    await a.put_presence("g1", Presence(players={"white": 1}, spectators=2))
    await b.put_presence("g1", Presence(players={"white": 1, "black": 1}, spectators=1))
    await c.put_presence("g2", Presence(spectators=4))

    expected_g1 = Presence(players={"white": 2, "black": 1}, spectators=3)
    expected_g2 = Presence(spectators=4)
    for node in (a, b, c):
        assert await node.get_presence("g1") == expected_g1
        assert await node.get_presence("g2") == expected_g2
        assert await node.get_presence("nobody") == Presence()
        assert await node.all_presence() == {"g1": expected_g1, "g2": expected_g2}

    # A node's new count replaces its old one; an empty one removes it.
    await a.put_presence("g1", Presence(spectators=1))
    await c.put_presence("g2", Presence())
    assert await b.get_presence("g1") == Presence(players={"white": 1, "black": 1}, spectators=2)
    assert await b.get_presence("g2") == Presence()
    assert set(await b.all_presence()) == {"g1"}


async def test_stop_removes_the_nodes_presence_locks_and_connections(
    prefix: str, admin: Redis, make_broker: MakeBroker
) -> None:
    stays = await make_broker("a")
    tasks_before = asyncio.all_tasks()
    leaves = RedisBroker(REDIS_URL, prefix=prefix, node_id="b", **HEARTBEAT)
    await leaves.start()
    await leaves.subscribe("g", Inbox().handler)
    await leaves.put_presence("g", Presence(spectators=1))
    await stays.put_presence("g", Presence(spectators=2))
    assert await leaves.try_lock("k", 60)
    names = {client.get("name") for client in await admin.client_list()}
    assert {f"{prefix}:b:cmd", f"{prefix}:b:sub"} <= names

    await leaves.stop()
    await leaves.stop()  # a second stop changes nothing (and opens no connection)

    assert asyncio.all_tasks() == tasks_before
    assert await stays.get_presence("g") == Presence(spectators=2)
    assert await stays.try_lock("k", 1)
    names = {client.get("name") for client in await admin.client_list()}
    assert not names & {f"{prefix}:b:cmd", f"{prefix}:b:sub"}
    assert not [key async for key in admin.scan_iter(match=f"{prefix}:node:b:*")]


async def test_a_dead_nodes_presence_is_dropped_within_the_heartbeat_ttl(
    prefix: str, admin: Redis, make_broker: MakeBroker
) -> None:
    a = await make_broker("a")
    await a.put_presence("g", Presence(spectators=1))
    async with holding_child(prefix, "child", "g", "k") as pid:
        both = Presence(players={"white": 1}, spectators=1)
        assert await a.get_presence("g") == both
        assert await a.all_presence() == {"g": both}

        os.kill(pid, signal.SIGKILL)
        killed = asyncio.get_running_loop().time()

        async def dropped() -> bool:
            return await a.get_presence("g") == Presence(spectators=1)

        await eventually(dropped, within=2)
        assert asyncio.get_running_loop().time() - killed < 1.2  # TTL 1 s
        assert await a.all_presence() == {"g": Presence(spectators=1)}
        # Reaped, not merely ignored.
        assert await admin.hkeys(f"{prefix}:presence:g") == [b"a"]
        assert await admin.smembers(f"{prefix}:nodes") == {b"a"}


async def test_a_node_whose_heartbeat_lapsed_registers_again(
    prefix: str, admin: Redis, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    await a.put_presence("g", Presence(spectators=1))
    await b.put_presence("g", Presence(spectators=2))

    # As if `a` had been unreachable for longer than the TTL: b reaps it.
    await admin.delete(f"{prefix}:node:a:alive")
    assert await b.get_presence("g") == Presence(spectators=2)
    assert await admin.hkeys(f"{prefix}:presence:g") == [b"b"]

    async def back() -> bool:
        return await b.get_presence("g") == Presence(spectators=3)

    with caplog.at_level(logging.WARNING, logger="socket_server.fanout.redis"):
        await eventually(back, within=1)  # heartbeat every 0.2 s
    assert any("lapsed" in record.getMessage() for record in caplog.records)
