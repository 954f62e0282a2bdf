"""A throwaway Postgres database per test run: `gamesocket_test_<hex>`, migrated, dropped after.

The cluster is the local PostgreSQL 15 (user postgres, trust auth), or the one named by
GAMESOCKET_TEST_POSTGRES_URL. Roles are cluster-wide and shared by concurrent runs: the
bootstrap creates them idempotently, serialised by an advisory lock, and never drops them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from socket_server.migrate import apply_migrations_async
from socket_server.store.postgres import PostgresStore
from tests.conftest import require

ADMIN_URL = os.environ.get(
    "GAMESOCKET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_BOOTSTRAP_LOCK = 0x6773_7462  # held in the admin database while a run bootstraps


def database_url(name: str, user: str | None = None) -> str:
    """The URL of database `name` on the test cluster, as `user` (default: the admin's)."""
    parts = urlsplit(ADMIN_URL)
    if user is not None:
        parts = parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port or 5432}")
    return urlunsplit(parts._replace(path=f"/{name}"))


async def postgres_available() -> bool:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def empty_database() -> AsyncIterator[str]:
    """Yields the URL of a new, empty database; drops it afterwards."""
    require(await postgres_available(), f"PostgreSQL at {ADMIN_URL}")
    name = f"gamesocket_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'create database "{name}"')
        try:
            yield database_url(name)
        finally:
            await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


@asynccontextmanager
async def bootstrap_lock() -> AsyncIterator[None]:
    """Held while this run creates or grants the cluster-wide roles."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute("select pg_advisory_lock($1)", _BOOTSTRAP_LOCK)
        yield
    finally:
        await admin.close()  # closing the session releases the lock


@asynccontextmanager
async def migrated_database() -> AsyncIterator[str]:
    """Yields the URL of a new database with the local bootstrap and every migration."""
    async with empty_database() as url:
        async with bootstrap_lock():
            await apply_migrations_async(url, bootstrap_local=True)
        yield url


@asynccontextmanager
async def postgres_store(tmp_path: object = None) -> AsyncIterator[PostgresStore]:
    """An opened `PostgresStore` on a fresh migrated database (the contract suite's factory)."""
    async with migrated_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
