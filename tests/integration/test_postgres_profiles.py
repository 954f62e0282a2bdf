"""public.profiles under row-level security on a real PostgreSQL (migration
20261202100000_gamesocket_profiles.sql): anyone reads names, a user writes only their
own profile and only through the server, and the database refuses malformed names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from socket_server.store import Actor
from socket_server.store.postgres import PostgresStore
from socket_server.store.profiles import PostgresProfiles, Profile
from tests.integration.test_postgres_rls import sql_as
from tests.pgutil import postgres_store

ALICE = Actor(user_id=str(uuid.uuid4()))
BOB = Actor(user_id=str(uuid.uuid4()))
MALLORY = Actor(user_id=str(uuid.uuid4()))
EVERYONE = (ALICE, BOB, MALLORY, Actor.ANONYMOUS, Actor.SERVER)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with postgres_store() as store:
        profiles = PostgresProfiles(store)
        await profiles.create(ALICE, "Alice")
        await profiles.create(BOB, "Bob")
        yield store.url


async def names(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select user_id::text, name from public.profiles")
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


async def test_anyone_reads_every_name(url: str) -> None:
    for actor in EVERYONE:
        for write in (False, True):
            async with sql_as(url, actor, write=write) as conn:
                rows = await conn.fetch("select user_id::text, name from public.profiles")
            assert {row[0]: row[1] for row in rows} == {ALICE.user_id: "Alice", BOB.user_id: "Bob"}


async def test_a_user_renames_themselves_and_nobody_else(url: str) -> None:
    async with sql_as(url, ALICE, write=True) as conn:
        assert (
            await conn.execute(
                "update public.profiles set name = 'Alicia' where user_id = $1", ALICE.user_id
            )
            == "UPDATE 1"
        )
        # Bob's row is not Alice's to change: row-level security hides it from the update.
        assert (
            await conn.execute(
                "update public.profiles set name = 'Bob is a cheat' where user_id = $1", BOB.user_id
            )
            == "UPDATE 0"
        )
        assert await conn.execute("update public.profiles set name = 'Everyone'") == "UPDATE 1"
    # Nor may a profile be made for someone else, or taken over by an upsert.
    for statement in (
        "insert into public.profiles (user_id, name) values ($1, 'Bob')",
        "insert into public.profiles (user_id, name) values ($1, 'Bob')"
        " on conflict (user_id) do update set name = 'Taken'",
    ):
        async with sql_as(url, MALLORY, write=True) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await conn.execute(statement, BOB.user_id)
    assert await names(url) == {ALICE.user_id: "Alice", BOB.user_id: "Bob"}  # rolled back


@pytest.mark.parametrize(
    "statement",
    [
        "update public.profiles set name = 'Hacked' where user_id = $1",
        "insert into public.profiles (user_id, name) values (gen_random_uuid(), $1::text)",
        "delete from public.profiles where user_id = $1",
        "update public.profiles set user_id = gen_random_uuid() where user_id = $1",
    ],
)
async def test_api_clients_and_the_server_role_write_no_profile(url: str, statement: str) -> None:
    # PostgREST's roles (as any user, or anon) and the server's own identity: no write
    # privilege at all. A user writes only through the server, as gamesocket_player.
    for actor in EVERYONE:
        async with sql_as(url, actor) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement, ALICE.user_id)
    # As the player: no deleting, no moving a profile to another id.
    if statement.startswith(("delete", "update public.profiles set user_id")):
        async with sql_as(url, ALICE, write=True) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement, ALICE.user_id)
    assert await names(url) == {ALICE.user_id: "Alice", BOB.user_id: "Bob"}


@pytest.mark.parametrize("bad", ["", " Alice", "Alice ", "x" * 33, "a\u0007b", "a\nb"])
async def test_the_database_refuses_malformed_names(url: str, bad: str) -> None:
    async with sql_as(url, ALICE, write=True) as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "update public.profiles set name = $2 where user_id = $1", ALICE.user_id, bad
            )


async def test_the_store_writes_as_the_user(url: str) -> None:
    store = PostgresStore(url)
    await store.open()
    try:
        profiles = PostgresProfiles(store)
        assert await profiles.set_name(BOB, "Robert") == Profile(BOB.user_id or "", "Robert")
        assert await profiles.create(BOB, "Not used") == Profile(BOB.user_id or "", "Robert")
        # A user id that is not a UUID is no Supabase user: the database owns it nothing.
        with pytest.raises(asyncpg.PostgresError):
            await profiles.set_name(Actor(user_id="not-a-uuid"), "Nobody")
    finally:
        await store.close()
    assert (await names(url))[BOB.user_id or ""] == "Robert"
