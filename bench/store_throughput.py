"""Moves per second through each `GameStore`: memory, SQLite and Postgres, side by side.

N tic-tac-toe games between two signed-in players are played out move by move through
`commit_change`, all games at once (each game's moves in order), with real records built
from `TicTacToeState`; each move is committed as the player whose turn it is, so on
Postgres every commit runs as that user under RLS. The last column is the CPU time per
move of this process and, for a local Postgres, of its backends: on a machine that
other work keeps busy it moves far less than moves/s does.

    python -m bench.store_throughput --games 50 --moves 9
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from bench.targets import postgres_available, postgres_database
from games import TicTacToeState
from socket_server.store import Actor, EventRecord, GameRecord, GameStore, MemoryStore
from socket_server.store.postgres import PostgresStore
from socket_server.store.sqlite import SqliteStore

# A drawn game: all nine cells, nobody completes a line before the last move.
DRAWN_GAME = (0, 4, 8, 1, 7, 6, 2, 5, 3)


@dataclass
class Result:
    store: str
    moves: int
    seconds: float
    latencies: list[float]
    # CPU seconds spent while playing: this process, and the database server's backends
    # (None: not measurable, say a Postgres on another machine).
    cpu_seconds: float | None = None

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = self.moves / self.seconds
        timing = f"{self.seconds:>8.2f} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f}"
        cpu = "n/a" if self.cpu_seconds is None else f"{self.cpu_seconds / self.moves * 1e6:.0f}"
        return f"{self.store:<10} {self.moves:>7} {timing} {cpu:>11}"


# CPU seconds used so far by the database's processes, if they can be read (None: not).
DatabaseCpu = Callable[[], Awaitable[float | None]]


async def no_database_cpu() -> float:
    return 0.0  # an in-process store: its CPU is this process's


def postgres_cpu(url: str) -> DatabaseCpu:
    """The CPU time of the backends serving `url`'s database, read from /proc (a local
    PostgreSQL: None otherwise). Backends that start later count from zero."""

    async def used() -> float | None:
        conn = await asyncpg.connect(url)
        try:
            pids = await conn.fetch(
                "select pid from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        seconds = [process_cpu(pid) for (pid,) in pids]
        return None if None in seconds else sum(s for s in seconds if s is not None)

    return used


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) process `pid` of this machine used; None: not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def new_game(players: dict[str, Actor]) -> GameRecord:
    return GameRecord(
        game_id=str(uuid.uuid4()),
        game_type="tictactoe",
        status="active",
        seats={
            seat: {"kind": "human", "user_id": actor.user_id} for seat, actor in players.items()
        },
        state=TicTacToeState.initial().to_json(),
        version=0,
        turn=TicTacToeState.initial().turn,
    )


async def play_game(
    store: GameStore, game: GameRecord, players: dict[str, Actor], moves: int
) -> list[float]:
    """Commit `moves` moves of `game`, each as its player; the latency of each commit."""
    latencies = []
    state = TicTacToeState.initial()
    for cell in DRAWN_GAME[:moves]:
        seat = state.turn
        assert seat is not None
        state = state.apply(cell)
        game = replace(
            game,
            version=game.version + 1,
            state=state.to_json(),
            status="finished" if state.result else "active",
            turn=None if state.result else state.turn,
        )
        event = EventRecord(
            game_id=game.game_id,
            version=game.version,
            kind="move",
            seat=seat,
            move=cell,
            user_id=players[seat].user_id,
            request_id=f"m{game.version}",
        )
        started = time.perf_counter()
        await store.commit_change(game, event, players[seat])
        latencies.append(time.perf_counter() - started)
    return latencies


async def measure(
    name: str, store: GameStore, games: int, moves: int, database_cpu: DatabaseCpu = no_database_cpu
) -> Result:
    """Creates the games (not timed), then times playing them all at once."""
    await store.open()
    try:
        players = [
            {"x": Actor(user_id=str(uuid.uuid4())), "o": Actor(user_id=str(uuid.uuid4()))}
            for _ in range(games)
        ]
        records = [new_game(p) for p in players]
        for record in records:
            await store.create_game(record, Actor.SERVER)
        database_before, cpu_before = await database_cpu(), time.process_time()
        started = time.perf_counter()
        per_game = await asyncio.gather(
            *(play_game(store, r, p, moves) for r, p in zip(records, players, strict=True))
        )
        seconds = time.perf_counter() - started
        cpu, database_after = time.process_time() - cpu_before, await database_cpu()
        if database_before is None or database_after is None:
            cpu_seconds = None
        else:
            cpu_seconds = cpu + database_after - database_before
        latencies = [latency for game in per_game for latency in game]
        return Result(name, len(latencies), seconds, latencies, cpu_seconds)
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_file() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gamesocket-bench-") as folder:
        yield Path(folder) / "games.sqlite3"


async def run(games: int, moves: int, pool: int) -> list[Result]:
    results = [await measure("memory", MemoryStore(), games, moves)]
    async with sqlite_file() as path:
        results.append(await measure("sqlite", SqliteStore(path), games, moves))
    if await postgres_available():
        database: AbstractAsyncContextManager[str] = postgres_database()
        async with database as url:
            store = PostgresStore(url, max_connections=pool)
            results.append(await measure("postgres", store, games, moves, postgres_cpu(url)))
    else:
        print("PostgreSQL is not reachable: its row is left out")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=50, help="games played at once")
    parser.add_argument("--moves", type=int, default=9, choices=range(1, 10), help="per game")
    parser.add_argument("--pool", type=int, default=10, help="Postgres connections")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.games, args.moves, args.pool))
    print(f"{args.games} games x {args.moves} moves, all games at once")
    print(
        f"{'store':<10} {'moves':>7} {'seconds':>8} {'moves/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'cpu us/move':>11}"
    )
    for result in results:
        print(result.row())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
