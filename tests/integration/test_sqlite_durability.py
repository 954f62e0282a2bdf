"""SqliteStore beyond the shared contract: kill -9 durability, the schema, shared files."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest

from socket_server.store import Actor, DuplicateRequest, StaleVersion
from socket_server.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.conftest import PROJECT_ROOT
from tests.integration.test_store_contract import ALICE, make_game, next_version

# Creates a game and commits changes as fast as it can, printing each version once
# commit_change has returned: that is the moment a client would be told "stored".
CHILD = """
import asyncio, dataclasses, sys
from socket_server.store import Actor, EventRecord, GameRecord
from socket_server.store.sqlite import SqliteStore

async def main(path, game_id):
    store = SqliteStore(path)
    await store.open()
    game = GameRecord(game_id, "counter", "active", {}, {"history": []}, 0)
    await store.create_game(game, Actor.SERVER)
    while True:
        history = [*game.state["history"], game.version]
        game = dataclasses.replace(game, version=game.version + 1, state={"history": history})
        event = EventRecord(game_id, game.version, "move", move=game.version - 1)
        await store.commit_change(game, event, Actor.SERVER)
        print(game.version, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


# Run in the store's writer process (which imports this module to find them).
def _synchronous(conn: sqlite3.Connection) -> tuple[int]:
    row: tuple[int] = conn.execute("PRAGMA synchronous").fetchone()
    return row


_STATEMENTS: list[str] = []


def _trace_statements(conn: sqlite3.Connection) -> None:
    _STATEMENTS.clear()
    conn.set_trace_callback(_STATEMENTS.append)


def _traced_statements(conn: sqlite3.Connection) -> list[str]:
    conn.set_trace_callback(None)
    return list(_STATEMENTS)


# Group commit under kill -9: GAMES games, two writers racing on each (a lost race is a
# StaleVersion, retried on a fresh read), every writer printing each change it was told
# is stored. Many changes of different games and of the same game share transactions.
CHILD_CONCURRENT = """
import asyncio, dataclasses, random, sys, uuid
from socket_server.store import Actor, EventRecord, GameRecord, StaleVersion
from socket_server.store.sqlite import SqliteStore

async def write(store, game_id, writer):
    while True:
        game = await store.get_game(game_id, Actor.SERVER)
        history = [*game.state["history"], f"{writer}:{game.version + 1}"]
        game = dataclasses.replace(game, version=game.version + 1, state={"history": history})
        event = EventRecord(game_id, game.version, "move", move=history[-1])
        await asyncio.sleep(random.random() / 1000)  # either writer may win the next race
        try:
            await store.commit_change(game, event, Actor.SERVER)
        except StaleVersion:
            continue
        # One write of the whole line (print writes each piece on its own when output
        # is unbuffered): a kill -9 never leaves half an acknowledgement in the pipe.
        sys.stdout.write(f"{game_id} {game.version} {history[-1]}\\n")
        sys.stdout.flush()

async def main(path, games):
    store = SqliteStore(path)
    await store.open()
    ids = [str(uuid.uuid4()) for _ in range(games)]
    for game_id in ids:
        game = GameRecord(game_id, "counter", "active", {}, {"history": []}, 0)
        await store.create_game(game, Actor.SERVER)
    await asyncio.gather(*(write(store, g, w) for g in ids for w in ("a", "b")))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
GAMES = 12


async def _acknowledged_until_kill_9(script: str, *args: str, lines: int) -> list[bytes]:
    """Run `script`, take `lines` of its output, kill -9 it: every line it printed."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    printed: list[bytes] = []
    try:
        while len(printed) < lines:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
            assert line, "the child exited before committing"
            printed.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
    # Lines printed before the kill are acknowledged changes too.
    printed += (await child.stdout.read()).splitlines()
    assert await child.wait() == -signal.SIGKILL
    return printed


async def test_acknowledged_changes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "games.sqlite3"
    game_id = str(uuid.uuid4())
    printed = await _acknowledged_until_kill_9(CHILD, str(path), game_id, lines=25)
    acknowledged = max(int(v) for v in printed)

    store = SqliteStore(path)
    await store.open()
    try:
        # kill -9 keeps the OS page cache; fsync on commit (FULL) is what covers power loss.
        assert store._reader is not None
        assert await store._on_writer(_synchronous) == (2,)
        async with store._reader.execute("PRAGMA synchronous") as cursor:
            assert await cursor.fetchone() == (2,)
        game = await store.get_game(game_id, Actor.SERVER)
        assert game is not None
        assert game.version >= acknowledged
        events = await store.events_after(game_id, 0, Actor.SERVER)
        assert [e.version for e in events] == list(range(1, game.version + 1))
        assert game.state["history"] == [e.move for e in events]
    finally:
        await store.close()


async def test_concurrent_acknowledged_changes_of_many_games_survive_kill_9(
    tmp_path: Path,
) -> None:
    path = tmp_path / "games.sqlite3"
    printed = await _acknowledged_until_kill_9(
        CHILD_CONCURRENT, str(path), str(GAMES), lines=GAMES * 20
    )
    acknowledged: dict[str, dict[int, str]] = {}
    for line in printed:
        game_id, version, move = line.decode().split()
        acknowledged.setdefault(game_id, {})[int(version)] = move
    assert len(acknowledged) > 1  # changes of several games were in flight together
    # Both writers of one game had changes acknowledged: the same game's changes raced.
    assert any(len({m[0] for m in moves.values()}) == 2 for moves in acknowledged.values())

    store = SqliteStore(path)
    await store.open()
    try:
        for game_id, moves in acknowledged.items():
            game = await store.get_game(game_id, Actor.SERVER)
            assert game is not None and game.version >= max(moves)
            events = await store.events_after(game_id, 0, Actor.SERVER)
            # Nothing lost, nothing reordered: versions 1..n, each the change told so.
            assert [e.version for e in events] == list(range(1, game.version + 1))
            assert game.state["history"] == [e.move for e in events]
            stored = {e.version: e.move for e in events}
            assert {v: stored[v] for v in moves} == moves
    finally:
        await store.close()


async def test_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "games.sqlite3"
    game = make_game()
    store = SqliteStore(path)
    await store.open()
    await store.create_game(game, ALICE)
    await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # The schema itself refuses a second event at a version, and a repeated request.
        row = (game.game_id, 1, "move", "0", "alice", "r1", "{}", "2026-01-01")
        insert = (
            "INSERT INTO events (game_id, version, kind, move, user_id, request_id, data, at) "
            "VALUES (?,?,?,?,?,?,?,?)"
        )
        conn.execute(insert, row)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, (*row[:5], "r2", *row[6:]))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, (game.game_id, 2, *row[2:]))
        conn.rollback()

    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.get_game(game.game_id, ALICE) == game
    finally:
        await again.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "games.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="schema version"):
        await store.open()


