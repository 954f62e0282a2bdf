"""A stored change always reaches everyone, whatever breaks after the commit.

Real `gamesocket serve` processes on a real Postgres (and Redis). While games are
played, the test terminates the server's database backends (`pg_terminate_backend`)
or kills its Redis command connection (what `CLIENT KILL TYPE normal` does, limited
to this run's server so that other users of the shared Redis are left alone). A move
whose commit landed must be answered with its `ack` and broadcast, and the AI must
answer it, even when an error came after the commit; a move answered `internal` was
not stored, so the client's resend (same move, same `version`, a new id) is applied.
Players act only on what their sockets receive, as real clients do: a stored change
that is never broadcast leaves the game waiting, and fails the test.

And embedded mode keeps what it stores private to the server's user: the data
directory, the SQLite file with its -wal and -shm, and the guest-token secret.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.pgutil import ADMIN_URL, migrated_database
from tests.server_harness import Api, Client, ServerProcess, ServerThread, connect
from tests.system.test_cluster_processes import ClusterProcess, contiguous, redis_run

GAME = "tictactoe"
AI = {"kind": "ai", "level": 1}
WAIT = 30.0  # seconds any one change may take to reach a socket (AI retries included)
KILL_EVERY = 0.04  # seconds between two rounds of pg_terminate_backend
BURST = 4.0  # seconds the backends are terminated for
# Sends of one move (the first and the resends after `internal`): enough to
# outlast the whole burst, so a game whose every attempt met a dying backend (a loaded
# machine, where a fresh connection takes longer than KILL_EVERY) still gets through.
RESEND_PAUSE = 0.1  # seconds between two sends of one move
MAX_ATTEMPTS = int(BURST / RESEND_PAUSE) + 20

BeforeMove = Callable[[], Awaitable[None]]


@dataclass
class Table:
    """One game under test: its human players' sockets by seat, and its spectators."""

    game_id: str
    snapshot: dict[str, Any]
    players: dict[str, Client]
    watchers: list[Client]
    acked: dict[int, Any] = field(default_factory=dict)  # version -> the move acked at it
    internal: int = 0  # answers `internal` (each followed by a resend)

    @property
    def sockets(self) -> list[Client]:
        return [*self.players.values(), *self.watchers]


async def open_table(
    api: Api, servers: list[str], users: list[dict[str, Any]], *, against_ai: bool
) -> Table:
    """A tic-tac-toe game: x and o (or x and the AI) on `servers[0]`; a spectator per server."""
    alice, bob = users
    seats = {"x": "me", "o": AI} if against_ai else {"x": "me"}
    game_id = (await api.create(alice, GAME, seats=seats))["game_id"]
    humans = {"x": alice}
    if not against_ai:
        joined = await api.http.post(f"/api/games/{game_id}/join", json={}, headers=bob["headers"])
        assert joined.status_code == 200, joined.text
        humans["o"] = bob
    players = {
        seat: await connect(f"{servers[0]}/ws/{GAME}/{game_id}?token={user['access_token']}")
        for seat, user in humans.items()
    }
    watchers = [await connect(f"{server}/ws/{GAME}/{game_id}") for server in servers]
    states = [await client.expect("state") for client in (*players.values(), *watchers)]
    assert len({state["version"] for state in states}) == 1, states
    return Table(game_id, states[0], players, watchers)


async def next_update(client: Client, version: int) -> dict[str, Any]:
    """The client's `update` of `version`, within WAIT; it may skip none before it."""
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no update {version} within {WAIT:g} s: a stored change was lost"
        update = await client.expect("update", wait=left)
        if update["version"] == version:
            return update
        assert update["version"] < version, f"skipped to {update['version']} before {version}"


async def everyone_sees(table: Table, version: int) -> dict[str, Any]:
    """Every socket of the table gets the `update` of `version`; that update."""
    updates = await asyncio.gather(*(next_update(client, version) for client in table.sockets))
    return updates[0]


