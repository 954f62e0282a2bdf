"""The `gamesocket` command and the Supabase-mode differences of the REST API."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

import asyncpg

from tests.conftest import require
from tests.pgutil import ADMIN_URL, database_url, postgres_available
from tests.server_harness import PROJECT_ROOT, Api, ServerThread, free_port


def gamesocket(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "socket_server.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
    )


def test_migrate_needs_a_database_url() -> None:
    done = gamesocket("migrate")
    assert done.returncode == 2 and "DATABASE_URL" in done.stderr


async def test_migrate_creates_the_schema_and_is_idempotent() -> None:
    require(await postgres_available(), f"PostgreSQL at {ADMIN_URL}")
    name = f"gamesocket_test_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'create database "{name}"')
    try:
        first = gamesocket("migrate", "--database-url", database_url(name), "--bootstrap-local")
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("applied ")
        again = gamesocket("migrate", "--database-url", database_url(name), "--bootstrap-local")
        assert again.returncode == 0 and "up to date" in again.stdout
        target = await asyncpg.connect(database_url(name))
        try:
            tables = {
                row["table_name"]
                for row in await target.fetch(
                    "select table_name from information_schema.tables "
                    "where table_schema = 'gamesocket'"
                )
            }
        finally:
            await target.close()
        assert tables, "the migration created no tables"
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


async def test_supabase_mode_has_no_guest_tokens(
    start_server: Callable[..., ServerThread],
) -> None:
    secret = "a-supabase-jwt-secret-of-at-least-32-characters"
    # A Supabase URL on a closed local port: the JWKS warm-up fails fast and stays local.
    supabase_url = f"http://127.0.0.1:{free_port()}"
    server = start_server(
        supabase_jwt_secret=secret, supabase_url=supabase_url, supabase_anon_key="anon-key"
    )
    api = Api(server.base_url)
    try:
        guest = await api.http.post("/api/auth/guest")
        assert guest.status_code == 404 and guest.json()["error"]["code"] == "not_found"
        config = (await api.http.get("/api/config")).json()
        assert config == {
            "mode": "supabase",
            "supabase_url": supabase_url,
            "supabase_anon_key": "anon-key",
        }
    finally:
        await api.close()
