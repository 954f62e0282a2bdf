"""The four scenarios, each run the same way against gamesocket and the reference.

A scenario gets a running server (`ServerProcess`) and a `Lobby` for it and returns a
JSON-ready dict. It knows nothing of the server's internals: only PROTOCOL.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import chess
import msgspec
from websockets.asyncio.client import ClientConnection

from bench.client import (
    SEATS,
    Lobby,
    decode,
    open_player,
    open_socket,
    percentiles,
    read_until,
    ws_url,
)
from bench.targets import ServerProcess
from bench.workers import SpectatorPool

T = TypeVar("T")
SETUP_CONCURRENCY = 32
# A tic-tac-toe game that uses all nine cells and ends drawn (board_full): the most
# moves per game set up. x plays the even plies.
DRAWN_TICTACTOE = (0, 1, 2, 4, 3, 5, 7, 6, 8)
# A connect4 game that fills all 42 cells with no four in a row (columns 0-6, red
# plays the even plies): the longest game there is, one fixed line for every target.
DRAWN_CONNECT4 = tuple(int(c) for c in "416210144241363310466123232265505465550030")
LINES = {"tictactoe": DRAWN_TICTACTOE, "connect4": DRAWN_CONNECT4}
_encode = msgspec.json.Encoder().encode


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the jobs, at most `limit` at once; the first failure cancels the rest (and is
    raised once they have stopped, so nothing keeps running behind the caller's back)."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(job)) for job in jobs]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def chess_line(plies: int, seed: int = 7) -> list[str]:
    """A legal line of `plies` UCI moves that never ends the game (no mate, no draw
    claim), so a spectated game lasts as long as the scenario needs."""
    board, rng, line = chess.Board(), random.Random(seed), []
    for _ in range(plies):
        moves = list(board.legal_moves)
        rng.shuffle(moves)
        for move in moves:
            board.push(move)
            if not board.is_game_over(claim_draw=True):
                break
            board.pop()
        else:
            raise RuntimeError("no move keeps the game going; pick another seed")
        line.append(board.peek().uci())
    return line


async def _two_player_game(
    lobby: Lobby, server: ServerProcess, game_type: str, seats: tuple[str, str]
) -> tuple[str, dict[str, ClientConnection]]:
    """A human-vs-human game with both players' sockets open: (game_id, seat -> socket)."""
    first, second = await lobby.guest(), await lobby.guest()
    game_id = await lobby.create_game(first, game_type, {seats[0]: "me"}, {})
    await lobby.join(second, game_id, seats[1])
    sockets: dict[str, ClientConnection] = {}
    try:
        for token in (first, second):  # in seat order: the reference seats by arrival
            ws, seat, _ = await open_player(ws_url(server.ws_url, game_type, game_id, token))
            sockets[seat] = ws
        if set(sockets) != set(seats):
            raise RuntimeError(f"players got seats {sorted(sockets)}, expected {seats}")
    except BaseException:
        await _close_all(sockets.values())
        raise
    return game_id, sockets


async def _close_all(sockets: Iterable[ClientConnection]) -> None:
    async def one(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)

    await asyncio.gather(*(one(ws) for ws in sockets))


