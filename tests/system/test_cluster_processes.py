"""Several `gamesocket serve` processes behind one address: one Postgres, one Redis.

Three real server processes share a per-run Postgres database, the guest-token secret
and Redis under a per-run key prefix, as behind a load balancer without sticky
sessions. Players, spectators and REST calls are spread over the processes. One
process is killed with SIGKILL in the middle of a human game and of an AI-vs-AI game;
another is stopped (SIGSTOP) while Redis drops its pub/sub connection, or while it
holds an AI turn past its lock.
"""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.utils import str_if_bytes

from tests.conftest import require
from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerProcess, connect
from tests.system.test_server_cluster import REDIS_URL, redis_reachable

GAME = "connect4"
# Short, so that a dead holder's AI turn is taken over within a few seconds.
AI_LOCK_TTL = "2"
WAIT = 60.0  # seconds: the longest any one game may take to finish here


class ClusterProcess(ServerProcess):
    """`gamesocket serve` with Redis under this run's prefix."""

    def __init__(self, data_dir: Path, database_url: str, prefix: str) -> None:
        super().__init__(data_dir, database_url)
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.env.update(
            REDIS_URL=REDIS_URL,
            GAMESOCKET_REDIS_PREFIX=prefix,
            GAMESOCKET_AI_LOCK_TTL=AI_LOCK_TTL,
        )


@dataclass
class Cluster:
    servers: list[ClusterProcess]
    prefix: str
    redis: Redis
    apis: list[Api] = field(default_factory=list)

    async def lock_holder(self, game_id: str) -> int | None:
        """The pid of the process holding the game's AI lock (its node id holds it)."""
        value = await self.redis.get(f"{self.prefix}:lock:ai:{game_id}")
        if value is None:
            return None
        return int(str_if_bytes(value).split(":")[0].split("-")[-2])


@asynccontextmanager
async def redis_run() -> AsyncIterator[tuple[Redis, str]]:
    """Redis and a key prefix unique to this run; the prefix's keys are deleted after."""
    require(redis_reachable(), "Redis at 127.0.0.1:6379")
    prefix = f"gstest-cluster-{uuid.uuid4().hex[:12]}"
    redis = Redis.from_url(REDIS_URL)
    try:
        yield redis, prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with redis_run() as (redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(3)]
        running = Cluster(servers, prefix, redis)
        try:
            # The first creates the guest secret; the others start together.
            servers[0].start()
            await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers[1:]))
            running.apis = [Api(server.base_url) for server in servers]
            yield running
        finally:
            for api in running.apis:
                await api.close()
            for server in servers:
                server.stop()


async def robot_game(api: Api, user: dict[str, Any], ai_delay_ms: int) -> str:
    """A level-1 AI-vs-AI game created through `api`, so started by that process."""
    ai = {"kind": "ai", "level": 1}
    options = {"ai_delay_ms": ai_delay_ms}
    game = await api.create(user, GAME, seats={"red": ai, "yellow": ai}, options=options)
    return str(game["game_id"])


async def next_update(client: Client, version: int) -> dict[str, Any]:
    """The client's `update` for `version`, passing over earlier ones; none may skip it."""
    while True:
        update = await client.expect("update")
        if update["version"] == version:
            return update
        assert update["version"] < version, f"skipped to {update['version']} before {version}"


async def read_to(client: Client, version: int) -> None:
    """Read until the client has seen the `update` (or `state`) of `version`."""
    while not any(
        m["type"] in ("update", "state") and m.get("version") == version for m in client.seen
    ):
        await client.recv()


def versions_seen(client: Client) -> list[int]:
    """The versions the client saw, in order: its first `state`, then its `update`s."""
    versions: list[int] = []
    for message in client.seen:
        if message["type"] == "update" or (message["type"] == "state" and not versions):
            versions.append(message["version"])
    return versions


def contiguous(versions: list[int], last: int) -> bool:
    return versions == list(range(versions[0], last + 1))


async def logged(path: Path, text: str, wait: float = 10.0) -> str:
    """The server log at `path` once it contains `text`.

    A server's lines are written by its log thread, a little after the event they
    report, possibly after what the test saw next: a single read can come too early.
    """
    deadline = asyncio.get_running_loop().time() + wait
    while text not in (logs := await asyncio.to_thread(path.read_text)):
        assert asyncio.get_running_loop().time() < deadline, logs[-4000:]
        await asyncio.sleep(0.05)
    return logs


