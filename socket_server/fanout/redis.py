"""The Redis broker: several server processes serve the same games.

Fan-out uses redis-py's asyncio pub/sub directly rather than Litestar's channels
plugin, whose Redis backends have open bugs that matter here (a backlog deadlock, a
subscribe race, per-channel and cancellation leaks, the stream backend replaying old
events); docs/scaling.md has the details.

- One connection for commands (publish, locks, presence), one pub/sub connection per
  process read by one task, which dispatches each message by channel to the game's
  handler, in the order Redis delivers them (publish order per game).
- `subscribe()` returns only once Redis has confirmed the subscription, so nothing
  published after it returns can be missed.
- A dropped pub/sub connection is replaced and every game resubscribed (logged).
  Messages published while it was down are lost: the `on_resubscribe` handler is then
  called with every subscribed game, so that the server fills the gaps from the store.
- Locks: `SET NX PX` with a token unique to this broker; refresh and release only if
  the token matches (Lua), so a lock has exactly one holder and lapses if it dies.
- Presence: a hash per game (field: node id, value: that node's Presence as JSON), a
  set of games per node, and a heartbeat key per node with a TTL. Entries of nodes
  whose heartbeat lapsed are ignored and removed by whoever reads them.

Keys are built from `prefix` and are not hash-tagged: single Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.utils import str_if_bytes

from socket_server.fanout.base import (
    BroadcastHandler,
    MessageHandler,
    Presence,
    ResubscribeHandler,
)

log = logging.getLogger("gamesocket.fanout")

# When a seat's last socket closed is kept this long (claims of abandoned games read it).
SEAT_LEFT_TTL_SECONDS = 7 * 24 * 3600

# KEYS[1] lock; ARGV[1] holder token, ARGV[2] ttl ms.
_TAKE_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lock; ARGV[1] holder token.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] the game's presence hash, KEYS[2] this node's set of games;
# ARGV[1] node id, ARGV[2] game id, ARGV[3] the node's Presence as JSON ('' removes it).
_PUT_PRESENCE = """
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[2])
end
return 1
"""

# Remove a node's presence everywhere, but only if its heartbeat has lapsed: checked
# in the same atomic step, so a node that has just come back keeps its entries.
# KEYS[1] its heartbeat, KEYS[2] its set of games, KEYS[3] the set of nodes;
# ARGV[1] node id, ARGV[2] prefix of presence hashes (the game id follows).
_REAP_NODE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for _, game in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('HDEL', ARGV[2] .. game, ARGV[1])
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""

_MAX_RECONNECT_DELAY = 5.0
# stop(): how often its tasks are cancelled again, and for how long at most.
_RECANCEL_INTERVAL = 0.05
_STOP_TASKS_WITHIN = 5.0


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _sum(entries: Iterable[bytes | str | None]) -> Presence:
    """Add up nodes' Presence entries (JSON; None where a node has none)."""
    total = Presence()
    for raw in entries:
        if raw is not None:
            total = total.add(msgspec.json.decode(raw, type=Presence))
    return total


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gamesocket",
        node_id: str | None = None,
        heartbeat_interval: float = 3.0,
        heartbeat_ttl: float = 10.0,
        subscribe_timeout: float = 10.0,
    ) -> None:
        if heartbeat_ttl <= heartbeat_interval:
            raise ValueError("heartbeat_ttl must be longer than heartbeat_interval")
        self.url = url
        self.prefix = prefix
        self.node_id = node_id or _default_node_id()
        # Lock values: unique per broker instance, so a restarted process that reuses
        # a node id never mistakes an old holder's lock for its own.
        self._token = f"{self.node_id}:{uuid.uuid4().hex}"
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_ttl_ms = int(heartbeat_ttl * 1000)
        self._subscribe_timeout = subscribe_timeout

        self._alive_key = self._node_key(self.node_id, "alive")
        self._games_key = self._node_key(self.node_id, "games")
        self._nodes_key = f"{prefix}:nodes"
        self._presence_prefix = f"{prefix}:presence:"

        # One connection, behind redis-py's FIFO lock: publishes leave in call order.
        self._redis = Redis.from_url(
            url, single_connection_client=True, client_name=f"{prefix}:{self.node_id}:cmd"
        )
        # No retries on the pub/sub connection: redis-py would reconnect it behind our
        # back; the reader replaces it itself, resubscribes and logs.
        self._sub_redis = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            client_name=f"{prefix}:{self.node_id}:sub",
        )
        self._take_lock = self._redis.register_script(_TAKE_LOCK)
        self._release_lock = self._redis.register_script(_RELEASE_LOCK)
        self._put_presence = self._redis.register_script(_PUT_PRESENCE)
        self._reap_node = self._redis.register_script(_REAP_NODE)
        self._pubsub: PubSub | None = None
        # Held to send on the pub/sub connection and to replace it (not to read it).
        self._pubsub_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # channel -> (game id, handler); the source of truth for (re)subscribing.
        self._handlers: dict[bytes, tuple[str, MessageHandler]] = {}
        # channel -> subscribe() calls waiting for Redis's confirmation.
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._on_resubscribe: ResubscribeHandler | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._last_read = 0.0
        self._presence: dict[str, Presence] = {}
        self._held_locks: set[str] = set()
        # How often the pub/sub connection was replaced (for metrics and tests).
        self.reconnects = 0
        self._started = False

    # -- keys --------------------------------------------------------------------------

    def _channel(self, game_id: str) -> bytes:
        return f"{self.prefix}:game:{game_id}".encode()

    @property
    def _all_channel(self) -> bytes:
        """The broker-wide channel (announcements); its `_handlers` entry has no game id."""
        return f"{self.prefix}:all".encode()

    @property
    def _lobby_channel(self) -> bytes:
        """The lobby's channel (games and seeks coming and going, pairings)."""
        return f"{self.prefix}:lobby".encode()

    def _node_key(self, node_id: str, what: str) -> str:
        return f"{self.prefix}:node:{node_id}:{what}"

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}:lock:{key}"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        await self._register_node()
        self._pubsub = await self._connect_pubsub()
        self._reader = asyncio.create_task(self._read_loop(), name=f"redis-reader-{self.node_id}")
        self._heartbeat = asyncio.create_task(
            self._heartbeat_loop(), name=f"redis-heartbeat-{self.node_id}"
        )

    async def stop(self) -> None:
        # Once only: the closed clients would otherwise quietly reconnect to clean up.
        if not self._started:
            return
        self._started = False
        await self._end_tasks(self._heartbeat, self._reader, self._catch_up)
        self._heartbeat = self._reader = self._catch_up = None
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()
        self._handlers.clear()
        async with self._pubsub_lock:
            if self._pubsub is not None:
                await self._close_pubsub(self._pubsub)
                self._pubsub = None
        try:
            for key in self._held_locks:
                await self._release_lock(keys=[self._lock_key(key)], args=[self._token])
            await self._redis.delete(self._alive_key)
            await self._reap(self.node_id)
        except (RedisError, OSError):
            log.warning("could not remove node %s's locks and presence", self.node_id)
        await self._redis.aclose()
        await self._sub_redis.aclose()
        self._presence.clear()
        self._held_locks.clear()

    async def _end_tasks(self, *tasks: asyncio.Task[None] | None) -> None:
        """Cancel `tasks` and wait until they have ended, cancelling again meanwhile.

        One cancel is not always enough: redis-py sends every command through
        asyncio.wait_for (its socket_timeout is 5 s by default), and on Python 3.11
        wait_for drops a cancel that arrives when the wrapped send has just finished
        (CPython gh-86296). The heartbeat then carried on, and stop() waited on it
        forever. A task still running after _STOP_TASKS_WITHIN seconds of cancels is
        logged and left behind: stop() always returns.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_TASKS_WITHIN
        pending = {task for task in tasks if task is not None}
        while pending:
            for task in pending:
                task.cancel()
            done, pending = await asyncio.wait(pending, timeout=_RECANCEL_INTERVAL)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error(
                        "task %s of node %s failed",
                        task.get_name(),
                        self.node_id,
                        exc_info=task.exception(),
                    )
            if pending and loop.time() >= deadline:
                names = sorted(task.get_name() for task in pending)
                log.error("node %s stops without %s: they ignore cancellation", self.node_id, names)
                return

    # -- fan-out -----------------------------------------------------------------------

    async def publish(self, game_id: str, data: bytes) -> None:
        await self._redis.publish(self._channel(game_id), data)

    async def subscribe(self, game_id: str, handler: MessageHandler) -> None:
        """Deliver `game_id`'s messages to `handler` from the moment this returns.

        Waits for Redis's confirmation (across a reconnect if need be); raises
        ConnectionError, subscribed to nothing, if none comes within subscribe_timeout.
        """
        await self._subscribe(self._channel(game_id), game_id, handler)

    async def publish_all(self, data: bytes) -> None:
        await self._redis.publish(self._all_channel, data)

    async def subscribe_all(self, handler: BroadcastHandler) -> None:
        """Deliver every `publish_all` message to `handler` (as `subscribe` does)."""

        def deliver(_game_id: str, data: bytes) -> Any:
            return handler(data)

        await self._subscribe(self._all_channel, "", deliver)

    async def publish_lobby(self, data: bytes) -> None:
        await self._redis.publish(self._lobby_channel, data)

    async def subscribe_lobby(self, handler: BroadcastHandler) -> None:
        """Deliver every `publish_lobby` message to `handler` (as `subscribe` does)."""

        def deliver(_game_id: str, data: bytes) -> Any:
            return handler(data)

        await self._subscribe(self._lobby_channel, "", deliver)

    async def _subscribe(self, channel: bytes, game_id: str, handler: MessageHandler) -> None:
        if self._reader is None:
            raise RuntimeError("RedisBroker is not started")
        # Registered before SUBSCRIBE is sent: a message that follows the confirmation
        # on the connection finds its handler.
        self._handlers[channel] = (game_id, handler)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        try:
            await self._send_on_pubsub("SUBSCRIBE", channel)
            async with asyncio.timeout(self._subscribe_timeout):
                await waiter
        except TimeoutError:
            if self._handlers.get(channel) == (game_id, handler):
                del self._handlers[channel]
                await self._send_on_pubsub("UNSUBSCRIBE", channel)
            raise ConnectionError(
                f"Redis did not confirm the subscription to {channel.decode()!r}"
            ) from None
        finally:
            waiters = self._waiters.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(channel, None)

    def on_resubscribe(self, handler: ResubscribeHandler) -> None:
        self._on_resubscribe = handler

    async def unsubscribe(self, game_id: str) -> None:
        channel = self._channel(game_id)
        if self._handlers.pop(channel, None) is not None:
            await self._send_on_pubsub("UNSUBSCRIBE", channel)

    async def _send_on_pubsub(self, command: str, channel: bytes) -> None:
        """Send (UN)SUBSCRIBE if the pub/sub connection is up.

        When it is down, the reader's reconnect subscribes exactly the registered
        handlers, so there is nothing to do. The lock keeps the reader from replacing
        the connection mid-send, and redis-py from reviving one the reader dropped.
        """
        async with self._pubsub_lock:
            pubsub = self._pubsub
            connection = pubsub.connection if pubsub is not None else None
            if pubsub is None or connection is None or not connection.is_connected:
                return
            try:
                if command == "SUBSCRIBE":
                    await pubsub.subscribe(channel)
                else:
                    await pubsub.unsubscribe(channel)
            except Exception as exc:
                # The connection broke under us: the reader notices and resubscribes.
                log.debug("%s on node %s failed: %r", command, self.node_id, exc)

    async def _connect_pubsub(self) -> PubSub:
        pubsub = self._sub_redis.pubsub()
        try:
            await pubsub.connect()
            if self._handlers:
                await pubsub.subscribe(*self._handlers)
        except BaseException:
            await self._close_pubsub(pubsub)
            raise
        self._last_read = asyncio.get_running_loop().time()
        return pubsub

    @staticmethod
    async def _close_pubsub(pubsub: PubSub) -> None:
        # It is usually broken already; whatever closing it raises changes nothing.
        with contextlib.suppress(Exception):
            await pubsub.aclose()

    async def _read_loop(self) -> None:
        delay = 0.05
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                try:
                    async with self._pubsub_lock:
                        self._pubsub = await self._connect_pubsub()
                except (RedisError, OSError) as exc:
                    log.warning("Redis reconnect failed (%r); retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_RECONNECT_DELAY)
                    continue
                self.reconnects += 1
                delay = 0.05
                log.warning(
                    "Redis pub/sub of node %s reconnected; resubscribed to %d games",
                    self.node_id,
                    len(self._handlers),
                )
                games = [game_id for game_id, _ in self._handlers.values() if game_id]
                if self._on_resubscribe is not None and games:
                    # Beside the reader: catching up reads the store, and messages
                    # arriving meanwhile are ordered by version on the server's side.
                    self._catch_up = asyncio.create_task(self._report_resubscribed(games))
                continue
            try:
                message = await pubsub.get_message(timeout=None)
            except Exception as exc:
                # Handlers' errors never get here, so this connection is broken (a
                # concurrent failed send can even leave redis-py's reader unset).
                log.warning("Redis pub/sub of node %s lost (%r); reconnecting", self.node_id, exc)
                async with self._pubsub_lock:
                    self._pubsub = None
                    await self._close_pubsub(pubsub)
                continue
            self._last_read = asyncio.get_running_loop().time()
            if message is not None:
                await self._dispatch(message)

    async def _report_resubscribed(self, games: list[str]) -> None:
        assert self._on_resubscribe is not None
        try:
            result = self._on_resubscribe(games)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("catching up after the reconnect of node %s failed", self.node_id)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "message":
            entry = self._handlers.get(channel)
            if entry is None:  # unsubscribed while the message was on its way
                return
            game_id, handler = entry
            try:
                result = handler(game_id, message["data"])
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("message handler of game %s failed", game_id)
        elif kind == "subscribe":
            for waiter in self._waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)

    # -- locks -------------------------------------------------------------------------

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        taken = bool(await self._take_lock(keys=[self._lock_key(key)], args=[self._token, ttl_ms]))
        if taken:
            self._held_locks.add(key)
        return taken

    async def unlock(self, key: str) -> None:
        self._held_locks.discard(key)
        await self._release_lock(keys=[self._lock_key(key)], args=[self._token])

    # -- presence ----------------------------------------------------------------------

    async def put_presence(self, game_id: str, presence: Presence) -> None:
        if presence.is_empty():
            self._presence.pop(game_id, None)
            encoded = b""
        else:
            self._presence[game_id] = presence
            encoded = msgspec.json.encode(presence)
        await self._put_presence(
            keys=[self._presence_prefix + game_id, self._games_key],
            args=[self.node_id, game_id, encoded],
        )

    async def get_presence(self, game_id: str) -> Presence:
        entries = await self._redis.hgetall(self._presence_prefix + game_id)
        live = await self._live_nodes([str_if_bytes(node) for node in entries])
        return _sum(raw for node, raw in entries.items() if str_if_bytes(node) in live)

    async def note_seat_left(self, game_id: str, seat: str, at_ms: int) -> None:
        key = f"{self.prefix}:left:{game_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, seat, at_ms)
            pipe.expire(key, SEAT_LEFT_TTL_SECONDS)
            await pipe.execute()

    async def seats_left_at(self, game_id: str) -> dict[str, int]:
        entries = await self._redis.hgetall(f"{self.prefix}:left:{game_id}")
        return {str_if_bytes(seat): int(at) for seat, at in entries.items()}

    async def all_presence(self) -> dict[str, Presence]:
        client = self._redis
        nodes = [str_if_bytes(node) for node in await client.smembers(self._nodes_key)]
        live = sorted(await self._live_nodes(nodes))
        if not live:
            return {}
        games = sorted(
            str_if_bytes(game)
            for game in await client.sunion([self._node_key(node, "games") for node in live])
        )
        async with client.pipeline(transaction=False) as pipe:
            for game_id in games:
                pipe.hmget(self._presence_prefix + game_id, live)
            rows = await pipe.execute()
        totals = {game_id: _sum(row) for game_id, row in zip(games, rows, strict=True)}
        return {game_id: total for game_id, total in totals.items() if not total.is_empty()}

    async def _live_nodes(self, nodes: list[str]) -> set[str]:
        """The nodes whose heartbeat is current; the others are reaped on the way."""
        if not nodes:
            return set()
        beats = await self._redis.mget([self._node_key(node, "alive") for node in nodes])
        live = {node for node, beat in zip(nodes, beats, strict=True) if beat is not None}
        for node in nodes:
            if node not in live and await self._reap(node):
                log.info("removed the presence of dead node %s", node)
        return live

    async def _reap(self, node_id: str) -> bool:
        return bool(
            await self._reap_node(
                keys=[
                    self._node_key(node_id, "alive"),
                    self._node_key(node_id, "games"),
                    self._nodes_key,
                ],
                args=[node_id, self._presence_prefix],
            )
        )

    # -- heartbeat ---------------------------------------------------------------------

    async def _register_node(self) -> None:
        client = self._redis
        await client.set(self._alive_key, b"1", px=self._heartbeat_ttl_ms)
        await client.sadd(self._nodes_key, self.node_id)

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            # Checked first: a hung heartbeat command must not delay it.
            await self._check_pubsub(loop.time())
            try:
                async with asyncio.timeout(self._heartbeat_interval):
                    await self._beat()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("Redis heartbeat of node %s failed: %r", self.node_id, exc)

    async def _check_pubsub(self, now: float) -> None:
        """Ping the pub/sub connection; drop it if nothing came back for a whole TTL.

        That catches a connection that died without being closed (the peer host gone):
        closing it wakes the reader, which reconnects.
        """
        async with self._pubsub_lock:
            pubsub = self._pubsub
            connection = pubsub.connection if pubsub is not None else None
            if pubsub is None or connection is None or not connection.is_connected:
                return
            if now - self._last_read > self._heartbeat_ttl_ms / 1000:
                log.warning("Redis pub/sub of node %s is silent; reconnecting", self.node_id)
                await connection.disconnect(nowait=True)
                return
            with contextlib.suppress(RedisError, OSError):
                await pubsub.ping()

    async def _beat(self) -> None:
        client = self._redis
        if await client.set(self._alive_key, b"1", px=self._heartbeat_ttl_ms, xx=True):
            return
        # The heartbeat had lapsed (Redis unreachable for a whole TTL, or restarted):
        # other nodes may have reaped this one, so write everything again.
        log.warning("heartbeat of node %s had lapsed; registering again", self.node_id)
        await self._register_node()
        for game_id, presence in list(self._presence.items()):
            await self.put_presence(game_id, presence)
