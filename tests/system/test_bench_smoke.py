"""The benchmark harness itself, at tiny sizes, against the reference server.

Real processes and sockets throughout: the reference server runs as a subprocess on a
free loopback port, spectators live in worker processes as in a real bench run.
"""

from __future__ import annotations

import asyncio
import json

import chess

from bench import clock_flags, report, scenarios
from bench.client import ReferenceLobby, open_player, percentiles, ws_url
from bench.targets import reference_server
from bench.workers import SpectatorPool


async def test_fanout_every_spectator_gets_every_update_in_order() -> None:
    with reference_server(update_bytes=600) as server:
        result = await scenarios.fanout(
            server, ReferenceLobby(), n_spectators=20, moves=5, interval=0.02, workers=2
        )
    assert result["open"] == 20 and result["failed"] == 0
    assert result["moves_acked"] == 5
    # Each of the 20 spectators saw versions base+1 .. base+5, consecutively.
    assert result["spectators_complete"] == 20
    assert result["gaps"] == 0 and result["resyncs"] == 0 and result["closed"] == 0
    assert result["deliveries"] == result["deliveries_expected"] == 100
    assert result["update_bytes_mean"] == 600
    latency = result["latency"]
    assert latency["count"] == 100
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert latency["max_ms"] < 1000


async def test_collect_waits_for_the_last_version_each_time() -> None:
    with reference_server() as server, SpectatorPool(2) as pool:
        url = ws_url(server.ws_url, "chess", "g1")
        player, _, _ = await open_player(ws_url(server.ws_url, "chess", "g1", "p1"))
        assert (await asyncio.to_thread(pool.connect, [url] * 6))["open"] == 6
        assert (await asyncio.to_thread(pool.collect, 0, 0.0))["complete"] == 6
        for move in ("e2e4", "e7e5", "g1f3"):
            await player.send(json.dumps({"type": "move", "move": move}))
        # Collected at once after sending: collect itself must wait for version 3.
        seen = await asyncio.to_thread(pool.collect, 3, 10.0)
        await player.close()
    assert seen["complete"] == 6
    assert sorted(seen["arrivals"]) == [1, 2, 3]
    assert all(len(times) == 6 for times in seen["arrivals"].values())


async def test_throughput_counts_every_acked_move() -> None:
    with reference_server() as server:
        result = await scenarios.throughput(server, ReferenceLobby(), games=4, rounds=2)
    assert result["games"] == 8
    assert result["moves"] == 8 * len(scenarios.DRAWN_TICTACTOE)
    assert result["moves_per_s"] > 0
    assert result["games_finished"] is None  # the reference has no rules to finish a game


async def test_connections_holds_idle_sockets_and_reads_server_memory() -> None:
    with reference_server() as server:
        result = await scenarios.connections(server, ReferenceLobby(), [10, 30], workers=2)
    assert [p["open"] for p in result["points"]] == [10, 30]
    assert result["baseline_rss_kib"] > 1000  # a Python process: megabytes, not zero
    assert all(p["rss_kib"] >= result["baseline_rss_kib"] // 2 for p in result["points"])


def test_drawn_tictactoe_line_is_a_full_board_draw() -> None:
    from games.tictactoe import TicTacToeState

    state = TicTacToeState.initial()
    for cell in scenarios.DRAWN_TICTACTOE:
        assert state.result is None
        state = state.apply(cell)
    assert state.result is not None
    assert state.result.winner is None and state.result.reason == "board_full"


def test_chess_line_is_legal_and_never_ends_the_game() -> None:
    line = scenarios.chess_line(120)
    board = chess.Board()
    for uci in line:
        move = chess.Move.from_uci(uci)
        assert move in board.legal_moves
        board.push(move)
        assert not board.is_game_over(claim_draw=True)
    assert len(line) == 120


def test_percentiles_nearest_rank_in_milliseconds() -> None:
    samples = [n * 1_000_000 for n in range(1, 101)]  # 1..100 ms
    assert percentiles(samples) == {
        "count": 100, "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0,
    }  # fmt: skip
    assert percentiles([])["count"] == 0


def test_summary_ratios_and_targets() -> None:
    fan = {
        "gamesocket": {"points": [{"n": 1000, "latency": {"p50_ms": 10.0, "p99_ms": 30.0}}]},
        "reference": {"points": [{"n": 1000, "latency": {"p50_ms": 8.0, "p99_ms": 15.0}}]},
    }
    throughput = {
        "gamesocket-sqlite": {"moves_per_s": 2500.0},
        "reference": {"moves_per_s": 5000.0},
    }
    rows = report.summarize({"fanout": fan, "throughput": throughput})
    p99 = next(r for r in rows if r["metric"] == "p99 ms, 1000 spectators")
    assert p99["ratio"] == 2.0 and p99["meets"] is False  # 2x the reference: over 1.5x
    moves = next(r for r in rows if r["scenario"] == "throughput")
    assert moves["ratio"] == 0.5 and moves["meets"] is True
    assert "| fanout | p99 ms, 1000 spectators | 30.0 | 15.0 | 2.0 |" in report.markdown_table(rows)


async def test_clock_flags_every_game_flags_on_time_at_a_tiny_size() -> None:
    result = await clock_flags.run(games=20, idle_seconds=0.5)
    flags = result["flags"]
    assert flags["flagged"] == 20 and flags["early"] == 0
    lateness = flags["lateness"]
    assert lateness["count"] == 20
    assert 0 <= lateness["p50_ms"] <= lateness["p99_ms"] <= lateness["max_ms"] < 1000
    idle = result["idle"]
    assert idle["seconds"] == 0.5 and 0 <= idle["cpu_timed_s"] < 0.5
    assert "flag lateness p99 (ms)" in clock_flags.table(result)
