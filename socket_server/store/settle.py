"""Ratings settled with a rated game's final event, inside the store's transaction.

Only the stores write ratings, and only here: each store's `commit_change` calls its
`settle_*` after appending the event, in the same transaction (PROTOCOL.md "Ratings":
"updated atomically with the final version"). The store's version check decides which
final event lands, so both players' ratings change exactly once, even with processes
racing; an aborted game changes nothing. In Postgres the rest of that transaction runs
as the server's role: the player appended the event under RLS, and nobody but the
server may write a rating. The readers are in `store/ratings.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from socket_server.ratings import (
    START_DEVIATION,
    START_RATING,
    START_VOLATILITY,
    Rating,
    after_game,
    is_rated,
)
from socket_server.store.base import GameRecord, utc_now

if TYPE_CHECKING:
    import asyncpg


@dataclass(frozen=True)
class PlayerRating:
    """A user's rating in one game type; `games`: the rated games that made it."""

    user_id: str
    game_type: str
    rating: Rating = field(default_factory=Rating)
    games: int = 0


@dataclass(frozen=True)
class Outcome:
    """A rated game's end: its two players in seat order and the first one's score."""

    game_type: str
    first: str
    second: str
    first_score: float


def rated_outcome(game: GameRecord) -> Outcome | None:
    """The outcome to rate when storing `game` (a new version) ends a rated game, else None
    (unrated, or not finished: an aborted game rates nothing)."""
    if game.status != "finished" or not is_rated(game.options):
        return None
    names = list(game.seats)
    users = [(game.seats[name] or {}).get("user_id") for name in names]
    if len(names) != 2 or None in users or users[0] == users[1]:
        return None
    winner = (game.state.get("result") or {}).get("winner")
    score = 0.5 if winner is None else float(winner == names[0])
    return Outcome(game.game_type, str(users[0]), str(users[1]), score)


def settled(
    outcome: Outcome, current: Mapping[str, PlayerRating]
) -> tuple[PlayerRating, PlayerRating]:
    """Both players' rows after the game (Glicko-2, one game one rating period);
    `current`: their rows before it (a player without one starts afresh)."""
    first = current.get(outcome.first, PlayerRating(outcome.first, outcome.game_type))
    second = current.get(outcome.second, PlayerRating(outcome.second, outcome.game_type))
    a, b = after_game(first.rating, second.rating, outcome.first_score)
    return (
        replace(first, rating=a, games=first.games + 1),
        replace(second, rating=b, games=second.games + 1),
    )


# Both SQL stores' columns, in this order (Postgres reads user_id::text).
COLUMNS = "user_id, game_type, rating, deviation, volatility, games"


def player_rating(row: Any) -> PlayerRating:
    """A row of COLUMNS."""
    return PlayerRating(row[0], row[1], Rating(row[2], row[3], row[4]), row[5])


def _numbers(row: PlayerRating) -> tuple[float, float, float, int]:
    return row.rating.rating, row.rating.deviation, row.rating.volatility, row.games


# -- memory ------------------------------------------------------------------------------
def settle_memory(ratings: dict[tuple[str, str], PlayerRating], game: GameRecord) -> None:
    """In MemoryStore.commit_change, with the event (no await in between)."""
    outcome = rated_outcome(game)
    if outcome is None:
        return
    current = {u: ratings[(u, t)] for u, t in _keys(outcome) if (u, t) in ratings}
    for row in settled(outcome, current):
        ratings[(row.user_id, row.game_type)] = row


def _keys(outcome: Outcome) -> list[tuple[str, str]]:
    return [(outcome.first, outcome.game_type), (outcome.second, outcome.game_type)]


# -- SQLite ------------------------------------------------------------------------------
SQLITE_TABLE = """
    CREATE TABLE ratings (
        user_id TEXT NOT NULL,
        game_type TEXT NOT NULL,
        rating REAL NOT NULL,
        deviation REAL NOT NULL,
        volatility REAL NOT NULL,
        games INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (user_id, game_type)
    );
    CREATE INDEX ratings_board ON ratings (game_type, rating DESC);
"""


def settle_sqlite(conn: sqlite3.Connection, game: GameRecord) -> None:
    """In the writer's transaction (the change's savepoint), after the event's insert."""
    outcome = rated_outcome(game)
    if outcome is None:
        return
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM ratings WHERE game_type = ? AND user_id IN (?, ?)",
        (outcome.game_type, outcome.first, outcome.second),
    ).fetchall()
    now = utc_now().isoformat(timespec="microseconds")
    for new in settled(outcome, {row[0]: player_rating(row) for row in rows}):
        conn.execute(
            f"INSERT INTO ratings ({COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, game_type) DO UPDATE SET rating = excluded.rating,"
            " deviation = excluded.deviation, volatility = excluded.volatility,"
            " games = excluded.games, updated_at = excluded.updated_at",
            (new.user_id, new.game_type, *_numbers(new), now),
        )


# -- Postgres ----------------------------------------------------------------------------
# public.game_ratings (migrations/20261202110000_gamesocket_ratings.sql): everyone reads,
# only gamesocket_server writes.
PG_COLUMNS = "user_id::text, game_type, rating, deviation, volatility, games"
SERVER_CLAIMS = '{"role": "gamesocket_server"}'


async def settle_postgres(conn: asyncpg.Connection, game: GameRecord) -> None:
    """In commit_change's transaction, after gamesocket.append_event stored the final
    event: the rest of the transaction runs as the server's role, which alone may write
    ratings. Both rows are created if new and locked in user order (two games ending at
    once with a player in common wait for each other, and never deadlock)."""
    outcome = rated_outcome(game)
    if outcome is None:
        return
    await conn.execute(
        "select set_config('role', 'gamesocket_server', true),"
        " set_config('request.jwt.claims', $1, true)",
        SERVER_CLAIMS,
    )
    users = sorted([outcome.first, outcome.second])
    await conn.execute(
        "insert into public.game_ratings (user_id, game_type, rating, deviation, volatility)"
        " select u, $2, $3, $4, $5 from unnest($1::uuid[]) as u order by u"
        " on conflict (user_id, game_type) do nothing",
        users,
        outcome.game_type,
        START_RATING,
        START_DEVIATION,
        START_VOLATILITY,
    )
    rows = await conn.fetch(
        f"select {PG_COLUMNS} from public.game_ratings where game_type = $1"
        " and user_id = any($2::uuid[]) order by user_id for update",
        outcome.game_type,
        users,
    )
    for new in settled(outcome, {row[0]: player_rating(row) for row in rows}):
        await conn.execute(
            "update public.game_ratings set rating = $3, deviation = $4, volatility = $5,"
            " games = $6, updated_at = now() where user_id = $1::uuid and game_type = $2",
            new.user_id,
            new.game_type,
            *_numbers(new),
        )
