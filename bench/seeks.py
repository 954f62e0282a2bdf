"""Quick pairing under load: seekers arriving across two server processes.

    python -m bench.seeks [--seekers 1000] [--seconds 10] [--json out.json]

Two `gamesocket serve` processes on one throwaway Postgres database and one Redis, as
behind a load balancer. Every seeker is a guest with a lobby socket open on its process
(the one it seeks on, alternating); the seekers arrive evenly over `seconds`, all in
one pool (chess, untimed, unrated: the most contention). A seeker's pairing latency is
from sending its `POST /api/seeks` to learning its game: the answer itself for the
seeker who completes a pair, the lobby socket's `paired` message for the one who
waited. Afterwards every seek is read back: each must be paired, every game must hold
exactly the two users whose seeks name it, and no user may be in two games.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import msgspec
import websockets
from redis.asyncio import Redis

from bench.client import percentiles
from bench.cluster_fanout import REDIS_URL, servers
from bench.targets import postgres_database, raise_fd_limit


class Seeker:
    def __init__(self, base_url: str, ws_url: str, guest: dict[str, Any]) -> None:
        self.base_url, self.ws_url, self.guest = base_url, ws_url, guest
        self.seek_id: str | None = None
        self.game_id: str | None = None
        self.sent_ns = 0
        self.learned_ns = 0
        self.paired_messages = 0
        self.socket: Any = None
        self.learned = asyncio.Event()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.guest['access_token']}"}

    async def open_lobby(self) -> None:
        url = f"{self.ws_url}/ws/lobby?token={self.guest['access_token']}"
        self.socket = await websockets.connect(url, max_size=None, compression=None)

    async def listen(self) -> None:
        """Count `paired` messages; the first one of our seek ends the wait."""
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._read()

    async def _read(self) -> None:
        async for text in self.socket:
            message = msgspec.json.decode(text)
            if message.get("type") == "paired":
                self.paired_messages += 1
                self.learn(message["game_id"])

    async def seek(self, http: httpx.AsyncClient) -> None:
        self.sent_ns = time.monotonic_ns()
        reply = await http.post(
            f"{self.base_url}/api/seeks", json={"game_type": "chess"}, headers=self.headers
        )
        answer = reply.json()
        self.seek_id = answer["seek_id"]
        if answer["status"] == "paired":
            self.learn(answer["game_id"])

    def learn(self, game_id: str) -> None:
        if not self.learned_ns:
            self.learned_ns = time.monotonic_ns()
            self.game_id = game_id
            self.learned.set()


def client() -> httpx.AsyncClient:
    """No keep-alive: a pooled connection the server closes as a request goes out would
    fail that request, and a seek may not be resent blindly (it could pair twice)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    return httpx.AsyncClient(timeout=60, limits=limits)


async def guests(http: httpx.AsyncClient, base_url: str, count: int) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for start in range(0, count, 50):
        batch = [http.post(f"{base_url}/api/auth/guest") for _ in range(min(50, count - start))]
        made += [reply.json() for reply in await asyncio.gather(*batch)]
    return made


async def check(http: httpx.AsyncClient, seekers: list[Seeker]) -> dict[str, Any]:
    """Read every seek back and every game: pairings, doubles and strays."""
    statuses: Counter[str] = Counter()
    games: dict[str, list[str]] = {}
    for seeker in seekers:
        reply = await http.get(
            f"{seeker.base_url}/api/seeks/{seeker.seek_id}", headers=seeker.headers
        )
        stored = reply.json()
        statuses[stored["status"]] += 1
        if stored.get("game_id"):
            games.setdefault(stored["game_id"], []).append(seeker.guest["user_id"])
    mismatched = 0
    for game_id, users in games.items():
        snapshot = (await http.get(f"{seekers[0].base_url}/api/games/{game_id}")).json()
        seated = sorted(seat["user_id"] for seat in snapshot["seats"].values())
        mismatched += seated != sorted(users) or snapshot["status"] != "active"
    in_games = Counter(user for users in games.values() for user in users)
    return {
        "statuses": dict(statuses),
        "games": len(games),
        "games_not_of_two": sum(len(users) != 2 for users in games.values()),
        "games_seating_others": mismatched,
        "users_in_two_games": sum(count > 1 for count in in_games.values()),
        "seekers_told_twice": sum(s.paired_messages > 1 for s in seekers),
        "answer_disagrees": sum(
            1 for s in seekers if s.game_id is not None and s.game_id not in games
        ),
    }


async def arrive(http: httpx.AsyncClient, seekers: list[Seeker], seconds: float) -> None:
    """The seekers seek evenly spread over `seconds`; back once all know their games
    (or 30 s after the last arrival)."""
    start = time.monotonic()
    arrivals = []
    for index, seeker in enumerate(seekers):
        delay = start + index * seconds / len(seekers) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        arrivals.append(asyncio.create_task(seeker.seek(http)))
    await asyncio.gather(*arrivals)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.learned.wait() for s in seekers)), 30)


async def run(count: int, seconds: float) -> dict[str, Any]:
    raise_fd_limit()
    prefix = f"bench-seeks-{uuid.uuid4().hex[:8]}"
    async with postgres_database() as database_url:
        with servers(2, database_url, prefix) as started:
            # A client per phase: no keep-alive connection the server closed meanwhile.
            async with client() as http:
                made = await guests(http, started[0].http_url, count)
            seekers = [
                Seeker(started[i % 2].http_url, started[i % 2].ws_url, guest)
                for i, guest in enumerate(made)
            ]
            await asyncio.gather(*(s.open_lobby() for s in seekers))
            listeners = [asyncio.create_task(s.listen()) for s in seekers]
            await asyncio.sleep(1.0)  # every lobby socket past its first messages
            async with client() as http:
                await arrive(http, seekers, seconds)
            await asyncio.sleep(0.5)  # a second `paired` would show by now
            async with client() as http:
                verdict = await check(http, seekers)
            for task in listeners:
                task.cancel()
            await asyncio.gather(*(s.socket.close() for s in seekers), return_exceptions=True)
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    latencies = [s.learned_ns - s.sent_ns for s in seekers if s.learned_ns]
    return {
        "seekers": count,
        "seconds": seconds,
        "processes": 2,
        "paired_latency": percentiles(latencies),
        "unpaired": sum(1 for s in seekers if not s.learned_ns),
        **verdict,
    }


def double_pairings(result: dict[str, Any]) -> int:
    return int(
        result["games_not_of_two"]
        + result["games_seating_others"]
        + result["users_in_two_games"]
        + result["seekers_told_twice"]
        + result["answer_disagrees"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seekers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.seekers, args.seconds))
    latency = result["paired_latency"]
    print(
        f"{result['seekers']} seekers over {result['seconds']:g} s on 2 processes: "
        f"{result['games']} games; pairing latency p50 {latency['p50_ms']} ms, "
        f"p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms; "
        f"unpaired {result['unpaired']}; double pairings {double_pairings(result)}"
    )
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if double_pairings(result) == 0 and result["unpaired"] <= result["seekers"] % 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
