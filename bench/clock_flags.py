"""How late the server's own clock timers make flags fall, and what idle clocks cost.

    python -m bench.clock_flags [--games 1000] [--idle-seconds 10] [--json]

One `gamesocket serve` process (real uvicorn, SQLite in a throwaway data dir):

1. Flags: `--games` tic-tac-toe games between two guests each (every other one on
   `{"per_move_ms": 1000}`, the rest on `{"initial_ms": 1000}`), created waiting, then
   joined over REST, which starts each game's clock. Nobody moves and no socket is open:
   every game must end by its flag. A flag's lateness is the stored timeout event's
   `at` minus the exact moment the clock ran out (the stored clock's start, `since_ms`,
   plus its 1000 ms), read from the SQLite file.
2. Idle CPU: the server's CPU time (user + system, /proc/<pid>/stat) over
   `--idle-seconds` with no clock running (baseline), then again with `--games` active
   games on a 60 s clock, nobody moving. Timers sit in the event loop's heap (no polling
   loop per game), so the second figure should stay close to the first.

Prints a small table (or the figures as JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.client import percentiles
from bench.scenarios import gather_bounded
from bench.targets import BENCH_SERVER_ENV, HOST, ServerProcess, free_port, gamesocket_command

FLAG_MS = 1000
LONG_CLOCK_MS = 60_000
CONCURRENCY = 32  # REST requests in flight while setting games up
FLAG_WAIT = 60.0  # seconds: the longest the flags may take to be stored
TARGET_P99_MS = 50.0


@contextmanager
def sqlite_server() -> Iterator[tuple[ServerProcess, Path]]:
    """`gamesocket serve` on a throwaway data dir: (the server, its SQLite file)."""
    command = gamesocket_command()
    if command is None:
        raise RuntimeError("the `gamesocket` command is not available in this checkout")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-clocks-"))
    port = free_port()
    argv = [*command, "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
    argv += ["--log-level", "warning"]
    try:
        with ServerProcess("gamesocket-clocks", argv, port, dict(BENCH_SERVER_ENV)) as server:
            yield server, data_dir / "gamesocket.sqlite3"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# -- setting games up ------------------------------------------------------------------
async def guest(http: httpx.AsyncClient) -> dict[str, str]:
    reply = await http.post("/api/auth/guest")
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def waiting_game(http: httpx.AsyncClient, clock: dict[str, int]) -> str:
    """A timed game with its creator in seat x: waiting, so no clock runs yet."""
    body = {"game_type": "tictactoe", "seats": {"x": "me"}, "clock": clock}
    reply = await http.post("/api/games", json=body, headers=await guest(http))
    reply.raise_for_status()
    return str(reply.json()["game_id"])


async def join(http: httpx.AsyncClient, game_id: str) -> None:
    """A second guest takes seat o: the game is active and x's clock runs."""
    reply = await http.post(f"/api/games/{game_id}/join", headers=await guest(http))
    reply.raise_for_status()
    assert reply.json()["clock"]["running"] == "x"


