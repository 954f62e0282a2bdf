"""The SQLite store's writer process: its life beside the server's, and its death."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socket_server.store import Actor, DuplicateRequest
from socket_server.store.sqlite import SqliteStore, _open_writer, _time_text
from socket_server.store.sqlite_writer import WriterLost, WriterProcess
from tests.conftest import PROJECT_ROOT
from tests.integration.test_store_contract import ALICE, make_game, next_version, sqlite_store


# Run in the writer process (which imports this module to find them).
def _pid(_conn: sqlite3.Connection) -> int:
    return os.getpid()


def _sleep_then_pid(_conn: sqlite3.Connection, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _fail(_conn: sqlite3.Connection) -> None:
    raise DuplicateRequest(7)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, this test process, may not have reaped it yet).
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


async def _until_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with sqlite_store(tmp_path) as opened:
        assert isinstance(opened, SqliteStore)
        yield opened


async def test_writes_run_in_another_process_that_ends_with_close(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "games.sqlite3")
    await store.open()
    pid = await store._on_writer(_pid)
    assert pid != os.getpid() and _alive(pid)
    await store.close()
    assert await _until_dead(pid)
    with pytest.raises(RuntimeError, match="not open"):
        await store._on_writer(_pid)


async def test_an_error_in_the_process_reaches_the_caller_as_itself(store: SqliteStore) -> None:
    with pytest.raises(DuplicateRequest) as raised:
        await store._on_writer(_fail)
    assert raised.value.version == 7
    assert await store._on_writer(_pid)  # and the process goes on


async def test_a_killed_writer_fails_its_calls_and_the_next_call_starts_another(
    store: SqliteStore,
) -> None:
    game = make_game()
    await store.create_game(game, ALICE)
    first = await store._on_writer(_pid)
    in_flight = asyncio.ensure_future(store._on_writer(_sleep_then_pid, 5.0))
    await asyncio.sleep(0.3)  # the process is in the call
    os.kill(first, signal.SIGKILL)
    with pytest.raises(WriterLost):
        await in_flight
    # The next change starts a new process and is stored there.
    moved, event = next_version(game, 4)
    await store.commit_change(moved, event, ALICE)
    assert await store.get_game(game.game_id, ALICE) == moved
    second = await store._on_writer(_pid)
    assert second != first


async def test_sigterm_and_sigint_do_not_stop_the_writer(store: SqliteStore) -> None:
    # They reach the whole process group when a server is stopped: the server, not the
    # writer, decides when writing ends (after the changes under way).
    pid = await store._on_writer(_pid)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.3)
    assert await store._on_writer(_pid) == pid


async def test_a_file_that_cannot_be_opened_fails_start_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    writer = WriterProcess(tmp_path / "missing-dir" / "games.sqlite3", _open_writer)
    with pytest.raises(FileNotFoundError):
        await writer.start()
    assert writer.pid is None


async def test_the_writer_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "games.sqlite3"
    script = (
        "import asyncio, os, sys\n"
        "from socket_server.store.sqlite import SqliteStore, _open_writer\n"
        "from tests.integration.test_sqlite_writer import _pid\n"
        "async def main():\n"
        "    store = SqliteStore(sys.argv[1])\n"
        "    await store.open()\n"
        "    print(await store._on_writer(_pid), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(path), cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    writer_pid = int(await asyncio.wait_for(parent.stdout.readline(), 30))
    parent.kill()
    await parent.wait()
    assert await _until_dead(writer_pid)


@given(
    moment=st.datetimes(timezones=st.none() | st.timezones() | st.just(UTC)),
    whole_second=st.booleans(),
)
def test_a_time_is_stored_as_the_isoformat_of_its_utc_time(
    moment: datetime, whole_second: bool
) -> None:
    if whole_second:  # msgspec spells no fraction then: the text must still have one
        moment = moment.replace(microsecond=0)
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert _time_text(moment) == utc.isoformat(timespec="microseconds")


async def test_a_move_crosses_to_the_writer_and_is_stored_as_text(store: SqliteStore) -> None:
    # The state and clock cross the pipe as JSON bytes: stored as BLOBs they would no
    # longer be TEXT to SQLite (its JSON functions take a BLOB for JSONB).
    game = make_game("connect4", clock={"running": "red", "remaining_ms": {"red": 1}})
    await store.create_game(game, Actor.SERVER)
    moved, event = next_version(game, 3)
    moved = replace(moved, updated_at=moved.updated_at.replace(microsecond=0))
    await store.commit_change(moved, replace(event, at=moved.updated_at), Actor.SERVER)
    with sqlite3.connect(store.path) as conn:
        row = conn.execute(
            "SELECT typeof(state), state, typeof(clock), clock, updated_at FROM games"
        ).fetchone()
        at = conn.execute("SELECT at FROM events WHERE version = 1").fetchone()[0]
    assert row[0] == "text" and json.loads(row[1]) == moved.state
    assert row[2] == "text" and json.loads(row[3]) == moved.clock
    assert row[4] == at == moved.updated_at.isoformat(timespec="microseconds")
    assert (await store.get_game(game.game_id, Actor.SERVER)) == moved