async def test_games_across_three_processes_reach_every_spectator_in_order(
    cluster: Cluster,
) -> None:
    """Four games at once, each with its players, REST moves and spectators on all three."""
    servers, apis = cluster.servers, cluster.apis
    games = 4
    spectators_per_server = 4

    async def play(index: int) -> tuple[dict[str, Any], list[Client], list[Client]]:
        home, away, third = ((index + k) % 3 for k in range(3))
        alice, bob = await apis[home].guest(), await apis[away].guest()
        game = await apis[home].create(alice, GAME, seats={"red": "me"})
        game_id = game["game_id"]
        watchers = [
            await connect(server.ws_url(GAME, game_id))
            for server in servers
            for _ in range(spectators_per_server)
        ]
        red = await connect(servers[home].ws_url(GAME, game_id, token=alice["access_token"]))
        yellow = await connect(servers[away].ws_url(GAME, game_id, token=bob["access_token"]))
        for client in (*watchers, red, yellow):
            assert (await client.expect("state"))["version"] == 0
        assert (await yellow.request(type="join", id="sit"))["version"] == 1
        snapshot = await next_update(red, 1)
        if index == 0:
            # Presence adds up the sockets of all three processes.
            expected = {"players": 2, "spectators": 3 * spectators_per_server}
            for api in apis:
                counts = await api.wait_for_connections(game_id, **expected)
                assert counts == expected
            # So do the `presence` messages, on a process that holds a few of the sockets.
            total = ({"red": True, "yellow": True}, expected["spectators"])
            presence = await red.expect("presence")
            while (presence["online"], presence["spectators"]) != total:
                presence = await red.expect("presence")
        players = {"red": (red, alice), "yellow": (yellow, bob)}
        rng = random.Random(index)
        while snapshot["status"] == "active":
            version = snapshot["version"]
            client, user = players[snapshot["turn"]]
            move = rng.choice(snapshot["legal_moves"])
            if version % 5 == 0:
                # Now and then through REST on the process neither player is on.
                reply = await apis[third].http.post(
                    f"/api/games/{game_id}/moves",
                    json={"move": move, "version": version},
                    headers=user["headers"],
                )
                assert reply.json() == {"version": version + 1}, reply.text
            else:
                ack = await client.request(
                    type="move", move=move, version=version, id=f"v{version}"
                )
                assert ack == {"type": "ack", "ref": f"v{version}", "version": version + 1}
            snapshot = await next_update(client, version + 1)
        return snapshot, [red, yellow], watchers

    results = await asyncio.gather(*(play(index) for index in range(games)))
    for final, players, watchers in results:
        assert final["status"] == "finished" and final["result"] is not None
        last = final["version"]
        assert last >= 8  # a join and at least seven moves
        for client in (*players, *watchers):
            await read_to(client, last)
            versions = versions_seen(client)
            assert versions[0] == 0 and contiguous(versions, last), versions
        # Every socket on every process got the very same update bodies.
        reference = [m for m in players[0].seen if m["type"] == "update"]
        for client in (players[1], *watchers):
            assert [m for m in client.seen if m["type"] == "update"] == reference
        moves = (await apis[0].http.get(f"/api/games/{final['game_id']}/moves")).json()
        assert [m["version"] for m in moves] == list(range(2, last + 1))
        for client in (*players, *watchers):
            await client.connection.close()