async def test_two_stores_on_one_file_race_with_one_winner(tmp_path: Path) -> None:
    # Two stores stand for two server processes sharing the file: separate connections,
    # separate locks; only SQLite's version condition can pick the winner.
    path = tmp_path / "games.sqlite3"
    stores = [SqliteStore(path), SqliteStore(path)]
    for store in stores:
        await store.open()
    try:
        game = make_game()
        await stores[0].create_game(game, ALICE)
        attempts = [
            (stores[i % 2], *next_version(game, i, request_id=f"race-{i}")) for i in range(8)
        ]
        results = await asyncio.gather(
            *(s.commit_change(new, event, ALICE) for s, new, event in attempts),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1, results
        assert all(isinstance(r, StaleVersion) for r in results if r is not None)
        winner = attempts[results.index(None)][1]
        for store in stores:
            assert await store.get_game(game.game_id, ALICE) == winner
        # The next change builds on the winner, through either store.
        following, event = next_version(winner, 8)
        await stores[1].commit_change(following, event, ALICE)
        assert await stores[0].get_game(game.game_id, ALICE) == following
        with pytest.raises(StaleVersion):
            await stores[0].commit_change(*next_version(winner, 8), ALICE)
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_changes_share_a_commit_and_keep_their_own_outcomes(
    tmp_path: Path,
) -> None:
    # Group commit: changes queued together are stored in one transaction (one fsync),
    # yet each call is answered as if it had been alone.
    store = SqliteStore(tmp_path / "games.sqlite3")
    await store.open()
    try:
        games = [make_game() for _ in range(20)]
        for game in games:
            await store.create_game(game, ALICE)
        retried = next_version(games[0], 4, request_id="r0")
        await store.commit_change(*retried, ALICE)
        await store._on_writer(_trace_statements)
        first = [next_version(game, 4) for game in games[1:]]
        second = next_version(first[0][0], 0)  # builds on a change of the same batch
        stale = next_version(games[1], 8)  # same version as first[0]: loses to it
        duplicate = next_version(retried[0], 0, request_id="r0", actor=ALICE)
        attempts = [*first, second, stale, duplicate]
        results = await asyncio.gather(
            *(store.commit_change(new, event, ALICE) for new, event in attempts),
            return_exceptions=True,
        )
        statements = await store._on_writer(_traced_statements)
        assert results[: len(first) + 1] == [None] * (len(first) + 1)
        assert isinstance(results[-2], StaleVersion)
        assert isinstance(results[-1], DuplicateRequest) and results[-1].version == 1
        assert statements.count("COMMIT") == 1
        # Two statements a change and no savepoint (the refused ones take back their own).
        assert not [s for s in statements if s.startswith("SAVEPOINT")]
        assert await store.get_game(games[1].game_id, ALICE) == second[0]
        for (new, _), game in zip(first[1:], games[2:], strict=True):
            assert await store.get_game(game.game_id, ALICE) == new
        assert await store.get_game(games[0].game_id, ALICE) == retried[0]
        assert [e.version for e in await store.events_after(games[1].game_id, 0, ALICE)] == [1, 2]
    finally:
        await store.close()


async def test_a_commit_is_visible_to_the_next_read_while_many_tasks_read(
    tmp_path: Path,
) -> None:
    # Reads share one connection: none may keep a statement (and its snapshot) open
    # between steps, or a busy reader would never see newer commits.
    store = SqliteStore(tmp_path / "games.sqlite3")
    await store.open()
    busy = make_game()
    await store.create_game(busy, ALICE)
    reading = True

    async def keep_reading() -> None:
        while reading:
            assert await store.get_game(busy.game_id, ALICE) is not None

    readers = [asyncio.create_task(keep_reading()) for _ in range(20)]
    try:
        for _ in range(50):
            game = make_game()
            await store.create_game(game, ALICE)
            assert await store.get_game(game.game_id, ALICE) == game
            stored, event = next_version(game, 4)
            await store.commit_change(stored, event, ALICE)
            assert await store.find_request(game.game_id, str(ALICE.user_id), "x", ALICE) is None
            assert await store.events_after(game.game_id, 0, ALICE) == [event]
    finally:
        reading = False
        await asyncio.gather(*readers)
        await store.close()
