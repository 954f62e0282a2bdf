"""`gamesocket migrate` on a real PostgreSQL: applies in order, once, and knows the CLI's log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg
import pytest

from socket_server.migrate import LOCAL_BOOTSTRAP, apply_migrations_async, migration_files
from socket_server.store import Actor, NotPermitted
from socket_server.store.postgres import PostgresStore
from tests.conftest import PROJECT_ROOT
from tests.integration.test_store_contract import AI, make_game, next_version
from tests.pgutil import (
    ADMIN_URL,
    bootstrap_lock,
    database_url,
    empty_database,
    migrated_database,
)

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


async def test_a_store_on_a_database_behind_its_migrations_says_what_to_do() -> None:
    # The server was upgraded, the database not yet: every change would fail.
    async with migrated_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("drop function gamesocket.try_append_events_as")
        finally:
            await conn.close()
        with pytest.raises(RuntimeError, match=r"try_append_events_as\): run `gamesocket migrate`"):
            await PostgresStore(url).open()


async def test_a_non_superuser_owner_migrates_and_serves_as_on_supabase() -> None:
    # On Supabase the tables belong to `postgres`, which is no superuser: the migrations,
    # the definer helpers and the role switches must all work for such an owner.
    owner = f"gamesocket_test_owner_{uuid.uuid4().hex[:8]}"
    try:
        async with empty_database() as url:
            admin = await asyncpg.connect(url)
            try:
                async with bootstrap_lock():
                    await admin.execute(LOCAL_BOOTSTRAP.read_text())
                await admin.execute(
                    f"create role {owner} login createrole;"
                    f"grant anon, authenticated to {owner};"
                    f"grant usage on schema auth to {owner};"
                    f"alter database {url.rsplit('/', 1)[1]} owner to {owner}"
                )
                owner_url = database_url(url.rsplit("/", 1)[1], user=owner)
                async with bootstrap_lock():
                    assert await apply_migrations_async(owner_url) == NAMES
                # A database user that cannot take the roles is told what to grant.
                await admin.execute(f"create role {owner}_other login")
                with pytest.raises(
                    RuntimeError, match=f"grant .*gamesocket_player.* to {owner}_other"
                ):
                    await PostgresStore(
                        database_url(url.rsplit("/", 1)[1], user=f"{owner}_other")
                    ).open()
                tables = await admin.fetch(
                    "select tableowner from pg_tables where schemaname = 'public'"
                )
                assert {r["tableowner"] for r in tables} == {owner}

                alice, carol = Actor(user_id=str(uuid.uuid4())), Actor(user_id=str(uuid.uuid4()))
                store = PostgresStore(owner_url)
                await store.open()
                try:
                    game = make_game(
                        seats=({"kind": "human", "user_id": alice.user_id}, AI),
                        public=False,
                        created_by=alice.user_id,
                    )
                    await store.create_game(game, alice)
                    moved, event = next_version(game, 4, actor=alice)
                    await store.commit_change(moved, event, alice)
                    with pytest.raises(NotPermitted):  # not alice's turn any more
                        await store.commit_change(*next_version(moved, 0, actor=alice), alice)
                    assert await store.get_game(game.game_id, alice) == moved
                    assert await store.get_game(game.game_id, carol) is None
                    assert [g.game_id for g in await store.active_ai_games()] == [game.game_id]
                finally:
                    await store.close()
            finally:
                await admin.close()
    finally:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            for role in (owner, f"{owner}_other"):  # its own roles, no one else's
                await conn.execute(f"drop role if exists {role}")
        finally:
            await conn.close()