async def test_updates_lost_in_a_redis_outage_are_filled_from_the_store(
    cluster: Cluster,
) -> None:
    """A process whose pub/sub connection dropped catches its sockets up, even on a last move."""
    servers, apis = cluster.servers, cluster.apis
    cut_off = servers[2].process
    assert cut_off is not None and servers[2].log_path is not None
    alice, bob = await apis[0].guest(), await apis[1].guest()
    game = await apis[0].create(alice, "tictactoe", seats={"x": "me"})
    game_id = game["game_id"]
    x = await connect(servers[0].ws_url("tictactoe", game_id, token=alice["access_token"]))
    o = await connect(servers[1].ws_url("tictactoe", game_id, token=bob["access_token"]))
    watchers = [await connect(servers[2].ws_url("tictactoe", game_id)) for _ in range(3)]
    for client in (x, o, *watchers):
        await client.expect("state")
    assert (await o.request(type="join", id="sit"))["version"] == 1
    for watcher in watchers:
        await next_update(watcher, 1)

    # While the process is stopped, Redis drops its pub/sub connection; the game is
    # played to its end meanwhile, so no later update reveals the gap.
    cut_off.send_signal(signal.SIGSTOP)
    try:
        subscriber = f"-{cut_off.pid}-"  # in the node id of its connections' names
        for info in await cluster.redis.client_list():
            name = info["name"]
            if (
                name.startswith(f"{cluster.prefix}:")
                and subscriber in name
                and name.endswith(":sub")
            ):
                await cluster.redis.client_kill_filter(_id=info["id"])
        # x wins along the top row.
        for version, cell in enumerate((0, 3, 1, 4, 2), start=2):
            player = x if cell in (0, 1, 2) else o
            ack = await player.request(type="move", move=cell, id=f"m{version}")
            assert ack["version"] == version
    finally:
        cut_off.send_signal(signal.SIGCONT)
    for watcher in watchers:
        final = await next_update(watcher, 6)
        assert final["status"] == "finished" and final["result"]["winner"] == "x"
        assert contiguous(versions_seen(watcher), 6)
    # Logged before the catch-up began, but by the log thread: it may land after the
    # watchers' updates did.
    await logged(servers[2].log_path, "reconnected")


async def test_a_killed_process_loses_nothing_and_its_ai_game_finishes_elsewhere(
    cluster: Cluster,
) -> None:
    servers, apis = cluster.servers, cluster.apis
    victim, survivor, other = servers
    alice, bob = await apis[0].guest(), await apis[1].guest()

    # A human game: red on the victim, yellow on the survivor, a spectator on each process.
    game = await apis[0].create(alice, GAME, seats={"red": "me"})
    game_id = game["game_id"]
    red = await connect(victim.ws_url(GAME, game_id, token=alice["access_token"]))
    yellow = await connect(survivor.ws_url(GAME, game_id, token=bob["access_token"]))
    watchers = [await connect(server.ws_url(GAME, game_id)) for server in servers]
    for client in (red, yellow, *watchers):
        await client.expect("state")
    assert (await yellow.request(type="join", id="sit"))["version"] == 1
    snapshot = await next_update(red, 1)

    acked: dict[int, Any] = {}  # version -> the move acknowledged at it
    rng = random.Random(6)
    players = {"red": red, "yellow": yellow}

    async def play_one() -> dict[str, Any]:
        version = snapshot["version"]
        client = players[snapshot["turn"]]
        move = rng.choice(snapshot["legal_moves"])
        ack = await client.request(type="move", move=move, version=version, id=f"v{version}")
        assert ack == {"type": "ack", "ref": f"v{version}", "version": version + 1}
        acked[version + 1] = move
        return await next_update(client, version + 1)

    while snapshot["version"] < 5 or snapshot["turn"] != "red":
        snapshot = await play_one()

    # An AI-vs-AI game created on (so started by) the process that will die.
    robots_id = await robot_game(apis[0], alice, ai_delay_ms=400)
    robot_watchers = [await connect(server.ws_url(GAME, robots_id)) for server in servers]
    for watcher in robot_watchers:
        await watcher.expect("state")
    counts = await apis[2].wait_for_connections(robots_id, players=0, spectators=3)
    assert counts == {"players": 0, "spectators": 3}
    await apis[1].wait_for(robots_id, lambda s: s["version"] >= 2, wait=WAIT)
    pid = victim.process.pid if victim.process is not None else None
    for _ in range(100):  # the lock is free for a moment between two turns
        if await cluster.lock_holder(robots_id) == pid:
            break
        await asyncio.sleep(0.02)
    assert await cluster.lock_holder(robots_id) == pid, "the victim does not run the AI game"

    # Red's move through the victim is acknowledged, then the victim dies at once.
    snapshot = await play_one()
    assert victim.signal(signal.SIGKILL) == -signal.SIGKILL
    killed_at = (await apis[1].snapshot(robots_id))["version"]
    assert await red.closed_with() is None  # no close frame: the process just died
    assert await watchers[0].closed_with() is None

    # Red and the victim's spectator reconnect elsewhere with `since`.
    red_before, spectator_before = versions_seen(red), versions_seen(watchers[0])
    red = await connect(
        survivor.ws_url(GAME, game_id, token=alice["access_token"], since=red_before[-1])
    )
    assert (await red.expect("hello"))["you"]["seat"] == "red"
    moved = await connect(other.ws_url(GAME, game_id, since=spectator_before[-1]))
    players["red"] = red
    while snapshot["status"] == "active":
        snapshot = await play_one()
    last = snapshot["version"]

    # No acknowledged move is lost: the log holds exactly the acknowledged moves.
    log = (await apis[1].http.get(f"/api/games/{game_id}/moves")).json()
    assert {m["version"]: m["move"] for m in log} == acked
    assert [m["version"] for m in log] == list(range(2, last + 1))
    for client in (yellow, red, moved, *watchers[1:]):
        await read_to(client, last)
    # Red's `since` was current: it got no `state`, only what came next.
    assert all(m["type"] != "state" for m in red.seen)
    # Each reconnected client's versions, over both of its sockets, run 0..last once.
    assert red_before[0] == 0 and contiguous(red_before + versions_seen(red), last)
    assert spectator_before[0] == 0
    assert contiguous(spectator_before + versions_seen(moved), last)
    for client in (yellow, *watchers[1:]):
        versions = versions_seen(client)
        assert versions[0] == 0 and contiguous(versions, last), versions

    # The AI game went on without the victim and finished; every version was played once.
    final = await apis[1].wait_for(robots_id, lambda s: s["status"] != "active", wait=WAIT)
    assert final["status"] == "finished" and final["version"] > killed_at
    robot_log = (await apis[2].http.get(f"/api/games/{robots_id}/moves")).json()
    assert [m["version"] for m in robot_log] == list(range(1, final["version"] + 1))
    for watcher in robot_watchers[1:]:
        await read_to(watcher, final["version"])
        assert contiguous(versions_seen(watcher), final["version"])

    # The dead process's sockets stop counting once its heartbeat lapses.
    counts = await apis[2].wait_for_connections(robots_id, players=0, spectators=2, wait=20)
    assert counts == {"players": 0, "spectators": 2}
    counts = await apis[1].wait_for_connections(game_id, players=2, spectators=3, wait=20)
    assert counts == {"players": 2, "spectators": 3}


