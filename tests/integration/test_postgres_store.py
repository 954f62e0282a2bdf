"""PostgresStore details the contract suite does not reach, and its throughput bench."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from bench import store_throughput as throughput
from socket_server.settings import Settings
from socket_server.store import Actor, create_store
from socket_server.store.postgres import PostgresStore
from tests.conftest import require
from tests.pgutil import migrated_database, postgres_available


@pytest.mark.parametrize("prepared", [True, False])
async def test_prepared_statements_setting_reaches_the_connections(prepared: bool) -> None:
    # Supabase's transaction pooler loses named prepared statements between transactions:
    # DATABASE_PREPARED_STATEMENTS=0 must leave none on the server.
    async with migrated_database() as url:
        store = create_store(Settings(database_url=url, database_prepared_statements=prepared))
        assert isinstance(store, PostgresStore)
        store.max_connections = 1  # every call below on the one connection inspected
        await store.open()
        try:
            for _ in range(3):
                await store.list_games(Actor.ANONYMOUS, game_type="chess")
                assert await store.get_game(str(uuid.uuid4()), Actor.SERVER) is None
            assert store._pool is not None
            async with store._pool.acquire() as conn:
                named = await conn.fetch("select statement from pg_prepared_statements")
        finally:
            await store.close()
    statements = " ".join(row["statement"] for row in named)
    if prepared:
        assert "from public.games" in statements
    else:
        assert named == []


async def test_store_throughput_bench_measures_all_three_stores() -> None:
    require(await postgres_available(), "PostgreSQL for bench.store_throughput")
    results = await throughput.run(games=2, moves=3, pool=2)
    assert [r.store for r in results] == ["memory", "sqlite", "postgres"]
    assert all(r.moves == 6 and r.seconds > 0 for r in results)
    # The CPU column: this process's, and the local Postgres backends' as well.
    assert all(r.cpu_seconds is not None and r.cpu_seconds > 0 for r in results)
    assert throughput.process_cpu(os.getpid()) == pytest.approx(time.process_time(), abs=0.05)
