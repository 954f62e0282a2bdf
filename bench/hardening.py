"""`/health` latency while clients ask a real server for its heaviest reads.

Run: `python -m bench.hardening [--replay-plies 300] [--games 40] [--plies 200]`

It seeds a SQLite data dir through one `gamesocket serve` (a public chess game of
`--replay-plies` versions, `--games` public chess games of `--plies` each, all over REST),
then, for each scenario, starts a fresh server on that data dir (cold caches, as after a
restart) and measures `GET /health` from a separate process every 10 ms while:

- 30 anonymous sockets connect at once with `since=0` to the long game (and again with
  `since` 100 versions behind: a replay within the default budget of 128);
- 10 clients `GET /api/games?limit=200` at once (twice: cold caches, then warm).

It prints one JSON object: per scenario the /health p50/p99/max in ms, how long the load
took and what the clients got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.client import decode, percentiles
from bench.scenarios import chess_line, gather_bounded
from bench.targets import BENCH_SERVER_ENV, HOST, ServerProcess, free_port, gamesocket_command

PROBE_INTERVAL = 0.01  # seconds between two /health requests
SOCKETS = 30
LISTERS = 10
# The seeding plays thousands of moves as one user: no REST rate limits (where they exist).
NO_REST_LIMITS = {"GAMESOCKET_REST_RATE_LIMIT": "0", "GAMESOCKET_GUEST_RATE_LIMIT": "0"}


# -- the /health prober, in its own process so the load generator cannot slow it --------
def _probe(base_url: str, pipe: Connection) -> None:
    samples: list[int] = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        while not pipe.poll(PROBE_INTERVAL):
            started = time.perf_counter_ns()
            http.get("/health")
            samples.append(time.perf_counter_ns() - started)
    pipe.send(samples)


class Prober:
    def __init__(self, base_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_probe, args=(base_url, child), daemon=True)

    def __enter__(self) -> Prober:
        self._process.start()
        return self

    def stop(self) -> dict[str, float]:
        self._pipe.send("stop")
        samples: list[int] = self._pipe.recv()
        self._process.join(10)
        return percentiles(samples)

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            self._process.kill()


# -- seeding ---------------------------------------------------------------------------
def _server(data_dir: Path) -> ServerProcess:
    command = gamesocket_command()
    if command is None:
        raise RuntimeError("run from a gamesocket checkout")
    port = free_port()
    argv = [*command, "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
    return ServerProcess("gamesocket", argv, port, {**BENCH_SERVER_ENV, **NO_REST_LIMITS})


def _line(plies: int) -> list[str]:
    for seed in range(1, 200):
        try:
            return chess_line(plies, seed)
        except RuntimeError:
            continue
    raise RuntimeError(f"no seed gives a {plies}-ply game")


async def _play_game(http: httpx.AsyncClient, headers: dict[str, str], line: list[str]) -> str:
    body = {"game_type": "chess", "seats": {"white": "me", "black": "me"}}
    created = await http.post("/api/games", json=body, headers=headers)
    created.raise_for_status()
    game_id: str = created.json()["game_id"]
    for move in line:
        played = await http.post(
            f"/api/games/{game_id}/moves", json={"move": move}, headers=headers
        )
        played.raise_for_status()
    return game_id


async def seed(base_url: str, replay_plies: int, games: int, plies: int) -> str:
    """The long game's id; `games` more games of `plies` plies each."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        guest = (await http.post("/api/auth/guest")).json()
        headers = {"Authorization": f"Bearer {guest['access_token']}"}
        long_game = await _play_game(http, headers, _line(replay_plies))
        line = _line(plies)
        jobs = [lambda: _play_game(http, headers, line) for _ in range(games)]
        await gather_bounded(jobs, 8)
    return long_game


# -- the loads -------------------------------------------------------------------------
async def _replay_client(url: str, last_version: int) -> dict[str, int]:
    """Connect; count what arrives until the game's last version (or the close)."""
    got = {"update": 0, "state": 0, "closed": 0}
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        try:
            while True:
                message = decode(await asyncio.wait_for(ws.recv(), 60))
                got[message.type] = got.get(message.type, 0) + 1
                if message.type in ("update", "state") and message.version == last_version:
                    return got
        except websockets.ConnectionClosed as closed:
            got["closed"] = closed.rcvd.code if closed.rcvd else -1
    return got


def _sum(results: list[dict[str, int]]) -> dict[str, Any]:
    totals: dict[str, Any] = {"close_codes": {}}
    for result in results:
        for key, value in result.items():
            if key != "closed":
                totals[key] = totals.get(key, 0) + value
            elif value:
                totals["close_codes"][value] = totals["close_codes"].get(value, 0) + 1
    return totals


def replays(server: ServerProcess, game_id: str, since: int, last: int) -> Callable[[], Any]:
    url = f"{server.ws_url}/ws/chess/{game_id}?since={since}"

    async def load() -> dict[str, Any]:
        results = await asyncio.gather(*(_replay_client(url, last) for _ in range(SOCKETS)))
        return _sum(list(results))

    return load


def listings(server: ServerProcess, rounds: int) -> Callable[[], Any]:
    async def one(http: httpx.AsyncClient) -> int:
        reply = await http.get("/api/games", params={"limit": 200})
        reply.raise_for_status()
        return len(reply.json())

    async def load() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=120) as http:
            took = []
            for _ in range(rounds):
                started = time.monotonic()
                counts = await asyncio.gather(*(one(http) for _ in range(LISTERS)))
                took.append(round(time.monotonic() - started, 3))
        return {"games_listed": counts[0], "round_seconds": took}

    return load


async def measure(server: ServerProcess, load: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    with Prober(server.http_url) as prober:
        await asyncio.sleep(0.5)  # the prober is running
        started = time.monotonic()
        outcome = await load()
        seconds = round(time.monotonic() - started, 3)
        await asyncio.sleep(0.2)
        health = prober.stop()
    return {"health_ms": health, "load_seconds": seconds, "clients": outcome}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-hardening-"))
    try:
        with _server(data_dir) as server:
            started = time.monotonic()
            game_id = await seed(server.http_url, args.replay_plies, args.games, args.plies)
            seeded = round(time.monotonic() - started, 1)
        last, near = args.replay_plies, args.replay_plies - 100
        scenarios: dict[str, Callable[[ServerProcess], Callable[[], Any]]] = {
            "idle": lambda s: lambda: asyncio.sleep(2),
            f"{SOCKETS} sockets since=0": lambda s: replays(s, game_id, 0, last),
            f"{SOCKETS} sockets since={near}": lambda s: replays(s, game_id, near, last),
            f"{LISTERS} x GET /api/games?limit=200, cold then warm": lambda s: listings(s, 2),
        }
        results: dict[str, Any] = {"seed_seconds": seeded}
        for name, make in scenarios.items():
            with _server(data_dir) as server:
                results[name] = await measure(server, make(server))
        return results
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hardening", description=__doc__)
    parser.add_argument("--replay-plies", type=int, default=300)
    parser.add_argument("--games", type=int, default=40)
    parser.add_argument("--plies", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
