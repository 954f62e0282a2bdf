"""Player profiles in the game store's database: display names, and a player's games.

A profile is a user id and a display name (PROTOCOL.md "Players and names"). Anyone may
read names; a profile is created and renamed only as its own user (on Postgres the
call runs as that user, and row-level security refuses anything else: migration
`20261202100000_gamesocket_profiles.sql`). The name is checked before it gets here
(`socket_server.profiles.checked_name`); the stores keep it verbatim.

`games_of` lists the games a user holds a human seat in, as a caller may see them
(the same visibility as every read: public games, or the caller's own), newest first,
paged by a `(created_at, game_id)` cursor: the page after it is the games older than it.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from socket_server.store.base import Actor, GameRecord, GameStore, may_see, seats_held_by, utc_now

if TYPE_CHECKING:
    import sqlite3

    from socket_server.store.memory import MemoryStore
    from socket_server.store.postgres import PostgresStore
    from socket_server.store.sqlite import SqliteStore

# The place of a game in a user's history, newest first: (created_at, game_id).
GameCursor = tuple[datetime, str]


@dataclass(frozen=True)
class Profile:
    user_id: str
    name: str


class ProfileStore(Protocol):
    async def get(self, user_id: str) -> Profile | None:
        """The user's profile, or None when the user has none (never seen)."""

    async def create(self, actor: Actor, name: str) -> Profile:
        """`actor`'s profile, created with `name` unless one exists (then that one)."""

    async def set_name(self, actor: Actor, name: str) -> Profile:
        """Store `name` as `actor`'s display name (creating the profile if need be)."""

    async def display_names(self, user_ids: Collection[str]) -> dict[str, str]:
        """The names of those of `user_ids` that have a profile, in one read."""

    async def games_of(
        self, user_id: str, actor: Actor, limit: int, before: GameCursor | None = None
    ) -> list[GameRecord]:
        """Games with a human seat of `user_id` that `actor` may see, newest first, at
        most `limit`, all older than `before` when given."""