async def play_until_acked(table: Table, client: Client, move: Any, version: int) -> None:
    """Send the move at `version`; after `internal` (not stored) send it again."""
    for attempt in range(MAX_ATTEMPTS):
        reply = await client.request(
            wait=WAIT, type="move", move=move, version=version, id=f"v{version}-{attempt}"
        )
        if reply["type"] == "ack":
            assert reply["version"] == version + 1, reply
            table.acked[version + 1] = move
            return
        # Never stale_version: that would be the answer to a resend of a stored move.
        assert reply["code"] == "internal", reply
        table.internal += 1
        await asyncio.sleep(RESEND_PAUSE)
    raise AssertionError(f"move {move} at version {version}: internal {MAX_ATTEMPTS} times")


async def play_out(table: Table, seed: int, before_move: BeforeMove | None = None) -> None:
    """Play the game to its end from what the sockets receive (random legal moves)."""
    rng = random.Random(seed)
    snapshot = table.snapshot
    while snapshot["status"] == "active":
        version = snapshot["version"]
        mover = table.players.get(snapshot["turn"])
        if mover is not None:  # else the AI is to move
            if before_move is not None:
                await before_move()
            await play_until_acked(table, mover, rng.choice(snapshot["legal_moves"]), version)
        snapshot = await everyone_sees(table, version + 1)
    table.snapshot = snapshot


async def check_delivered(api: Api, table: Table) -> None:
    """Each socket saw every version to the end, in order; the log holds the acked moves."""
    last = table.snapshot["version"]
    assert table.snapshot["status"] == "finished", table.snapshot
    for client in table.sockets:
        versions = [m["version"] for m in client.seen if m["type"] in ("state", "update")]
        assert contiguous(versions, last), versions
    log = (await api.http.get(f"/api/games/{table.game_id}/moves")).json()
    assert [m["version"] for m in log] == list(range(log[0]["version"], last + 1)), log
    humans = {m["version"]: m["move"] for m in log if m["version"] in table.acked}
    assert humans == table.acked, (humans, table.acked)


async def close_tables(tables: list[Table]) -> None:
    for table in tables:
        for client in table.sockets:
            await client.connection.close()


# -- Postgres: backends terminated under the server ------------------------------------------


@asynccontextmanager
async def terminating_backends(database_url: str) -> AsyncIterator[list[int]]:
    """Terminate every backend of the database every KILL_EVERY s for BURST s (from the
    admin database); yields the list of how many went each round."""
    database = database_url.rsplit("/", 1)[1]
    killed: list[int] = []
    admin = await asyncpg.connect(ADMIN_URL)

    async def kill() -> None:
        stop = time.monotonic() + BURST
        while time.monotonic() < stop:
            killed.append(
                await admin.fetchval(
                    "select count(*) from (select pg_terminate_backend(pid)"
                    " from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()"
                    " and backend_type = 'client backend') as terminated",
                    database,
                )
            )
            await asyncio.sleep(KILL_EVERY)

    task = asyncio.create_task(kill())
    try:
        yield killed
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await admin.close()


async def test_moves_through_terminated_postgres_backends_are_stored_and_broadcast(
    tmp_path: Path,
) -> None:
    """Human games and games against the AI, played while the server's backends die."""
    async with migrated_database() as url:
        server = ServerProcess(tmp_path / "data", url)
        server.log_path = tmp_path / "server.log"
        server.start()
        api = Api(server.base_url)
        base = f"ws://127.0.0.1:{server.port}"
        try:
            users = [await api.guest(), await api.guest()]
            tables = [
                await open_table(api, [base], users, against_ai=index % 3 == 2)
                for index in range(6)
            ]
            async with terminating_backends(url) as killed:
                await asyncio.gather(*(play_out(table, seed) for seed, table in enumerate(tables)))
            for table in tables:
                await check_delivered(api, table)
            await close_tables(tables)
        finally:
            await api.close()
            server.stop()
    log = server.log_path.read_text()
    print(
        f"backends terminated: {sum(killed)} in {len(killed)} rounds;"
        f" answers `internal`: {sum(t.internal for t in tables)};"
        f" stored despite an error: {log.count('stored=True')}"
    )
    assert sum(killed) > 0


# -- Redis: the command connection killed ---------------------------------------------------


async def kill_command_connection(redis: Redis, prefix: str, pid: int) -> int:
    """`CLIENT KILL` of the server's command connection (not its pub/sub one)."""
    killed = 0
    for info in await redis.client_list(_type="normal"):
        name = info["name"]
        if name.startswith(f"{prefix}:") and f"-{pid}-" in name and name.endswith(":cmd"):
            killed += await redis.client_kill_filter(_id=info["id"])
    return killed


