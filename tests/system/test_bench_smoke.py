"""The benchmark harness itself, at tiny sizes, against the reference server.

Real processes and sockets throughout: the reference server runs as a subprocess on a
free loopback port, spectators live in worker processes as in a real bench run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import chess
import pytest

from bench import clock_flags, node_peers, report, scenarios
from bench.client import ReferenceLobby, open_player, percentiles, ws_url
from bench.targets import PROJECT_ROOT, reference_server
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


# -- the Node peers' pure parts (never installs them: no npm here) -------------------------
def test_drawn_connect4_line_fills_the_board_without_four_in_a_row() -> None:
    from games.connect4 import Connect4State

    state = Connect4State.initial()
    for column in scenarios.DRAWN_CONNECT4:
        assert state.result is None
        state = state.apply(column)
    assert len(scenarios.DRAWN_CONNECT4) == 42
    assert state.result is not None and state.result.winner is None
    assert scenarios.fanout_line("connect4", 50) == list(scenarios.DRAWN_CONNECT4)


def test_peers_connect4_rules_agree_with_the_game_on_a_win_and_the_drawn_line() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    # Red wins on column 0 on its fourth disc; the drawn line never wins.
    script = """
        import { COLUMNS, landingRow, wins } from './bench/peers/connect4.mjs';
        const play = (line) => {
          const cells = new Array(42).fill(0);
          for (let ply = 0; ply < line.length; ply++) {
            const row = landingRow(cells, line[ply]);
            if (row < 0) return `illegal at ${ply}`;
            cells[row * COLUMNS + line[ply]] = 1 + (ply % 2);
            if (wins(cells, row, line[ply])) return `win at ${ply}`;
          }
          return cells.every((cell) => cell !== 0) ? 'full' : 'open';
        };
        console.log(JSON.stringify([play([0, 1, 0, 1, 0, 1, 0]), play(LINE), play([7])]));
    """.replace("LINE", json.dumps(list(scenarios.DRAWN_CONNECT4)))
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == ["win at 6", "full", "illegal at 0"]


def test_peer_worker_replies_are_merged_like_the_python_pool() -> None:
    replies = [
        {"cpu_seconds": 1.5, "sockets": 3, "complete": 3, "gaps": 0, "resyncs": 0, "closed": 0,
         "arrivals": {"1": [10, 11], "2": [20]}},
        {"cpu_seconds": 0.5, "sockets": 2, "complete": 1, "gaps": 1, "resyncs": 0, "closed": 1,
         "arrivals": {"2": [21]}},
    ]  # fmt: skip
    merged = node_peers.merge_collects(replies)
    assert merged["arrivals"] == {1: [10, 11], 2: [20, 21]}
    assert (merged["sockets"], merged["complete"], merged["gaps"], merged["closed"]) == (5, 4, 1, 1)
    assert merged["worker_cpu_seconds"] == [1.5, 0.5]
    assert node_peers.read_reply(b'{"open": 2}\n') == {"open": 2}
    with pytest.raises(RuntimeError, match="peer worker failed: boom"):
        node_peers.read_reply(b'{"error": "boom"}')
    assert node_peers.split(200, 3) == [67, 67, 66]


def test_fanout_figures_count_deliveries_and_cpu_per_delivery() -> None:
    run = scenarios.FanoutRun(
        n=2, moves=3, interval=0.1, connect={"open": 2, "failed": 0, "errors": []},
        connect_seconds=0.5, window=0.4, server_cpu=0.012,
    )  # fmt: skip
    arrivals = {1: [1_000_000, 2_000_000], 2: [3_000_000], 3: [5_000_000, 6_000_000]}
    seen = {"arrivals": arrivals, "complete": 1, "gaps": 1, "resyncs": 0, "closed": 0,
            "worker_cpu_seconds": [1.2]}  # fmt: skip
    figures = scenarios.fanout_figures(
        run, {1: 0, 2: 0, 3: 4_000_000}, seen, {"worker_cpu_seconds": [1.0]}
    )
    assert figures["deliveries"] == 5 and figures["deliveries_expected"] == 6
    assert figures["server_cpu_us_per_delivery"] == 2400.0
    assert figures["window_over_nominal"] == 2.0  # 0.4 s for moves sent over 0.2 s
    assert figures["max_worker_cpu_share"] == 0.5
    assert figures["latency"]["max_ms"] == 3.0


def test_peers_summary_has_every_target_and_ratios_to_reference_and_colyseus() -> None:
    fan = {
        target: {"points": [{"n": 1000, "spectators_complete": complete, "latency": {"p99_ms": p99},
                             "server_cpu_us_per_delivery": cpu}]}
        for target, complete, p99, cpu in (
            ("gamesocket", 1000, 30.0, 20.0), ("reference", 1000, 15.0, 10.0),
            ("colyseus", 500, 60.0, 40.0), ("boardgameio", 1000, 90.0, 80.0),
        )
    }  # fmt: skip
    thr = {"gamesocket": {"moves_per_s": 3000.0}, "colyseus": {"moves_per_s": 1500.0}}
    rows = report.summarize_peers({"c4fanout": fan, "c4throughput": thr})
    p99 = next(r for r in rows if r["metric"] == "p99 ms, N=1000")
    assert p99["values"] == {"gamesocket": 30.0, "reference": 15.0, "colyseus": 60.0,
                             "boardgameio": 90.0}  # fmt: skip
    assert p99["ratios"]["gamesocket/reference"] == 2.0
    assert p99["ratios"]["gamesocket/colyseus"] == 0.5
    assert p99["ratios"]["boardgameio/colyseus"] == 1.5
    complete = next(r for r in rows if r["metric"] == "spectators complete (share), N=1000")
    assert complete["values"]["colyseus"] == 0.5
    moves = next(r for r in rows if r["metric"] == "moves/s")
    assert moves["ratios"]["gamesocket/colyseus"] == 2.0
    assert moves["ratios"]["gamesocket/reference"] is None  # the reference was not run
    table = report.peers_table(rows)
    assert "| c4fanout | p99 ms, N=1000 | 30.0 | 15.0 | 60.0 | 90.0 | 2.0 |" in table
    assert "| c4throughput | moves/s | 3000.0 | n/a | 1500.0 | n/a |" in table
    # Only the targets run get a column, and ratios only to a base that was run.
    narrow = report.peers_table(rows, ["gamesocket", "colyseus"])
    assert (
        narrow.splitlines()[0]
        == "| scenario | figure | gamesocket | colyseus | gamesocket / colyseus |"
    )


def test_median_run_keeps_the_middle_run_and_the_spread() -> None:
    runs: list[dict[str, Any]] = [
        {"moves_per_s": 900.0, "server_cpu_us_per_move": 210.0, "client_cpu_share": 0.4},
        {"error": "RuntimeError: the server died"},
        {"moves_per_s": 1100.0, "server_cpu_us_per_move": 190.0, "client_cpu_share": 0.5},
        {"moves_per_s": 1000.0, "server_cpu_us_per_move": 200.0, "client_cpu_share": 0.45},
    ]
    median = report.median_run(runs)
    # The failed run is not ranked: of 900, 1000 and 1100, the middle run, whole.
    assert median["moves_per_s"] == 1000.0 and median["server_cpu_us_per_move"] == 200.0
    assert (median["moves_per_s_min"], median["moves_per_s_max"]) == (900.0, 1100.0)
    assert [r["moves_per_s"] for r in median["repeats"]] == [900.0, None, 1100.0, 1000.0]
    assert median["repeats"][1]["error"] == "RuntimeError: the server died"
    assert median["repeats"][0]["games_finished"] is None  # not given: kept as unknown
    # Of an even count, the lower middle run; one run stands as it is; all failed: the last.
    assert report.median_run(runs[2:])["moves_per_s"] == 1000.0  # of 1100 and 1000
    assert report.median_run(runs[:1]) == runs[0]
    failed: list[dict[str, Any]] = [{"error": "a"}, {"error": "b"}]
    assert report.median_run(failed) == {"error": "b"}
    rows = report.summarize_peers({"c4throughput": {"gamesocket": median}})
    spread = {r["metric"]: r["values"]["gamesocket"] for r in rows}
    assert spread["moves/s, lowest of the repeats"] == 900.0
    assert spread["moves/s, highest of the repeats"] == 1100.0


def test_cli_repeats_the_throughput_runs_and_reports_the_median(tmp_path: Path) -> None:
    from bench import cli

    code = cli.main([
        "--scenarios", "throughput", "--targets", "reference", "--games", "4", "--rounds", "1",
        "--repeats", "3", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    (written,) = tmp_path.glob("*.json")
    result = json.loads(written.read_text())["scenarios"]["throughput"]["reference"]
    rates = [run["moves_per_s"] for run in result["repeats"]]
    assert len(rates) == 3 and all(rate > 0 for rate in rates)
    assert result["moves_per_s"] == sorted(rates)[1]
    assert (result["moves_per_s_min"], result["moves_per_s_max"]) == (min(rates), max(rates))