async def test_a_stalled_ai_holder_loses_its_turn_and_its_late_move_is_dropped(
    cluster: Cluster,
) -> None:
    """SIGSTOP the process in the middle of an AI turn, past its lock; SIGCONT it after."""
    servers, apis = cluster.servers, cluster.apis
    stalled = servers[0].process
    assert stalled is not None
    # The delay is longer than the lock's TTL: the holder is stopped while it waits.
    game_id = await robot_game(apis[0], await apis[0].guest(), ai_delay_ms=2500)
    watcher = await connect(servers[1].ws_url(GAME, game_id))
    await watcher.expect("state")
    while True:
        version = (await apis[1].snapshot(game_id))["version"]
        if await cluster.lock_holder(game_id) == stalled.pid:
            # Past the turn's fresh read (right after the lock it checks whose turn it
            # is) and into its 2.5 s pacing: stopped sooner, it would wake to a turn no
            # longer its own and never search, so there would be no move to drop.
            await asyncio.sleep(0.5)
            stalled.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.2)  # a commit already sent to Postgres completes
            if (await apis[1].snapshot(game_id))["version"] == version:
                break  # stopped before storing its move
            stalled.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.02)
    try:
        # Another process takes the turn once the lock lapsed.
        await apis[1].wait_for(game_id, lambda s: s["version"] >= version + 1, wait=WAIT)
    finally:
        stalled.send_signal(signal.SIGCONT)
    # The woken process ends its turn with a move for a version that is gone: dropped.
    assert servers[0].log_path is not None
    deadline = asyncio.get_running_loop().time() + WAIT
    while f"ai move dropped game={game_id}" not in (logs := servers[0].log_path.read_text()):
        assert asyncio.get_running_loop().time() < deadline, logs[-4000:]
        await asyncio.sleep(0.1)
    final = await apis[1].wait_for(
        game_id, lambda s: s["version"] >= version + 3 or s["status"] != "active", wait=WAIT
    )
    moves = (await apis[2].http.get(f"/api/games/{game_id}/moves")).json()
    assert len(moves) >= final["version"]
    assert [m["version"] for m in moves] == list(range(1, len(moves) + 1))
    # Red and yellow alternate: no side ever moved twice in a row.
    assert [m["seat"] for m in moves] == [("red", "yellow")[i % 2] for i in range(len(moves))]
    await read_to(watcher, moves[-1]["version"])
    assert contiguous(versions_seen(watcher), moves[-1]["version"])
