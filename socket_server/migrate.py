"""Apply the SQL migrations of `migrations/` to a Postgres database, in name order.

Each migration runs in its own transaction and is recorded in
`gamesocket.gamesocket_migrations`, so a re-run applies only what is new. A migration
that `supabase db push` already applied (recorded in `supabase_migrations`) counts as
applied too. `bootstrap_local` first creates what a Supabase project already has (roles,
`auth` schema), so the same migrations run on a plain PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
LOCAL_BOOTSTRAP = Path(__file__).resolve().parent / "store" / "sql" / "local_supabase_bootstrap.sql"

# Any constant works: it only keeps two processes from migrating the same database at once.
_LOCK_KEY = 0x6761_6D65  # "game"

_TRACKING_TABLE = """
create schema if not exists gamesocket;
create table if not exists gamesocket.gamesocket_migrations (
    name text primary key,
    applied_at timestamptz not null default now()
);
"""


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


async def _already_applied(conn: asyncpg.Connection) -> set[str]:
    names = {
        r["name"] for r in await conn.fetch("select name from gamesocket.gamesocket_migrations")
    }
    # `supabase db push` records the timestamp prefix of each file it applied.
    if await conn.fetchval("select to_regclass('supabase_migrations.schema_migrations')"):
        pushed = {
            r["version"]
            for r in await conn.fetch("select version from supabase_migrations.schema_migrations")
        }
        names |= {p.name for p in migration_files() if p.name.split("_", 1)[0] in pushed}
    return names


async def apply_migrations_async(database_url: str, *, bootstrap_local: bool = False) -> list[str]:
    """The async form of `apply_migrations`, for callers already on an event loop."""
    conn = await asyncpg.connect(database_url, statement_cache_size=0)
    try:
        await conn.execute("select pg_advisory_lock($1)", _LOCK_KEY)
        try:
            if bootstrap_local:
                await conn.execute(LOCAL_BOOTSTRAP.read_text())
            await conn.execute(_TRACKING_TABLE)
            done = await _already_applied(conn)
            applied: list[str] = []
            for path in migration_files():
                if path.name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "insert into gamesocket.gamesocket_migrations (name) values ($1)",
                        path.name,
                    )
                applied.append(path.name)
            return applied
        finally:
            await conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


def apply_migrations(database_url: str, *, bootstrap_local: bool = False) -> list[str]:
    """Apply pending migrations to `database_url`; returns the names applied, in order."""
    return asyncio.run(apply_migrations_async(database_url, bootstrap_local=bootstrap_local))
