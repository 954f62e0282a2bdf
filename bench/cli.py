"""`python -m bench`: run the scenarios against gamesocket and the reference, then report.

Every (scenario, target) pair gets a fresh server process, so one scenario's leftovers
never skew the next and a single scenario can be rerun alone:

    python -m bench --scenarios fanout --spectators 1000 --targets gamesocket
    python -m bench --quick                       # a small smoke run of everything
    python -m bench --peers                       # connect4 beside Colyseus, boardgame.io
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import peer_scenarios, report, scenarios
from bench.client import Lobby, ReferenceLobby, RestLobby
from bench.node_peers import PEERS, peer_server
from bench.targets import (
    ServerProcess,
    gamesocket_command,
    gamesocket_server,
    migrate_command_available,
    postgres_available,
    postgres_database,
    raise_fd_limit,
    reference_server,
)

DEFAULT_SCENARIOS = ("connections", "fanout", "throughput", "loop")
# The connect4 scenarios run on every target, the Node peers included.
PEER_SCENARIOS = ("c4connections", "c4fanout", "c4throughput")
SCENARIOS = DEFAULT_SCENARIOS + PEER_SCENARIOS
PYTHON_TARGETS = ("gamesocket", "reference")
TARGETS = PYTHON_TARGETS + PEERS
# Used for the reference's padding when gamesocket's own update size was not measured
# in this run (about a mid-game chess snapshot).
DEFAULT_UPDATE_BYTES = 900
# Before each throughput run and each measurement of a connect4 scenario: the harness
# collects its garbage and the machine gets this long to finish winding down the run
# before (its processes exiting, their sockets closing), so no target starts its run
# while another's is still ending. (The fan-out sizes ran back to back until 7 December,
# gamesocket always first after boardgame.io's run at the size before.)
SETTLE_SECONDS = 3.0

Measurement = Coroutine[Any, Any, dict[str, Any]]
Scenario = Callable[[ServerProcess, Lobby], Measurement]
PeerScenario = Callable[[ServerProcess, str], Measurement]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part for part in text.split(",") if part]
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {allowed}")
        return names

    return parse


QUICK = {"connections": [200, 500], "spectators": [20, 100], "moves": 10, "games": 20,
         "rounds": 2, "searches": 2, "ai_level": 3, "loop_seconds": 3.0, "workers": 2}  # fmt: skip
# `--peers`: the side-by-side run of every target on the connect4 scenarios (~10 min).
PEER_RUN = {"targets": list(TARGETS), "scenarios": list(PEER_SCENARIOS), "connections": [5000],
            "spectators": [1000, 3000, 5000], "moves": 42, "games": 200,
            "repeats": 5}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=_names(SCENARIOS), default=list(DEFAULT_SCENARIOS))
    parser.add_argument("--targets", type=_names(TARGETS), default=list(PYTHON_TARGETS))
    parser.add_argument("--stores", type=_names(("sqlite", "postgres")),
                        default=["sqlite", "postgres"], help="stores for throughput")  # fmt: skip
    parser.add_argument("--connections", type=_ints, default=[1000, 5000, 10000],
                        help="idle socket counts, opened cumulatively")  # fmt: skip
    parser.add_argument("--spectators", type=_ints, default=[100, 1000, 5000])
    parser.add_argument("--moves", type=int, default=50, help="moves per fan-out run")
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--games", type=int, default=200, help="concurrent games (throughput)")
    parser.add_argument("--rounds", type=int, default=3, help="games in a row per slot")
    parser.add_argument("--repeats", type=int, default=1,
                        help="throughput scenarios: runs per target, interleaved; the median"
                        " run is reported")  # fmt: skip
    parser.add_argument("--searches", type=int, default=8, help="AI games during loop health")
    parser.add_argument("--ai-level", type=int, default=10)
    parser.add_argument("--loop-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3, help="spectator client processes")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--peers", action="store_true",
                        help="all four targets on the connect4 scenarios")  # fmt: skip
    known = parser.parse_known_args(argv)[0]
    if known.peers:
        parser.set_defaults(**PEER_RUN)
    if known.quick:
        parser.set_defaults(**QUICK)  # flags given explicitly still win
    return parser.parse_args(argv)


@contextlib.asynccontextmanager
async def _server(
    target: str, database_url: str | None, update_bytes: int, busy: int
) -> AsyncIterator[tuple[ServerProcess, Lobby]]:
    """A fresh server process for one measurement, and a lobby for it."""
    if target == "reference":
        with reference_server(update_bytes, busy) as server:
            yield server, ReferenceLobby(server.pid)
        return
    with gamesocket_server(database_url) as server:
        lobby = RestLobby(server.http_url)
        try:
            yield server, lobby
        finally:
            await lobby.aclose()


async def _settle() -> None:
    """What each measurement starts after (`SETTLE_SECONDS`)."""
    gc.collect()
    await asyncio.sleep(SETTLE_SECONDS)


async def _attempt(label: str, run: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run one measurement; an error is recorded and the run goes on."""
    print(f"[bench] {label} ...", flush=True)
    started = time.monotonic()
    try:
        result = await run()
    except Exception as error:
        traceback.print_exc()
        notes = getattr(error, "__notes__", [])
        return {"error": f"{type(error).__name__}: {error}", "notes": notes}
    print(f"[bench] {label} done in {time.monotonic() - started:.1f} s", flush=True)
    return result


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.notes: list[str] = []
        self.update_bytes = DEFAULT_UPDATE_BYTES
        self._targets = list(args.targets)
        if "gamesocket" in self._targets and gamesocket_command() is None:
            self.notes.append("socket_server/cli.py is not in this checkout: gamesocket skipped")
            self._targets.remove("gamesocket")

    def targets(self) -> list[str]:
        """The Python targets: the scenarios written against PROTOCOL.md."""
        return [t for t in self._targets if t in PYTHON_TARGETS]

    def all_targets(self) -> list[str]:
        return list(self._targets)

    def skip_peers(self, scenario: str) -> None:
        peers = [t for t in self._targets if t in PEERS]
        if peers:
            self.notes.append(f"{scenario} runs on gamesocket and the reference only, not {peers}")

    async def measure(
        self, label: str, target: str, scenario: Scenario, busy: int = 0,
        database_url: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        async def run() -> dict[str, Any]:
            async with _server(target, database_url, self.update_bytes, busy) as (server, lobby):
                try:
                    return await scenario(server, lobby)
                except Exception as error:
                    error.add_note(f"server exit code: {server.process and server.process.poll()}")
                    error.add_note(f"server log tail:\n{server.log_tail()}")
                    raise

        result: dict[str, Any] = await _attempt(f"{label} on {target}", run)
        return result

    async def connections(self) -> dict[str, Any]:
        a = self.args

        def scenario(server: ServerProcess, lobby: Lobby) -> Measurement:
            return scenarios.connections(server, lobby, a.connections, a.workers)

        return {t: await self.measure("connections", t, scenario) for t in self.targets()}

    async def fanout(self) -> dict[str, Any]:
        a = self.args
        results: dict[str, Any] = {target: {"points": []} for target in self.targets()}
        # Targets alternate at each size, so both see the machine in a similar state.
        for n in a.spectators:
            for target in results:

                def scenario(server: ServerProcess, lobby: Lobby, n: int = n) -> Measurement:
                    return scenarios.fanout(
                        server, lobby, n, a.moves, a.interval_ms / 1000, a.workers
                    )

                point = await self.measure(f"fanout N={n}", target, scenario)
                results[target]["points"].append({"n": n, **point})
                if target == "gamesocket" and point.get("update_bytes_mean"):
                    # The reference then pushes frames of the same size.
                    self.update_bytes = point["update_bytes_mean"]
        results["reference_update_bytes"] = self.update_bytes
        return results

    async def throughput(self) -> dict[str, Any]:
        """Every target (and store) once per repeat, in turn; the median run of each."""
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(self.args.repeats):
            for key, result in (await self._throughput_once()).items():
                runs.setdefault(key, []).append(result)
        return {key: report.median_run(kept) for key, kept in runs.items()}

    async def _throughput_once(self) -> dict[str, Any]:
        a = self.args

        def scenario(server: ServerProcess, lobby: Lobby) -> Measurement:
            return scenarios.throughput(server, lobby, a.games, a.rounds)

        results: dict[str, Any] = {}
        for target in self.targets():
            await _settle()
            if target == "reference":
                results["reference"] = await self.measure("throughput", target, scenario)
                continue
            for store in a.stores:
                label = f"throughput ({store})"
                if store == "sqlite":
                    results[f"gamesocket-{store}"] = await self.measure(label, target, scenario)
                    continue
                skipped = await self._postgres_missing()
                if skipped:
                    if skipped not in self.notes:  # once, however many repeats
                        self.notes.append(skipped)
                    results[f"gamesocket-{store}"] = {"skipped": skipped}
                    continue
                try:
                    async with postgres_database() as url:
                        results[f"gamesocket-{store}"] = await self.measure(
                            label, target, scenario, database_url=url
                        )
                except Exception as error:  # the database could not be set up
                    results[f"gamesocket-{store}"] = {"error": f"{type(error).__name__}: {error}"}
        return results

    @staticmethod
    async def _postgres_missing() -> str | None:
        if not await postgres_available():
            return "Postgres is not reachable at 127.0.0.1:5432: throughput on Postgres skipped"
        if not migrate_command_available():
            return "`gamesocket migrate --bootstrap-local` does not exist yet: Postgres skipped"
        return None

    async def loop(self) -> dict[str, Any]:
        a = self.args

        def scenario(server: ServerProcess, lobby: Lobby) -> Measurement:
            return scenarios.loop_health(server, lobby, a.searches, a.ai_level, a.loop_seconds)

        # gamesocket's search pool runs at most one search per core and queues the rest,
        # so the reference's stand-in is one CPU-bound process per core, not per search.
        busy = min(a.searches, os.cpu_count() or 1)
        return {t: await self.measure("loop", t, scenario, busy=busy) for t in self.targets()}

    async def measure_c4(
        self, label: str, target: str, scenario: Scenario, peer_scenario: PeerScenario
    ) -> dict[str, Any]:
        """A connect4 measurement: `scenario` on a Python target, `peer_scenario` on a
        Node peer (installed on first use), after `_settle`."""
        await _settle()
        if target in PYTHON_TARGETS:
            return await self.measure(label, target, scenario)

        async def run() -> dict[str, Any]:
            with peer_server(target) as server:
                try:
                    return await peer_scenario(server, target)
                except Exception as error:
                    error.add_note(f"server log tail:\n{server.log_tail()}")
                    raise

        result: dict[str, Any] = await _attempt(f"{label} on {target}", run)
        return result

    async def c4connections(self) -> dict[str, Any]:
        a = self.args

        def scenario(server: ServerProcess, lobby: Lobby) -> Measurement:
            return scenarios.connections(
                server, lobby, a.connections, a.workers, game_type="connect4"
            )

        def peer(server: ServerProcess, name: str) -> Measurement:
            return peer_scenarios.connections(server, name, a.connections, a.workers)

        return {
            t: await self.measure_c4("c4connections", t, scenario, peer) for t in self.all_targets()
        }

    async def c4fanout(self) -> dict[str, Any]:
        a = self.args
        results: dict[str, Any] = {target: {"points": []} for target in self.all_targets()}
        for n in a.spectators:  # targets alternate at each size, as in `fanout`
            for target in self.all_targets():

                def scenario(server: ServerProcess, lobby: Lobby, n: int = n) -> Measurement:
                    return scenarios.fanout(
                        server, lobby, n, a.moves, a.interval_ms / 1000, a.workers, "connect4"
                    )

                def peer(server: ServerProcess, name: str, n: int = n) -> Measurement:
                    return peer_scenarios.fanout(
                        server, name, n, a.moves, a.interval_ms / 1000, a.workers
                    )

                point = await self.measure_c4(f"c4fanout N={n}", target, scenario, peer)
                results[target]["points"].append({"n": n, **point})
                if target == "gamesocket" and point.get("update_bytes_mean"):
                    self.update_bytes = point["update_bytes_mean"]
        results["reference_update_bytes"] = self.update_bytes
        return results

    async def c4throughput(self) -> dict[str, Any]:
        a = self.args

        def scenario(server: ServerProcess, lobby: Lobby) -> Measurement:
            return scenarios.throughput(server, lobby, a.games, 1, game_type="connect4")

        def peer(server: ServerProcess, name: str) -> Measurement:
            return peer_scenarios.throughput(server, name, a.games, a.workers)

        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in self.all_targets()}
        for _ in range(a.repeats):  # the targets take turns, as in `throughput`
            for target, kept in runs.items():
                kept.append(await self.measure_c4("c4throughput", target, scenario, peer))
        return {target: report.median_run(kept) for target, kept in runs.items()}

    async def all(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name in SCENARIOS:
            if name in self.args.scenarios:
                if name in DEFAULT_SCENARIOS:
                    self.skip_peers(name)
                results[name] = await getattr(self, name)()
        return results


async def _run_cancellable(run: Run) -> dict[str, Any]:
    """SIGTERM cancels the run like Ctrl-C does, so every server and worker is stopped."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run.all()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = raise_fd_limit()
    needed = max([*args.connections, *args.spectators]) + 100
    run = Run(args)
    if fd_limit < needed:
        run.notes.append(f"RLIMIT_NOFILE is {fd_limit}: the largest sizes may fail")
    started, load_at_start = time.monotonic(), [round(x, 2) for x in os.getloadavg()]
    try:
        scenario_results = asyncio.run(_run_cancellable(run))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[bench] interrupted: servers and workers stopped, no results written")
        return 130
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {
        "machine": {
            **report.machine_info(),
            "loadavg_at_start": load_at_start,
            "rlimit_nofile": fd_limit,
        },
        "config": config,
        "seconds": round(time.monotonic() - started, 1),
        "notes": run.notes,
        "scenarios": scenario_results,
    }
    rows = report.summarize(scenario_results)
    result["summary"] = rows
    peer_rows = report.summarize_peers(scenario_results)
    result["peers_summary"] = peer_rows
    json_path, png_path = report.write(result, args.out)
    if rows:
        print(report.markdown_table(rows))
    if peer_rows:
        print(report.peers_table(peer_rows, run.all_targets()))
    for note in run.notes:
        print(f"note: {note}")
    print(f"[bench] results: {json_path}" + (f", plot: {png_path}" if png_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
