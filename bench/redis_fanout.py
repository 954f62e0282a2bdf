"""Messages per second through the Redis broker: one publisher node, two subscriber nodes.

All three RedisBroker instances live in this process (each with its own connections,
as separate server processes would have); a message counts as delivered when both
subscribers' handlers have it. Each payload starts with its sequence number, so the
run also checks that every subscriber got every message once, in order.

    python -m bench.redis_fanout --messages 20000 --size 433

Modes: `sequential` awaits each publish (one game's updates, as the server sends
them); `concurrent` keeps `--window` publishes in flight (many games at once).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import time
import uuid

from redis.asyncio import Redis

from socket_server.fanout.redis import RedisBroker

SEQUENCE = struct.Struct(">Q")


class Subscriber:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.next = 0
        self.arrivals: list[float] = []
        self.done = asyncio.Event()

    def handler(self, game_id: str, data: bytes) -> None:
        (sequence,) = SEQUENCE.unpack_from(data)
        if sequence != self.next:
            raise AssertionError(f"expected message {self.next}, got {sequence}")
        self.next += 1
        self.arrivals.append(time.perf_counter())
        if self.next == self.expected:
            self.done.set()


async def run(url: str, mode: str, messages: int, size: int, window: int) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    nodes = [RedisBroker(url, prefix=prefix, node_id=f"n{i}") for i in range(3)]
    for node in nodes:
        await node.start()
    publisher = nodes[0]
    subscribers = [Subscriber(messages) for _ in nodes[1:]]
    try:
        for node, subscriber in zip(nodes[1:], subscribers, strict=True):
            await node.subscribe("game", subscriber.handler)
        padding = bytes(max(0, size - SEQUENCE.size))
        sent: list[float] = []
        start = time.perf_counter()
        if mode == "sequential":
            for i in range(messages):
                sent.append(time.perf_counter())
                await publisher.publish("game", SEQUENCE.pack(i) + padding)
        else:
            in_flight: set[asyncio.Task[None]] = set()
            for i in range(messages):
                if len(in_flight) >= window:
                    _, in_flight = await asyncio.wait(in_flight, return_when="FIRST_COMPLETED")
                sent.append(time.perf_counter())
                payload = SEQUENCE.pack(i) + padding
                in_flight.add(asyncio.create_task(publisher.publish("game", payload)))
            await asyncio.gather(*in_flight)
        async with asyncio.timeout(60):
            for subscriber in subscribers:
                await subscriber.done.wait()
        elapsed = time.perf_counter() - start
    finally:
        for node in nodes:
            await node.stop()
        admin = Redis.from_url(url)
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()
    latencies = sorted(
        (max(s.arrivals[i] for s in subscribers) - sent[i]) * 1000 for i in range(messages)
    )
    return {
        "messages_per_s": messages / elapsed,
        "deliveries_per_s": messages * len(subscribers) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=433, help="payload bytes")
    parser.add_argument("--window", type=int, default=64, help="publishes in flight")
    args = parser.parse_args()
    print(f"{args.messages} messages of {args.size} bytes, 1 publisher, 2 subscriber nodes")
    print(f"{'mode':<11} {'msg/s':>9} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for mode in ("sequential", "concurrent"):
        r = asyncio.run(run(args.url, mode, args.messages, args.size, args.window))
        print(
            f"{mode:<11} {r['messages_per_s']:>9.0f} {r['deliveries_per_s']:>9.0f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
        )


if __name__ == "__main__":
    main()
