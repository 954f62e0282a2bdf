"""`gamesocket serve` in a subprocess: kill -9 loses nothing acknowledged; SIGTERM says 1001."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_harness import Api, ServerProcess, connect


@pytest.fixture
def process(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "data", database_url)
    yield running
    running.stop()


async def test_kill_9_loses_no_acknowledged_move_and_keeps_tokens(
    process: ServerProcess,
) -> None:
    process.start()
    api = Api(process.base_url)
    alice, bob = await api.guest(), await api.guest()
    game = await api.create(alice, "tictactoe", seats={"x": "me"})
    game_id = game["game_id"]
    robots = await api.create(
        alice,
        "tictactoe",
        seats={"x": {"kind": "ai", "level": 1}, "o": {"kind": "ai", "level": 1}},
        options={"ai_delay_ms": 150},
    )
    a = await connect(process.ws_url("tictactoe", game_id, token=alice["access_token"]))
    b = await connect(process.ws_url("tictactoe", game_id, token=bob["access_token"]))
    assert (await b.request(type="join", id="sit"))["version"] == 1
    assert (await a.request(type="move", move=4, id="m-x"))["version"] == 2
    assert (await b.request(type="move", move=0, id="m-o"))["version"] == 3
    await api.wait_for(robots["game_id"], lambda s: s["moves"] >= 2)
    await api.close()

    assert process.signal(signal.SIGKILL) == -signal.SIGKILL
    assert await a.closed_with() is None  # no close frame: the process just died

    process.start()
    api = Api(process.base_url)
    try:
        snapshot = await api.snapshot(game_id)
        assert snapshot["version"] == 3 and snapshot["board"]["cells"][4] == "x"
        assert snapshot["board"]["cells"][0] == "o"
        again = await connect(process.ws_url("tictactoe", game_id, token=alice["access_token"]))
        hello = await again.expect("hello")
        assert hello["you"] == {"user_id": alice["user_id"], "seat": "x", "role": "player"}
        resent = await again.request(type="move", move=4, id="m-x")
        assert resent == {"type": "ack", "ref": "m-x", "version": 2}
        assert (await api.snapshot(game_id))["version"] == 3
        assert (await again.request(type="move", move=8, id="next"))["version"] == 4
        # The AI-vs-AI game resumed by itself after the restart.
        final = await api.wait_for(robots["game_id"], lambda s: s["status"] == "finished")
        assert final["moves"] == final["version"] >= 5
    finally:
        await api.close()


async def test_sigterm_closes_sockets_with_1001(process: ServerProcess) -> None:
    process.start()
    api = Api(process.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "connect4", seats={"red": "me"})
    finally:
        await api.close()
    client = await connect(process.ws_url("connect4", game["game_id"]))
    await client.expect("state")
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert process.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert await client.closed_with() == 1001
