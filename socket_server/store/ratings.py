"""Reading ratings from the game store's database (PROTOCOL.md "Ratings"): the seats'
`rating`, the leaderboard and the profiles. One row per user and game type, written
only with a rated game's final event (`store/settle.py`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from socket_server.store.base import Actor, GameStore
from socket_server.store.memory import MemoryStore
from socket_server.store.settle import COLUMNS, PG_COLUMNS, PlayerRating, player_rating

if TYPE_CHECKING:
    from socket_server.store.postgres import PostgresStore
    from socket_server.store.sqlite import SqliteStore


class RatingStore(Protocol):
    async def ratings_of(self, game_type: str, user_ids: list[str]) -> dict[str, PlayerRating]:
        """Each user's rating in `game_type` (a starting one for a user without one)."""

    async def user_ratings(self, user_id: str) -> list[PlayerRating]:
        """Every rating the user has, by game type."""

    async def leaderboard(
        self, game_type: str, limit: int, max_deviation: float
    ) -> list[PlayerRating]:
        """The best `limit` ratings of `game_type` with a deviation of at most
        `max_deviation`, best first (equal ratings by user id)."""


def _with_starts(
    game_type: str, user_ids: list[str], found: list[PlayerRating]
) -> dict[str, PlayerRating]:
    rows = {row.user_id: row for row in found}
    return {user: rows.get(user, PlayerRating(user, game_type)) for user in user_ids}


class MemoryRatings:
    def __init__(self, store: MemoryStore) -> None:
        self.ratings = store.ratings

    async def ratings_of(self, game_type: str, user_ids: list[str]) -> dict[str, PlayerRating]:
        found = [self.ratings[(u, game_type)] for u in user_ids if (u, game_type) in self.ratings]
        return _with_starts(game_type, user_ids, found)

    async def user_ratings(self, user_id: str) -> list[PlayerRating]:
        rows = [row for (user, _), row in self.ratings.items() if user == user_id]
        return sorted(rows, key=lambda row: row.game_type)

    async def leaderboard(
        self, game_type: str, limit: int, max_deviation: float
    ) -> list[PlayerRating]:
        rows = [
            row
            for (_, kind), row in self.ratings.items()
            if kind == game_type and row.rating.deviation <= max_deviation
        ]
        rows.sort(key=lambda row: (-row.rating.rating, row.user_id))
        return rows[: max(limit, 0)]


class SqliteRatings:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _select(self, where: str, params: list[Any]) -> list[PlayerRating]:
        rows = await self.store._rows(f"SELECT {COLUMNS} FROM ratings WHERE {where}", params)
        return [player_rating(row) for row in rows]

    async def ratings_of(self, game_type: str, user_ids: list[str]) -> dict[str, PlayerRating]:
        found = await self._select(
            "game_type = ? AND user_id IN (SELECT value FROM json_each(?))",
            [game_type, msgspec.json.encode(user_ids).decode()],
        )
        return _with_starts(game_type, user_ids, found)

    async def user_ratings(self, user_id: str) -> list[PlayerRating]:
        return await self._select("user_id = ? ORDER BY game_type", [user_id])

    async def leaderboard(
        self, game_type: str, limit: int, max_deviation: float
    ) -> list[PlayerRating]:
        return await self._select(
            "game_type = ? AND deviation <= ? ORDER BY rating DESC, user_id LIMIT ?",
            [game_type, max_deviation, max(limit, 0)],
        )


class PostgresRatings:
    """public.game_ratings, read as `anon` (the policies let everyone read ratings)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def _select(self, where: str, *args: Any) -> list[PlayerRating]:
        async with self.store._as(Actor.ANONYMOUS) as conn:
            rows = await conn.fetch(
                f"select {PG_COLUMNS} from public.game_ratings where {where}", *args
            )
        return [player_rating(row) for row in rows]

    async def ratings_of(self, game_type: str, user_ids: list[str]) -> dict[str, PlayerRating]:
        # A user id that is not a UUID is no Supabase user: it has no rating.
        ids = [user for user in user_ids if _is_uuid(user)]
        found = await self._select("game_type = $1 and user_id = any($2::uuid[])", game_type, ids)
        return _with_starts(game_type, user_ids, found)

    async def user_ratings(self, user_id: str) -> list[PlayerRating]:
        if not _is_uuid(user_id):
            return []
        return await self._select("user_id = $1::uuid order by game_type", user_id)

    async def leaderboard(
        self, game_type: str, limit: int, max_deviation: float
    ) -> list[PlayerRating]:
        return await self._select(
            "game_type = $1 and deviation <= $2 order by rating desc, user_id limit $3",
            game_type,
            max_deviation,
            max(limit, 0),
        )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def ratings_for(store: GameStore) -> RatingStore:
    """The ratings of `store`'s database."""
    from socket_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteRatings(store)
    if isinstance(store, MemoryStore):
        return MemoryRatings(store)
    # Not imported here: embedded mode never loads the Postgres driver.
    if type(store).__name__ == "PostgresStore":
        return PostgresRatings(store)  # type: ignore[arg-type]
    raise TypeError(f"no ratings for a store of type {type(store).__name__}")


__all__ = ["PlayerRating", "RatingStore", "ratings_for"]