async def timed_games(base_url: str, clocks: list[dict[str, int]]) -> list[str]:
    """One game per clock, all created first, then all joined (their clocks start)."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        games = await gather_bounded(
            [partial(waiting_game, http, clock) for clock in clocks], CONCURRENCY
        )
        await gather_bounded([partial(join, http, game) for game in games], CONCURRENCY)
    return games


# -- reading the outcome from the store --------------------------------------------------
def timeouts(db_path: Path, games: list[str]) -> dict[str, tuple[int, float]]:
    """Per game with a stored timeout: (its clock's start in ms, the timeout's `at` in ms)."""
    wanted = set(games)
    query = (
        "SELECT g.game_id, g.clock, e.at FROM games g JOIN events e ON e.game_id = g.game_id"
        " WHERE e.kind = 'timeout'"
    )
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(query).fetchall()
    found = {}
    for game_id, clock, at in rows:
        if game_id in wanted:
            since = json.loads(clock)["since_ms"]
            found[game_id] = (int(since), datetime.fromisoformat(at).timestamp() * 1000)
    return found


async def wait_for_flags(db_path: Path, games: list[str]) -> dict[str, tuple[int, float]]:
    deadline = time.monotonic() + FLAG_WAIT
    while True:
        found = await asyncio.to_thread(timeouts, db_path, games)
        if len(found) == len(games) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def lateness_ns(found: dict[str, tuple[int, float]]) -> list[int]:
    """How long after its exact flag moment each timeout was stored (ns, for percentiles)."""
    return [int((at - (since + FLAG_MS)) * 1e6) for since, at in found.values()]


# -- the phases --------------------------------------------------------------------------
async def flags_phase(server: ServerProcess, db_path: Path, games: int) -> dict[str, Any]:
    clocks = [{"per_move_ms": FLAG_MS} if n % 2 else {"initial_ms": FLAG_MS} for n in range(games)]
    started = time.monotonic()
    ids = await timed_games(server.http_url, clocks)
    joined_s = time.monotonic() - started
    found = await wait_for_flags(db_path, ids)
    late = lateness_ns(found)
    return {
        "games": games,
        "setup_s": round(joined_s, 2),
        "flagged": len(found),
        "early": sum(1 for n in late if n < 0),
        "lateness": percentiles([max(0, n) for n in late]),
    }


async def idle_cpu(server: ServerProcess, seconds: float) -> float:
    """The server's CPU seconds over `seconds` of wall time."""
    before = server.cpu_seconds()
    await asyncio.sleep(seconds)
    return server.cpu_seconds() - before


async def idle_phase(server: ServerProcess, games: int, seconds: float) -> dict[str, Any]:
    baseline = await idle_cpu(server, seconds)
    await timed_games(server.http_url, [{"initial_ms": LONG_CLOCK_MS}] * games)
    await asyncio.sleep(1.0)  # let the set-up's work settle
    timed = await idle_cpu(server, seconds)
    return {
        "seconds": seconds,
        "cpu_baseline_s": round(baseline, 3),
        "cpu_timed_s": round(timed, 3),
    }


async def run(games: int = 1000, idle_seconds: float = 10.0) -> dict[str, Any]:
    with sqlite_server() as (server, db_path):
        flags = await flags_phase(server, db_path, games)
        idle = await idle_phase(server, games, idle_seconds)
    return {"flags": flags, "idle": idle}


# -- output ------------------------------------------------------------------------------
def table(result: dict[str, Any]) -> str:
    flags, idle, late = result["flags"], result["idle"], result["flags"]["lateness"]
    seconds, games = idle["seconds"], flags["games"]
    figures = [
        ("flag lateness p50 (ms)", f"{late['p50_ms']:.1f}"),
        ("flag lateness p99 (ms)", f"{late['p99_ms']:.1f}"),
        ("flag lateness max (ms)", f"{late['max_ms']:.1f}"),
        (f"p99 within {TARGET_P99_MS:g} ms", "yes" if late["p99_ms"] <= TARGET_P99_MS else "NO"),
        (f"server CPU over {seconds:g} s, no clock running (s)", f"{idle['cpu_baseline_s']:.3f}"),
        (
            f"server CPU over {seconds:g} s, {games} clocks running (s)",
            f"{idle['cpu_timed_s']:.3f}",
        ),
    ]
    width = max(len(label) for label, _ in figures)
    rows = [
        f"clock flags: {games} timed games on one server process (SQLite)",
        f"games set up and joined in {flags['setup_s']} s; flags stored: {flags['flagged']}"
        f" of {games}, early: {flags['early']}",
        "",
        f"| {'figure'.ljust(width)} | {'value':>8} |",
        f"|{'-' * (width + 2)}|{'-' * 10}|",
    ]
    rows += [f"| {label.ljust(width)} | {value:>8} |" for label, value in figures]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clock_flags", description=__doc__)
    parser.add_argument("--games", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.games, args.idle_seconds))
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if result["flags"]["flagged"] == args.games else 1


if __name__ == "__main__":
    sys.exit(main())
