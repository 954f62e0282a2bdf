"""The lobby socket `/ws/lobby` on a real server, and across two processes (Postgres + Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerThread, connect
from tests.system.test_cluster_processes import ClusterProcess, redis_run


def lobby_url(port: int, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{port}/ws/lobby" + (f"?token={token}" if token else "")


class Lobby:
    """A lobby socket and what it shows: games and seeks by id, `paired` messages."""

    def __init__(self, client: Client, first: dict[str, Any]) -> None:
        self.client = client
        self.games = {game["game_id"]: game for game in first["games"]}
        self.seeks = {seek["seek_id"]: seek for seek in first["seeks"]}
        self.paired: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    def apply(self, message: dict[str, Any]) -> None:
        if message["type"] == "paired":
            self.paired.append(message)
            return
        assert message["type"] == "lobby_update", message
        self.updates.append(message)
        for removed in message["removed"]:
            self.games.pop(removed, None)
            self.seeks.pop(removed, None)
        for item in message["added"]:
            if "seek_id" in item:
                self.seeks[item["seek_id"]] = item
            else:
                self.games[item["game_id"]] = item

    async def until(self, done: Callable[[Lobby], bool], wait: float = 10) -> None:
        deadline = time.monotonic() + wait
        while not done(self):
            self.apply(await self.client.recv(max(deadline - time.monotonic(), 0.01)))

    async def close(self) -> None:
        await self.client.connection.close()


async def open_lobby(port: int, user: dict[str, Any] | None = None) -> Lobby:
    """A lobby socket past its `hello` and first `lobby` message."""
    client = await connect(lobby_url(port, user["access_token"] if user else None))
    hello = await client.expect("hello")
    assert hello == {"type": "hello", "protocol": 1, "you": {"user_id": user and user["user_id"]}}
    first = await client.expect("lobby")
    assert set(first) == {"type", "games", "seeks"}
    return Lobby(client, first)


async def post_seek(api: Api, user: dict[str, Any], game_type: str) -> dict[str, Any]:
    reply = await api.http.post(
        "/api/seeks", json={"game_type": game_type}, headers=user["headers"]
    )
    assert reply.status_code == 201, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def test_games_appear_while_waiting_and_go_when_they_start(
    api: Api, server: ServerThread
) -> None:
    alice, bob = await api.guest(), await api.guest()
    before = await api.create(alice, "tictactoe", seats={"x": "me"})
    lobby = await open_lobby(server.settings.port)
    assert before["game_id"] in lobby.games and lobby.seeks == {}
    game = await api.create(alice, "connect4", seats={"red": "me"})
    private = await api.create(alice, "connect4", seats={"red": "me"}, public=False)
    await lobby.until(lambda view: game["game_id"] in view.games)
    assert lobby.games[game["game_id"]]["status"] == "waiting"
    joined = await api.http.post(
        f"/api/games/{game['game_id']}/join", json={}, headers=bob["headers"]
    )
    assert joined.status_code == 200
    await lobby.until(lambda view: game["game_id"] not in view.games)
    # A private game never shows; the game still waiting stays.
    seen = {item.get("game_id") for update in lobby.updates for item in update["added"]}
    assert private["game_id"] not in seen and before["game_id"] in lobby.games
    await lobby.client.send(type="ping")
    assert await lobby.client.expect("pong") == {"type": "pong"}
    await lobby.close()


async def test_seeks_come_and_go_and_the_owner_hears_of_the_pairing(
    api: Api, server: ServerThread
) -> None:
    alice, bob = await api.guest(), await api.guest()
    watcher = await open_lobby(server.settings.port)
    owner = await open_lobby(server.settings.port, alice)
    placed = await post_seek(api, alice, "chess")
    for view in (watcher, owner):
        await view.until(lambda v: placed["seek_id"] in v.seeks)
        assert view.seeks[placed["seek_id"]] == {
            "seek_id": placed["seek_id"],
            "game_type": "chess",
            "clock": None,
            "rated": False,
            "name": alice["name"],
        }
    paired = await post_seek(api, bob, "chess")
    assert paired["status"] == "paired"
    await watcher.until(lambda v: placed["seek_id"] not in v.seeks)
    await owner.until(lambda v: bool(v.paired))
    assert owner.paired == [
        {
            "type": "paired",
            "seek_id": placed["seek_id"],
            "game_id": paired["game_id"],
            "game_type": "chess",
        }
    ]
    assert watcher.paired == []  # only the owners hear of a pairing
    # A withdrawn seek goes too.
    again = await post_seek(api, alice, "chess")
    await watcher.until(lambda v: again["seek_id"] in v.seeks)
    await api.http.delete(f"/api/seeks/{again['seek_id']}", headers=alice["headers"])
    await watcher.until(lambda v: again["seek_id"] not in v.seeks)
    # The paired game never waited: it is never listed.
    listed = await open_lobby(server.settings.port)
    assert paired["game_id"] not in listed.games and listed.seeks == {}
    for view in (watcher, owner, listed):
        await view.close()


async def test_watching_on_the_lobby_keeps_a_seek_alive(start_server: Any) -> None:
    server: ServerThread = start_server(seek_ttl_seconds=0.6)
    api = Api(server.base_url)
    try:
        alice, bob = await api.guest(), await api.guest()
        owner = await open_lobby(server.settings.port, alice)
        placed = await post_seek(api, alice, "chess")
        other = await post_seek(api, bob, "connect4")
        await owner.until(lambda v: {placed["seek_id"], other["seek_id"]} <= set(v.seeks))
        # Bob's unwatched seek lapses (and leaves the lobby); Alice's, watched, waits.
        await owner.until(lambda v: other["seek_id"] not in v.seeks)
        await asyncio.sleep(1.5)
        url = f"/api/seeks/{placed['seek_id']}"
        assert (await api.http.get(url, headers=alice["headers"])).json()["status"] == "waiting"
        assert placed["seek_id"] in owner.seeks
        url = f"/api/seeks/{other['seek_id']}"
        assert (await api.http.get(url, headers=bob["headers"])).json()["status"] == "expired"
        await owner.close()
    finally:
        await api.close()


async def test_a_silent_lobby_socket_is_closed_and_a_pinging_one_is_not(
    start_server: Any,
) -> None:
    server: ServerThread = start_server(idle_timeout_seconds=0.6)
    silent = await open_lobby(server.settings.port)
    pinging = await open_lobby(server.settings.port)
    for _ in range(5):
        await pinging.client.send(type="ping")
        assert await pinging.client.expect("pong") == {"type": "pong"}
        await asyncio.sleep(0.3)
    assert await silent.client.closed_with() == 4408
    await pinging.client.send(type="hello")
    assert (await pinging.client.recv())["code"] == "unknown_type"
    await pinging.close()


async def test_a_bad_token_is_refused(server: ServerThread) -> None:
    client = await connect(lobby_url(server.settings.port, "not-a-token"))
    assert await client.closed_with() == 4401


# -- two processes ---------------------------------------------------------------------------
@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[ClusterProcess]]:
    async with migrated_database() as url, redis_run() as (_, prefix):
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        for server in servers:
            server.start()
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


async def test_the_lobby_follows_games_and_seeks_of_another_process(
    cluster: list[ClusterProcess],
) -> None:
    one, two = cluster
    api_one = Api(one.base_url)
    try:
        alice, bob = await api_one.guest(), await api_one.guest()
        watcher = await open_lobby(two.port)
        owner = await open_lobby(two.port, alice)
        game = await api_one.create(alice, "tictactoe", seats={"x": "me"})
        for view in (watcher, owner):
            await view.until(lambda v: game["game_id"] in v.games)
        placed = await post_seek(api_one, alice, "connect4")
        await watcher.until(lambda v: placed["seek_id"] in v.seeks)
        paired = await post_seek(api_one, bob, "connect4")
        await owner.until(lambda v: bool(v.paired))
        assert owner.paired[0]["game_id"] == paired["game_id"]
        assert owner.paired[0]["seek_id"] == placed["seek_id"]
        await watcher.until(lambda v: placed["seek_id"] not in v.seeks)
        for view in (watcher, owner):
            await view.close()
    finally:
        await api_one.close()