async def test_moves_published_through_a_killed_redis_connection_reach_every_watcher(
    tmp_path: Path,
) -> None:
    """Before each human move the publishing process loses its Redis command connection."""
    async with redis_run() as (redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        api = Api(servers[0].base_url)
        try:
            for server in servers:
                server.start()
            bases = [f"ws://127.0.0.1:{server.port}" for server in servers]
            users = [await api.guest(), await api.guest()]
            tables = [
                await open_table(api, bases, users, against_ai=index == 2) for index in range(3)
            ]
            publisher = servers[0].process
            assert publisher is not None
            kills: list[int] = []

            async def cut() -> None:
                kills.append(await kill_command_connection(redis, prefix, publisher.pid))

            await asyncio.gather(
                *(play_out(table, seed, before_move=cut) for seed, table in enumerate(tables))
            )
            for table in tables:
                await check_delivered(api, table)
            await close_tables(tables)
        finally:
            await api.close()
            for server in servers:
                server.stop()
    assert sum(kills) > 0
    assert all(table.internal == 0 for table in tables), [t.internal for t in tables]


# -- embedded mode: the files on disk ---------------------------------------------------------


def modes(data_dir: Path) -> dict[str, int]:
    """Permission bits of the data directory and of every file in it, by name."""
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in (data_dir, *data_dir.iterdir())}


def start_under_umask_022(server: ServerProcess) -> None:
    previous = os.umask(0o022)  # the common default: new files 0644, directories 0755
    try:
        server.start()
    finally:
        os.umask(previous)


async def test_the_data_directory_and_its_files_are_private_to_the_server_user(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    database = data_dir / "gamesocket.sqlite3"
    private = {
        "data": 0o700,
        "gamesocket.sqlite3": 0o600,
        "gamesocket.sqlite3-wal": 0o600,
        "gamesocket.sqlite3-shm": 0o600,
        "guest_jwt_secret": 0o600,
    }
    server = ServerProcess(data_dir, f"sqlite:///{database}")
    start_under_umask_022(server)
    api = Api(server.base_url)
    try:
        user = await api.guest()
        game = await api.create(user, GAME, seats={"x": "me", "o": AI}, public=False)
        played = await api.http.post(
            f"/api/games/{game['game_id']}/moves", json={"move": 4}, headers=user["headers"]
        )
        assert played.status_code == 200, played.text
        assert modes(data_dir) == private
    finally:
        await api.close()
        server.stop()

    # Files an older server left readable to everyone are made private on start.
    for path in data_dir.iterdir():
        path.chmod(0o644)
    server = ServerProcess(data_dir, f"sqlite:///{database}")
    start_under_umask_022(server)
    api = Api(server.base_url)
    try:
        assert (await api.snapshot(game["game_id"], user))["version"] >= 1
        assert modes(data_dir) == private
    finally:
        await api.close()
        server.stop()


# -- /api/connections: no private game ids --------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_connections_list_public_games_only_and_count_every_socket(
    start_server: Callable[..., ServerThread], store: str
) -> None:
    server = start_server() if store == "sqlite" else start_server(database_url="memory://")
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        hidden = await api.create(alice, GAME, seats={"x": "me", "o": AI}, public=False)
        shown = await api.create(alice, GAME, seats={"x": "me", "o": AI})
        player = await connect(server.ws_url(GAME, hidden["game_id"], token=alice["access_token"]))
        watcher = await connect(server.ws_url(GAME, shown["game_id"]))
        for client in (player, watcher):
            await client.expect("state")
        deadline = time.monotonic() + 10
        while True:  # presence is published after a short delay
            reply = await api.http.get("/api/connections")
            counts = reply.json()
            if (counts["players"], counts["spectators"]) == (1, 1):
                break
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.05)
        # The private game's socket counts in the totals; its id is nowhere.
        assert counts["games"] == {shown["game_id"]: {"players": 0, "spectators": 1}}
        assert hidden["game_id"] not in reply.text
        for client in (player, watcher):
            await client.connection.close()
    finally:
        await api.close()
