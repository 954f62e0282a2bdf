"""`gamesocket migrate` on a real PostgreSQL: applies in order, once, and knows the CLI's log."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from socket_server.migrate import apply_migrations_async, migration_files
from socket_server.store import Actor
from socket_server.store.postgres import PostgresStore
from tests.conftest import PROJECT_ROOT
from tests.pgutil import bootstrap_lock, empty_database, migrated_database

NAMES = [path.name for path in migration_files()]


async def gamesocket_migrate(url: str) -> str:
    """`gamesocket migrate --bootstrap-local` as a user runs it; its output."""
    command = [sys.executable, "-m", "socket_server.cli", "migrate", "--bootstrap-local"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, "--database-url", url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


async def test_the_cli_applies_every_migration_once() -> None:
    assert len(NAMES) >= 2 and sorted(NAMES) == NAMES
    async with empty_database() as url:
        async with bootstrap_lock():
            first = await gamesocket_migrate(url)
            second = await gamesocket_migrate(url)
        assert first.splitlines() == [f"applied {name}" for name in NAMES]
        assert "nothing to apply" in second
        store = PostgresStore(url)
        await store.open()  # refuses to open on a database without the tables
        try:
            assert await store.list_games(Actor.ANONYMOUS) == []
        finally:
            await store.close()


async def test_migrations_pushed_by_the_supabase_cli_count_as_applied() -> None:
    async with migrated_database() as url:
        conn = await asyncpg.connect(url)
        try:
            # As if `supabase db push` had applied them: only its log knows.
            await conn.execute(
                "delete from gamesocket.gamesocket_migrations;"
                "create schema supabase_migrations;"
                "create table supabase_migrations.schema_migrations (version text primary key)"
            )
            await conn.executemany(
                "insert into supabase_migrations.schema_migrations values ($1)",
                [(name.split("_", 1)[0],) for name in NAMES],
            )
            assert await apply_migrations_async(url) == []
            # Without that log they would run again, and fail on the existing tables.
            await conn.execute("drop schema supabase_migrations cascade")
            with pytest.raises(asyncpg.DuplicateTableError):
                await apply_migrations_async(url)
        finally:
            await conn.close()


async def test_a_store_on_an_unmigrated_database_says_what_to_do() -> None:
    async with empty_database() as url:
        with pytest.raises(RuntimeError, match="run `gamesocket migrate`"):
            await PostgresStore(url).open()
