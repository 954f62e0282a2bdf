"""One move delivered to N spectators: one server process, against two behind Redis.

    python -m bench.cluster_fanout [--sizes 200,1000] [--moves 8] [--interval 0.3]

Three set-ups, each `gamesocket serve` subprocesses on one throwaway Postgres database:

- `1 process`: the single-process mode (in-memory fan-out, no Redis);
- `1 process + Redis`: the same process publishing through Redis and back, which
  isolates what the Redis round trip costs;
- `2 processes + Redis`: the spectators dealt evenly over two processes, as behind a
  load balancer; the players sit on the first, so half of every move's deliveries
  cross from one process to the other through Redis.

For each N a chess game gets N spectators (sockets held by `bench.workers`' worker
processes), then `moves` moves, one every `interval` seconds. A delivery's latency is
its arrival at a spectator minus the moment the player sent the move (CLOCK_MONOTONIC
is system-wide on Linux, so the two processes' clocks compare directly).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from bench.client import RestLobby, open_player, percentiles, read_until, ws_url
from bench.scenarios import chess_line
from bench.targets import (
    BENCH_SERVER_ENV,
    HOST,
    ServerProcess,
    free_port,
    gamesocket_command,
    postgres_database,
    raise_fd_limit,
)
from bench.workers import SpectatorPool

REDIS_URL = "redis://127.0.0.1:6379/0"
SETUPS = {"1 process": (1, False), "1 process + Redis": (1, True), "2 processes + Redis": (2, True)}
_encode = msgspec.json.Encoder().encode


@contextmanager
def servers(
    count: int, database_url: str, redis_prefix: str | None
) -> Iterator[list[ServerProcess]]:
    """`count` server processes on one database, sharing Redis when a prefix is given.

    They share a data dir, hence the guest-token secret, like one deployment.
    """
    command = gamesocket_command()
    if command is None:
        raise RuntimeError("run from a gamesocket checkout")
    data_dir = tempfile.mkdtemp(prefix="bench-cluster-")
    env = {**BENCH_SERVER_ENV, "DATABASE_URL": database_url}
    if redis_prefix is not None:
        env.update(REDIS_URL=REDIS_URL, GAMESOCKET_REDIS_PREFIX=redis_prefix)
    try:
        with ExitStack() as stack:
            started = []
            for index in range(count):
                port = free_port()
                argv = [*command, "serve", "--host", HOST, "--port", str(port)]
                argv += ["--data-dir", data_dir, "--log-level", "warning"]
                process = ServerProcess(f"gamesocket-{index}", argv, port, env)
                started.append(stack.enter_context(process))
            yield started
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def spread(urls_by_server: list[str], n: int, workers: int) -> list[str]:
    """N spectator URLs such that every worker holds an even share of every server.

    `SpectatorPool` deals URL i to worker i % workers, so the server changes every
    `workers` URLs.
    """
    return [urls_by_server[(i // workers) % len(urls_by_server)] for i in range(n)]


async def one_point(
    running: list[ServerProcess], n: int, moves: int, interval: float, workers: int
) -> dict[str, Any]:
    """A chess game on the first server, N spectators over all servers, `moves` moves."""
    first = running[0]
    lobby = RestLobby(first.http_url)
    try:
        white, black = await lobby.guest(), await lobby.guest()
        game_id = await lobby.create_game(white, "chess", {"white": "me"}, {})
        await lobby.join(black, game_id, "black")
    finally:
        await lobby.aclose()
    players = [
        (await open_player(ws_url(first.ws_url, "chess", game_id, token)))[0]
        for token in (white, black)
    ]
    sent_ns: dict[int, int] = {}  # version -> when its move was sent
    try:
        with SpectatorPool(workers) as pool:
            urls = [ws_url(server.ws_url, "chess", game_id) for server in running]
            opened = await asyncio.to_thread(pool.connect, spread(urls, n, workers))
            await asyncio.sleep(0.5)  # presence messages of the arrivals settle
            cpu_before = sum(server.cpu_seconds() for server in running)
            for ply, move in enumerate(chess_line(moves)):
                started = time.monotonic()
                player = players[ply % 2]
                sent = time.monotonic_ns()
                await player.send(_encode({"type": "move", "id": f"m{ply}", "move": move}))
                ack = await read_until(player, "ack", f"m{ply}")
                assert ack.version is not None
                sent_ns[ack.version] = sent
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
            seen = await asyncio.to_thread(pool.collect, max(sent_ns), 30.0)
            server_cpu = sum(server.cpu_seconds() for server in running) - cpu_before
    finally:
        for player in players:
            await player.close()
    samples = [
        arrived - sent_ns[version]
        for version, times in seen["arrivals"].items()
        if version in sent_ns
        for arrived in times
    ]
    expected = n * len(sent_ns)
    return {
        "n": n,
        "open": opened["open"],
        "failed": opened["failed"],
        "deliveries": len(samples),
        "deliveries_expected": expected,
        "spectators_complete": seen["complete"],
        "gaps": seen["gaps"],
        "resyncs": seen["resyncs"],
        "closed": seen["closed"],
        "server_cpu_us_per_delivery": round(server_cpu * 1e6 / max(len(samples), 1), 1),
        **percentiles(samples),
    }


async def run(sizes: list[int], moves: int, interval: float, workers: int) -> dict[str, Any]:
    raise_fd_limit()
    prefix = f"bench-cluster-{uuid.uuid4().hex[:12]}"
    results: dict[str, Any] = {}
    async with postgres_database() as url:
        try:
            for name, (count, redis) in SETUPS.items():
                with servers(count, url, prefix if redis else None) as running:
                    results[name] = [
                        await one_point(running, n, moves, interval, workers) for n in sizes
                    ]
                    for point in results[name]:
                        print(f"{name:<20} {row(point)}", flush=True)
        finally:
            admin = Redis.from_url(REDIS_URL)
            keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
            if keys:
                await admin.delete(*keys)
            await admin.aclose()
    return results


def row(point: dict[str, Any]) -> str:
    return (
        f"N={point['n']:<5} p50 {point['p50_ms']:7.1f} ms  p99 {point['p99_ms']:7.1f} ms"
        f"  max {point['max_ms']:7.1f} ms  delivered {point['deliveries']}/"
        f"{point['deliveries_expected']}  gaps {point['gaps']}  resyncs {point['resyncs']}"
        f"  server CPU {point['server_cpu_us_per_delivery']} us/delivery"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="spectator counts, comma-separated")
    parser.add_argument("--moves", type=int, default=8, help="moves per point")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between moves")
    parser.add_argument("--workers", type=int, default=2, help="spectator client processes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = asyncio.run(run(sizes, args.moves, args.interval, args.workers))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    incomplete = [
        (name, point["n"])
        for name, points in results.items()
        for point in points
        if point["deliveries"] != point["deliveries_expected"] or point["gaps"]
    ]
    if incomplete:
        print(f"incomplete deliveries: {incomplete}")
    return 1 if incomplete else 0


if __name__ == "__main__":
    raise SystemExit(main())
