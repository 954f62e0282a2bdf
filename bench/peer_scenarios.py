"""The connect4 scenarios on a Node peer (Colyseus, boardgame.io).

The same measurements as `bench/scenarios.py` makes on gamesocket and the reference,
through the peer's own protocol and client library (`bench/node_peers.py`): the same
drawn connect4 line, the same pace, the same figures and result keys.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench.node_peers import NodePool, NodeWorker, open_games, race, split
from bench.scenarios import (
    DRAWN_CONNECT4,
    FanoutRun,
    connections_point,
    fanout_figures,
    throughput_figures,
)
from bench.targets import ServerProcess


async def connections(
    server: ServerProcess, peer: str, steps: list[int], workers: int, per_game: int = 100
) -> dict[str, Any]:
    """Idle spectator sockets over games of `per_game`; server RSS per socket per step."""
    with NodePool(peer, server.http_url, workers) as pool:
        n_games = math.ceil(max(steps) / per_game)
        games = await asyncio.to_thread(pool.games, n_games, 1)
        ids = [games[i // per_game] for i in range(max(steps))]
        await asyncio.sleep(1.0)
        baseline = server.rss_kib()
        points, opened = [], 0
        for step in steps:
            started = time.monotonic()
            reply = await asyncio.to_thread(pool.connect, ids[opened:step])
            seconds = time.monotonic() - started
            opened = step
            await asyncio.sleep(2.0)
            rss = server.rss_kib()
            seen = await asyncio.to_thread(pool.collect, 0, 0.0)
            points.append(connections_point(step, reply, seen, seconds, rss, baseline))
    return {"baseline_rss_kib": baseline, "games": n_games, "points": points}


async def fanout(
    server: ServerProcess, peer: str, n_spectators: int, moves: int, interval: float,
    workers: int,
) -> dict[str, Any]:  # fmt: skip
    """One connect4 game, N spectators, a move every `interval` s."""
    line = list(DRAWN_CONNECT4[:moves])
    with NodePool(peer, server.http_url, workers) as pool:
        (game_id,) = await asyncio.to_thread(pool.games, 1, 2)
        started = time.monotonic()
        reply = await asyncio.to_thread(pool.connect, [game_id] * n_spectators)
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(0.5)
        cpu_before = await asyncio.to_thread(pool.collect, 0, 0.0)
        server_cpu = server.cpu_seconds()
        begin = time.monotonic()
        command = {"cmd": "play", "line": line, "interval_ms": interval * 1000}
        played = await asyncio.to_thread(pool.players.call, command)
        sent = {int(version): int(ns) for version, ns in played["sent"]}
        seen = await asyncio.to_thread(pool.collect, max(sent, default=0), 30.0)
        window = time.monotonic() - begin
        server_cpu = server.cpu_seconds() - server_cpu
    run = FanoutRun(n_spectators, len(line), interval, reply, connect_seconds, window, server_cpu)
    return {**fanout_figures(run, sent, seen, cpu_before), "final_status": played["status"]}


async def throughput(server: ServerProcess, peer: str, games: int, workers: int) -> dict[str, Any]:
    """`games` connect4 games at once, each the drawn line, every move sent as soon as
    the previous one is acknowledged; the games are dealt over `workers` processes."""
    players = [NodeWorker(peer, server.http_url) for _ in range(workers)]
    try:
        started = time.monotonic()
        await asyncio.to_thread(open_games, players, split(games, workers))
        setup_seconds = time.monotonic() - started
        server_cpu = server.cpu_seconds()
        result = await asyncio.to_thread(race, players, list(DRAWN_CONNECT4))
        server_cpu = server.cpu_seconds() - server_cpu
    finally:
        for worker in players:
            worker.stop()
    return throughput_figures(
        games, games, result["latencies"], result["seconds"], setup_seconds, result["finished"],
        server_cpu, result["client_cpu_seconds"],
    )  # fmt: skip