class MemoryProfiles:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.names: dict[str, str] = {}

    async def get(self, user_id: str) -> Profile | None:
        name = self.names.get(user_id)
        return None if name is None else Profile(user_id, name)

    async def create(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        return Profile(user_id, self.names.setdefault(user_id, name))

    async def set_name(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        self.names[user_id] = name
        return Profile(user_id, name)

    async def display_names(self, user_ids: Collection[str]) -> dict[str, str]:
        return {u: self.names[u] for u in set(user_ids) if u in self.names}

    async def games_of(
        self, user_id: str, actor: Actor, limit: int, before: GameCursor | None = None
    ) -> list[GameRecord]:
        games = [
            game
            for game in self.store._games.values()
            if seats_held_by(game.seats, user_id)
            and may_see(game, actor)
            and (before is None or (game.created_at, game.game_id) < before)
        ]
        games.sort(key=lambda g: (g.created_at, g.game_id), reverse=True)
        return copy.deepcopy(games[: max(limit, 0)])


def _own(actor: Actor) -> str:
    """The user a profile write is for: the actor itself, never anyone else."""
    if actor.user_id is None or actor.is_server:
        raise ValueError("a profile is written only as its own user")
    return actor.user_id


def _sqlite_create(conn: sqlite3.Connection, user_id: str, name: str) -> str:
    now = utc_now().isoformat()
    conn.execute(
        "INSERT INTO profiles (user_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO NOTHING",
        (user_id, name, now, now),
    )
    stored: str = conn.execute(
        "SELECT name FROM profiles WHERE user_id = ?", (user_id,)
    ).fetchone()[0]
    return stored


def _sqlite_set_name(conn: sqlite3.Connection, user_id: str, name: str) -> None:
    now = utc_now().isoformat()
    conn.execute(
        "INSERT INTO profiles (user_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE"
        " SET name = excluded.name, updated_at = excluded.updated_at",
        (user_id, name, now, now),
    )


class SqliteProfiles:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def get(self, user_id: str) -> Profile | None:
        rows = await self.store._rows("SELECT name FROM profiles WHERE user_id = ?", [user_id])
        return Profile(user_id, rows[0][0]) if rows else None

    async def create(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        stored: str = await self.store._write(_sqlite_create, user_id, name)
        return Profile(user_id, stored)

    async def set_name(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        await self.store._write(_sqlite_set_name, user_id, name)
        return Profile(user_id, name)

    async def display_names(self, user_ids: Collection[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        from socket_server.store.sqlite import _encode

        # One JSON array parameter, so no number of ids meets SQLite's variable limit.
        rows = await self.store._rows(
            "SELECT user_id, name FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))",
            [_encode(sorted(set(user_ids)))],
        )
        return {row[0]: row[1] for row in rows}

    async def games_of(
        self, user_id: str, actor: Actor, limit: int, before: GameCursor | None = None
    ) -> list[GameRecord]:
        from socket_server.store.sqlite import _GAME_COLUMNS, _game_record, _time_text, _visible

        condition, params = _visible(actor)
        page, page_params = "1", []
        if before is not None:
            page, page_params = "(created_at, game_id) < (?, ?)", [_time_text(before[0]), before[1]]
        rows = await self.store._rows(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE game_id IN"
            " (SELECT game_id FROM game_players WHERE user_id = ?)"
            f" AND {condition} AND {page} ORDER BY created_at DESC, game_id DESC LIMIT ?",
            [user_id, *params, *page_params, max(limit, 0)],
        )
        return [_game_record(row) for row in rows]


class PostgresProfiles:
    """public.profiles under row-level security (see its migration)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def get(self, user_id: str) -> Profile | None:
        names = await self.display_names([user_id])
        return Profile(user_id, names[user_id]) if user_id in names else None

    async def create(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        async with self.store._as(actor, write=True) as conn:
            await conn.execute(
                "insert into public.profiles (user_id, name) values ($1, $2)"
                " on conflict (user_id) do nothing",
                user_id,
                name,
            )
            # A statement of its own: it sees a profile another call created meanwhile.
            stored: str = await conn.fetchval(
                "select name from public.profiles where user_id = $1", user_id
            )
        return Profile(user_id, stored)

    async def set_name(self, actor: Actor, name: str) -> Profile:
        user_id = _own(actor)
        async with self.store._as(actor, write=True) as conn:
            await conn.execute(
                "insert into public.profiles (user_id, name) values ($1, $2)"
                " on conflict (user_id) do update set name = excluded.name, updated_at = now()",
                user_id,
                name,
            )
        return Profile(user_id, name)

    async def display_names(self, user_ids: Collection[str]) -> dict[str, str]:
        from socket_server.store.postgres import _uuid

        ids = sorted({u for u in user_ids if _uuid(u) == u})
        if not ids:
            return {}
        # Read as anyone: names are public.
        async with self.store._as(Actor.ANONYMOUS) as conn:
            rows = await conn.fetch(
                "select user_id::text, name from public.profiles where user_id = any($1::uuid[])",
                ids,
            )
        return {row[0]: row[1] for row in rows}

    async def games_of(
        self, user_id: str, actor: Actor, limit: int, before: GameCursor | None = None
    ) -> list[GameRecord]:
        from socket_server.store.postgres import _GAME_COLUMNS, _game_record, _uuid

        if _uuid(user_id) != user_id:
            return []
        at, after_id = before if before is not None else (None, None)
        # As the caller: row-level security shows only the games it may read.
        async with self.store._as(actor) as conn:
            rows = await conn.fetch(
                f"select {_GAME_COLUMNS} from public.games where id in"
                " (select s.game_id from public.game_seats s where s.user_id = $1::uuid)"
                " and ($2::timestamptz is null or (created_at, id) < ($2, $3::uuid))"
                " order by created_at desc, id desc limit $4",
                user_id,
                at,
                after_id,
                max(limit, 0),
            )
        return [_game_record(row) for row in rows]


def profiles_for(store: GameStore) -> ProfileStore:
    """The profiles of `store`'s database. Call it once per store: a memory store's
    profiles live in the object this returns."""
    from socket_server.store.memory import MemoryStore
    from socket_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteProfiles(store)
    if isinstance(store, MemoryStore):
        return MemoryProfiles(store)
    # Not imported here: embedded mode never loads the Postgres driver.
    if type(store).__name__ == "PostgresStore":
        return PostgresProfiles(store)  # type: ignore[arg-type]
    raise TypeError(f"no profiles for a store of type {type(store).__name__}")


__all__ = ["GameCursor", "Profile", "ProfileStore", "profiles_for"]
