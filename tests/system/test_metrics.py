"""`GET /metrics` after real games over real sockets, the log lines, and count_games."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from socket_server.store import Actor
from tests.conftest import PROJECT_ROOT
from tests.integration.test_store_contract import ALICE, STORE_FACTORIES, human, make_game, play
from tests.server_harness import Api, ServerThread, connect, free_port, ws_url
from tests.system.test_server_protocol import tictactoe_pair

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(api: Api) -> Samples:
    """Every sample of the exposition text, keyed by (name, sorted labels)."""
    reply = await api.http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def wait_for_sample(
    api: Api, key: tuple[str, tuple[tuple[str, str], ...]], value: float
) -> Samples:
    """Scrape until `key` shows `value` (socket close is noticed asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        samples = await scrape(api)
        if samples.get(key) == value or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.05)


def players(n: float) -> tuple[tuple[str, tuple[tuple[str, str], ...]], float]:
    return ("gamesocket_connections", (("role", "player"),)), n


async def test_a_real_game_shows_in_the_metrics_and_the_log(
    api: Api,
    server: ServerThread,
    start_server: Callable[..., ServerThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gamesocket")
    game, alice, bob, a, b = await tictactoe_pair(api, server)  # bob joined by socket
    game_id = game["game_id"]
    watcher = await connect(server.ws_url("tictactoe", game_id))
    await watcher.expect("state")
    refused = await a.request(type="move", move=9, id="off-board")
    assert refused["code"] == "illegal_move"
    await a.connection.send("{not json")
    assert (await a.expect("error"))["code"] == "bad_message"
    for index, move in enumerate([0, 3, 1, 4, 2]):
        reply = await (a, b)[index % 2].request(type="move", move=move, id=f"m{index}")
        assert reply["version"] == index + 2
    assert (await a.request(type="move", move=8, id="late"))["code"] == "game_over"

    samples = await wait_for_sample(api, *players(2))
    assert samples[players(2)[0]] == 2
    assert samples[("gamesocket_connections", (("role", "spectator"),))] == 1
    assert samples[("gamesocket_moves_total", (("game_type", "tictactoe"),))] == 5
    for code in ("illegal_move", "bad_message", "game_over"):
        assert samples[("gamesocket_rejected_messages_total", (("code", code),))] == 1
    # Five socket moves were stored and published; refused ones are not in the histogram.
    assert samples[("gamesocket_move_latency_seconds_count", ())] == 5
    assert 0 < samples[("gamesocket_move_latency_seconds_sum", ())] < 5
    # join + 5 moves as updates, plus presence notices: one hand-off each.
    assert samples[("gamesocket_fanout_seconds_count", ())] >= 6
    assert samples[("gamesocket_games", (("status", "finished"),))] == 1
    assert samples[("gamesocket_games", (("status", "active"),))] == 0

    # Another app in this process has its own registry: none of the above shows there.
    other = Api(start_server().base_url)
    try:
        elsewhere = await scrape(other)
    finally:
        await other.close()
    assert ("gamesocket_moves_total", (("game_type", "tictactoe"),)) not in elsewhere
    assert elsewhere[players(0)[0]] == 0

    for client in (a, b, watcher):
        await client.connection.close()
    samples = await wait_for_sample(api, *players(0))
    assert samples[players(0)[0]] == 0
    assert samples[("gamesocket_connections", (("role", "spectator"),))] == 0

    # Each line with its level: per socket and per move DEBUG, the rest INFO.
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("gamesocket")
    ]
    a_user, b_user = alice["user_id"], bob["user_id"]
    assert ("DEBUG", f"socket open game={game_id} user={a_user} role=player") in lines
    assert ("DEBUG", f"socket open game={game_id} user=None role=spectator") in lines
    changes = [(level, line) for level, line in lines if line.startswith(f"change game={game_id}")]
    assert any(level == "INFO" and " version=1 kind=join seat=o " in ln for level, ln in changes)
    move = f"change game={game_id} version=3 kind=move seat=o move=3 user={b_user} status=active"
    assert ("DEBUG", move) in changes
    # The move that ends the game is INFO, as the game's end.
    assert changes[-1][0] == "INFO" and changes[-1][1].endswith("status=finished")
    refused_line = f"refused game={game_id} user={a_user} code=bad_message"
    assert any(level == "INFO" and line.startswith(refused_line) for level, line in lines)
    closed = [line for level, line in lines if line.startswith(f"socket closed game={game_id}")]
    assert len(closed) == 3


async def test_ai_search_time_is_measured_per_game_type(api: Api, server: ServerThread) -> None:
    user = await api.guest()
    game = await api.create(user, "tictactoe", seats={"x": "me", "o": {"kind": "ai", "level": 3}})
    client = await connect(server.ws_url("tictactoe", game["game_id"], token=user["access_token"]))
    await client.expect("state")
    assert (await client.request(type="move", move=4, id="m1"))["version"] == 1
    while (await client.expect("update"))["version"] != 2:  # the AI's reply
        pass
    samples = await scrape(api)
    key = ("gamesocket_ai_search_seconds_count", (("game_type", "tictactoe"),))
    assert samples[key] == 1
    assert samples[("gamesocket_moves_total", (("game_type", "tictactoe"),))] == 2
    await client.connection.close()


@pytest.mark.parametrize("store_name", list(STORE_FACTORIES))
async def test_count_games_by_status(store_name: str, tmp_path: Path) -> None:
    async with STORE_FACTORIES[store_name](tmp_path) as store:
        assert await store.count_games() == {}
        await store.create_game(
            make_game(seats=(human(ALICE), None), status="waiting"), Actor.SERVER
        )
        for _ in range(2):
            await store.create_game(make_game(), Actor.SERVER)
        finished = make_game()
        await store.create_game(finished, Actor.SERVER)
        await play(store, finished, 0, 3, 1, 4, 2)
        assert await store.count_games() == {"waiting": 1, "active": 2, "finished": 1}


async def test_gamesocket_serve_logs_one_line_per_event_through_its_log_thread(
    tmp_path: Path,
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "socket_server.cli", "serve", "--host", "127.0.0.1"]
    server = await asyncio.create_subprocess_exec(
        *command,
        *("--port", str(port), "--data-dir", str(tmp_path)),
        cwd=PROJECT_ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        stderr=asyncio.subprocess.PIPE,
    )
    api = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while server.returncode is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await api.http.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        alice, bob = await api.guest(), await api.guest()
        game_id = (await api.create(alice, "tictactoe", seats={"x": "me"}))["game_id"]
        await api.http.post(f"/api/games/{game_id}/join", headers=bob["headers"])
        moved = await api.http.post(
            f"/api/games/{game_id}/moves", json={"move": 4}, headers=alice["headers"]
        )
        assert moved.json() == {"version": 2}
        watcher = await connect(ws_url(port, "tictactoe", game_id))
        await watcher.expect("state")
        await watcher.connection.send("{not json")
        assert (await watcher.expect("error"))["code"] == "bad_message"
        await watcher.connection.close()
        await api.wait_for_connections(game_id, players=0, spectators=0)
    finally:
        await api.close()
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = await asyncio.wait_for(server.communicate(), 30)
        finally:
            if server.returncode is None:
                server.kill()
    lines = stderr.decode().splitlines()
    # Time, level, logger, message: one line per record, the last ones not lost at exit.
    shape = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) [\w.]+ \S")
    assert all(shape.match(text) for text in lines), stderr
    joined = f"change game={game_id} version=1 kind=join seat=o move=None user={bob['user_id']}"
    assert sum(joined in t for t in lines) == 1
    assert sum(f"refused game={game_id} user=None code=bad_message" in t for t in lines) == 1
    assert sum(f'"WebSocket /ws/tictactoe/{game_id}" [accepted]' in t for t in lines) == 1
    # At the default level (INFO) a move or a socket costs no line of its own.
    assert not [t for t in lines if "kind=move" in t or "socket open" in t or "socket closed" in t]
    assert not [t for t in lines if t.endswith(("connection open", "connection closed"))]
    assert sum(t.endswith("INFO gamesocket server stopped") for t in lines) == 1
    assert "Finished server process" in lines[-1]