# -- 1. connections held ------------------------------------------------------------------
async def connections(
    server: ServerProcess, lobby: Lobby, steps: list[int], workers: int, per_game: int = 100,
    game_type: str = "chess",
) -> dict[str, Any]:  # fmt: skip
    """Idle spectator sockets, N at a time; server RSS per socket at each step.

    Sockets are spread over games of `per_game` so presence notices stay bounded."""
    token = await lobby.guest()
    n_games = math.ceil(max(steps) / per_game)
    games = await gather_bounded(
        [lambda: lobby.create_game(token, game_type, {}, {})] * n_games, SETUP_CONCURRENCY
    )
    urls = [ws_url(server.ws_url, game_type, games[i // per_game]) for i in range(max(steps))]
    await asyncio.sleep(1.0)
    baseline = server.rss_kib()
    points, opened = [], 0
    with SpectatorPool(workers) as pool:
        for step in steps:
            started = time.monotonic()
            reply = await asyncio.to_thread(pool.connect, urls[opened:step])
            seconds = time.monotonic() - started
            opened = step
            await asyncio.sleep(2.0)  # let the server settle before reading its memory
            rss = server.rss_kib()
            seen = await asyncio.to_thread(pool.collect, 0, 0.0)
            points.append(connections_point(step, reply, seen, seconds, rss, baseline))
    return {"baseline_rss_kib": baseline, "games": n_games, "points": points}


def connections_point(
    step: int, reply: dict[str, Any], seen: dict[str, Any], seconds: float, rss: int,
    baseline: int,
) -> dict[str, Any]:  # fmt: skip
    """One step of the connections scenario: sockets open and server RSS per socket."""
    open_now = seen["sockets"] - seen["closed"]
    return {
        "n": step, "open": open_now, "failed": reply["failed"], "errors": reply["errors"],
        "connect_seconds": round(seconds, 2), "rss_kib": rss,
        "kib_per_connection": round((rss - baseline) / max(open_now, 1), 2),
    }  # fmt: skip


# -- 2. fan-out -----------------------------------------------------------------------------
@dataclass
class _MoverLog:
    expected: int  # moves that will be sent
    sent_ns: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)  # move id -> version
    update_bytes: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # all acked, or a socket ended


async def _drain_player(ws: ClientConnection, log: _MoverLog) -> None:
    try:
        async for raw in ws:
            message = decode(raw)
            if message.type == "ack" and message.ref is not None and message.version is not None:
                log.acked[message.ref] = message.version
                if len(log.acked) >= log.expected:
                    log.done.set()
            elif message.type == "update":
                log.update_bytes.append(len(raw))
            elif message.type == "error":
                raise RuntimeError(f"move refused: {message.code}: {message.message}")
    finally:
        log.done.set()


def fanout_line(game_type: str, moves: int) -> list[str] | list[int]:
    """The moves a fan-out run plays: a chess line that never ends, or the drawn
    connect4 game (at most its 42 moves)."""
    if game_type == "connect4":
        return list(DRAWN_CONNECT4[:moves])
    return chess_line(moves)


async def fanout(
    server: ServerProcess, lobby: Lobby, n_spectators: int, moves: int, interval: float,
    workers: int, game_type: str = "chess",
) -> dict[str, Any]:  # fmt: skip
    """One game, N spectators, a move every `interval` s; send -> arrival latency."""
    seats = SEATS[game_type]
    line = fanout_line(game_type, moves)
    game_id, players = await _two_player_game(lobby, server, game_type, seats)
    log = _MoverLog(expected=len(line))
    drains = [asyncio.create_task(_drain_player(ws, log)) for ws in players.values()]
    try:
        with SpectatorPool(workers) as pool:
            started = time.monotonic()
            reply = await asyncio.to_thread(
                pool.connect, [ws_url(server.ws_url, game_type, game_id)] * n_spectators
            )
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(0.5)
            cpu_before = await asyncio.to_thread(pool.collect, 0, 0.0)
            server_cpu = server.cpu_seconds()
            begin = time.monotonic()
            for ply, move in enumerate(line):
                await asyncio.sleep(max(0.0, begin + ply * interval - time.monotonic()))
                move_id = f"m{ply}"
                log.sent_ns[move_id] = time.monotonic_ns()
                await players[seats[ply % 2]].send(
                    _encode({"type": "move", "id": move_id, "move": move})
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(log.done.wait(), 30)
            last_version = max(log.acked.values(), default=0)
            seen = await asyncio.to_thread(pool.collect, last_version, 30.0)
            window = time.monotonic() - begin
            server_cpu = server.cpu_seconds() - server_cpu
    finally:
        await _close_all(players.values())
        await asyncio.gather(*drains, return_exceptions=True)
    sent = {version: log.sent_ns[move_id] for move_id, version in log.acked.items()}
    run = FanoutRun(n_spectators, len(line), interval, reply, connect_seconds, window, server_cpu)
    return {
        **fanout_figures(run, sent, seen, cpu_before),
        "update_bytes_mean": round(sum(log.update_bytes) / max(len(log.update_bytes), 1)),
    }


@dataclass
class FanoutRun:
    """What a fan-out run measured besides the arrivals."""

    n: int  # spectators asked for
    moves: int  # moves sent
    interval: float  # seconds between moves
    connect: dict[str, Any]  # the pool's `connect` reply
    connect_seconds: float
    window: float  # first move sent -> every spectator collected
    server_cpu: float  # server CPU seconds over `window`


def fanout_figures(
    run: FanoutRun, sent_ns: dict[int, int], seen: dict[str, Any], cpu_before: dict[str, Any]
) -> dict[str, Any]:
    """The fan-out result from the send time of each acked version and what the
    spectators' workers collected (any target, any worker kind)."""
    samples = [
        arrived - sent_ns[version]
        for version in sent_ns
        for arrived in seen["arrivals"].get(version, [])
    ]
    worker_cpu = [
        after - before
        for after, before in zip(
            seen["worker_cpu_seconds"], cpu_before["worker_cpu_seconds"], strict=True
        )
    ]
    nominal = (run.moves - 1) * run.interval  # first send -> last send, at the set pace
    return {
        "n": run.n, "open": run.connect["open"], "failed": run.connect["failed"],
        "errors": run.connect["errors"], "connect_seconds": round(run.connect_seconds, 2),
        "moves_sent": run.moves, "moves_acked": len(sent_ns),
        "deliveries": len(samples), "deliveries_expected": len(sent_ns) * run.n,
        "spectators_complete": seen["complete"], "gaps": seen["gaps"],
        "resyncs": seen["resyncs"], "closed": seen["closed"],
        # The move phase, against its nominal length (a slow server or client stretches
        # it); busy share of one core over it: server, and the busiest client worker.
        "window_seconds": round(run.window, 2),
        "nominal_seconds": round(nominal, 2),
        "window_over_nominal": round(run.window / nominal, 2) if nominal else None,
        "server_cpu_share": round(run.server_cpu / run.window, 2),
        "server_cpu_us_per_delivery": (
            round(run.server_cpu * 1e6 / len(samples), 2) if samples else None
        ),
        "max_worker_cpu_share": round(max(worker_cpu) / run.window, 2),
        "latency": percentiles(samples),
    }  # fmt: skip


# -- 3. throughput --------------------------------------------------------------------------
async def _play_drawn_game(
    sockets: dict[str, ClientConnection], game_no: int, game_type: str
) -> list[int]:
    """Play the game type's drawn line as fast as acks return; each move's send->ack ns."""
    seats = SEATS[game_type]
    latencies = []
    for ply, cell in enumerate(LINES[game_type]):
        ws = sockets[seats[ply % 2]]
        move_id = f"g{game_no}p{ply}"
        sent = time.monotonic_ns()
        await ws.send(_encode({"type": "move", "id": move_id, "move": cell}))
        await read_until(ws, "ack", move_id)
        latencies.append(time.monotonic_ns() - sent)
    return latencies


async def throughput(
    server: ServerProcess, lobby: Lobby, games: int, rounds: int, game_type: str = "tictactoe"
) -> dict[str, Any]:
    """`games` games at once, `rounds` games in a row per slot, each the game type's
    drawn line; moves/s.

    Games are created and their sockets opened before the clock starts, so the figure
    is the move path: frame in, rules, store, publish, ack and update out."""
    setups: list[tuple[str, dict[str, ClientConnection]]] = []

    async def set_up() -> None:
        setups.append(await _two_player_game(lobby, server, game_type, SEATS[game_type]))

    async def play_slot(slot_no: int) -> list[int]:
        latencies = []
        for round_no, (_, sockets) in enumerate(slots[slot_no]):
            latencies += await _play_drawn_game(sockets, slot_no * rounds + round_no, game_type)
        return latencies

    try:
        started = time.monotonic()
        await gather_bounded([set_up] * (games * rounds), SETUP_CONCURRENCY)
        setup_seconds = time.monotonic() - started
        slots = [setups[i::games] for i in range(games)]
        began, client_cpu, server_cpu = time.monotonic(), time.process_time(), server.cpu_seconds()
        per_slot = await asyncio.gather(*(play_slot(i) for i in range(games)))
        elapsed = time.monotonic() - began
        client_cpu = time.process_time() - client_cpu
        server_cpu = server.cpu_seconds() - server_cpu
        # The seat that did not play the last move has not read past its own last ack.
        waiting = SEATS[game_type][len(LINES[game_type]) % 2]
        finished = await _count_finished([sockets[waiting] for _, sockets in setups])
    finally:
        await _close_all(ws for _, sockets in setups for ws in sockets.values())
    latencies = [ns for slot in per_slot for ns in slot]
    return throughput_figures(
        games * rounds, games, latencies, elapsed, setup_seconds, finished, server_cpu, client_cpu
    )


def throughput_figures(
    games: int, concurrent: int, latencies: list[int], elapsed: float, setup_seconds: float,
    finished: int | None, server_cpu: float, client_cpu: float,
) -> dict[str, Any]:  # fmt: skip
    """The throughput result (any target): moves/s, CPU per move, ack latency."""
    return {
        "games": games, "concurrent": concurrent, "moves": len(latencies),
        "seconds": round(elapsed, 3), "moves_per_s": round(len(latencies) / elapsed, 1),
        "setup_seconds": round(setup_seconds, 2), "games_finished": finished,
        # Busy share of one core while playing: near 1.0 means that side was the limit.
        "server_cpu_share": round(server_cpu / elapsed, 2),
        "server_cpu_us_per_move": (
            round(server_cpu * 1e6 / len(latencies), 2) if latencies else None
        ),
        "client_cpu_share": round(client_cpu / elapsed, 2),
        "ack_latency": percentiles(latencies),
    }  # fmt: skip


async def _count_finished(sockets: list[ClientConnection]) -> int | None:
    """Games whose last update says `finished` (None when the server never says so, as
    the rule-less reference does); `sockets` holds one player of each game that has not
    read its game's last update yet."""

    async def status(ws: ClientConnection) -> str | None:
        last = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    message = decode(await ws.recv())
                    if message.type == "update":
                        last = message.status
        return last

    statuses = await asyncio.gather(*(status(ws) for ws in sockets))
    finished = sum(s == "finished" for s in statuses)
    return finished if finished else None


# -- 4. loop health -------------------------------------------------------------------------
async def _ping_rtts(ws: ClientConnection, seconds: float, interval: float) -> list[int]:
    rtts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = time.monotonic_ns()
        await ws.send('{"type":"ping"}')
        await read_until(ws, "pong")
        rtts.append(time.monotonic_ns() - sent)
        await asyncio.sleep(interval)
    return rtts


async def _count_messages(ws: ClientConnection, counts: dict[str, int]) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            kind = decode(raw).type
            counts[kind] = counts.get(kind, 0) + 1


async def loop_health(
    server: ServerProcess, lobby: Lobby, searches: int, level: int, seconds: float,
    interval: float = 0.02, game_type: str = "chess",
) -> dict[str, Any]:  # fmt: skip
    """Ping RTT on a quiet game, first idle, then while `searches` AI-vs-AI games run."""
    token = await lobby.guest()
    quiet = await lobby.create_game(token, game_type, {}, {})
    pinger = await open_socket(ws_url(server.ws_url, game_type, quiet))
    counts: dict[str, int] = {}
    watchers: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    try:
        await read_until(pinger, "state")
        idle = await _ping_rtts(pinger, seconds / 3, interval)
        for game_id in await lobby.start_searches(token, game_type, level, searches):
            watchers.append(await open_socket(ws_url(server.ws_url, game_type, game_id)))
        readers = [asyncio.create_task(_count_messages(ws, counts)) for ws in watchers]
        await asyncio.sleep(1.0)  # searches under way before measuring
        busy = await _ping_rtts(pinger, seconds, interval)
    finally:
        await _close_all([pinger, *watchers])
        await asyncio.gather(*readers, return_exceptions=True)
    return {
        "searches": searches, "level": level, "game_type": game_type, "seconds": seconds,
        "idle_ping": percentiles(idle), "busy_ping": percentiles(busy),
        "ai_updates_seen": counts.get("update", 0), "thinking_seen": counts.get("thinking", 0),
    }  # fmt: skip
