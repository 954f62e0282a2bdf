"""Rematch offers in the game store's database: which new game a finished game's rematch
is, decided once (PROTOCOL.md "Rematch").

`ask` records the seats asking for a rematch of a game and, once every seat of `needed`
has asked, records `new_game_id` as the rematch unless one is recorded already (a
compare-and-set in one transaction: SQLite's writer, Postgres `for update` on the row),
so two players asking at once, on two processes, agree on one new game. The caller
whose `ask` recorded the id creates that game.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec

from socket_server.store.base import Actor, GameStore

if TYPE_CHECKING:
    from socket_server.store.postgres import PostgresStore
    from socket_server.store.sqlite import SqliteStore


@dataclass
class Rematch:
    """A game's rematch: the seats that asked (in order) and the new game, once decided."""

    game_id: str
    offered_by: list[str] = field(default_factory=list)
    new_game_id: str | None = None
    decided_now: bool = False  # this `ask` recorded `new_game_id`: its caller creates it


def settle(current: Rematch, seats: list[str], needed: list[str], new_game_id: str) -> Rematch:
    """`current` with `seats` added, and `new_game_id` once every needed seat asked."""
    offered = current.offered_by + [seat for seat in seats if seat not in current.offered_by]
    if current.new_game_id is not None or not set(needed) <= set(offered):
        return Rematch(current.game_id, offered, current.new_game_id)
    return Rematch(current.game_id, offered, new_game_id, decided_now=True)


class RematchStore(Protocol):
    async def ask(
        self, game_id: str, seats: list[str], needed: list[str], new_game_id: str
    ) -> Rematch: ...

    async def get(self, game_id: str) -> Rematch | None: ...

    async def undo(self, game_id: str, new_game_id: str) -> None:
        """Forget `new_game_id` (its game could not be created): the next ask decides anew."""


class MemoryRematches:
    def __init__(self) -> None:
        self.rematches: dict[str, Rematch] = {}

    async def ask(
        self, game_id: str, seats: list[str], needed: list[str], new_game_id: str
    ) -> Rematch:
        settled = settle(self.rematches.get(game_id, Rematch(game_id)), seats, needed, new_game_id)
        self.rematches[game_id] = Rematch(game_id, settled.offered_by, settled.new_game_id)
        return settled

    async def get(self, game_id: str) -> Rematch | None:
        return self.rematches.get(game_id)

    async def undo(self, game_id: str, new_game_id: str) -> None:
        rematch = self.rematches.get(game_id)
        if rematch is not None and rematch.new_game_id == new_game_id:
            rematch.new_game_id = None


def _sqlite_ask(
    conn: sqlite3.Connection, game_id: str, seats: list[str], needed: list[str], new_id: str
) -> Rematch:
    conn.execute("BEGIN IMMEDIATE")  # the write lock: one writer, any process
    try:
        row = conn.execute(
            "SELECT offered_by, new_game_id FROM rematches WHERE game_id = ?", (game_id,)
        ).fetchone()
        current = Rematch(game_id) if row is None else Rematch(game_id, _seats(row[0]), row[1])
        settled = settle(current, seats, needed, new_id)
        conn.execute(
            "INSERT INTO rematches (game_id, offered_by, new_game_id) VALUES (?, ?, ?)"
            " ON CONFLICT (game_id) DO UPDATE"
            " SET offered_by = excluded.offered_by, new_game_id = excluded.new_game_id",
            (game_id, msgspec.json.encode(settled.offered_by).decode(), settled.new_game_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return settled


def _sqlite_undo(conn: sqlite3.Connection, game_id: str, new_game_id: str) -> None:
    conn.execute(
        "UPDATE rematches SET new_game_id = NULL WHERE game_id = ? AND new_game_id = ?",
        (game_id, new_game_id),
    )


def _seats(text: str) -> list[str]:
    return msgspec.json.decode(text, type=list[str])


class SqliteRematches:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def ask(
        self, game_id: str, seats: list[str], needed: list[str], new_game_id: str
    ) -> Rematch:
        rematch: Rematch = await self.store._write(_sqlite_ask, game_id, seats, needed, new_game_id)
        return rematch

    async def get(self, game_id: str) -> Rematch | None:
        rows = await self.store._rows(
            "SELECT offered_by, new_game_id FROM rematches WHERE game_id = ?", [game_id]
        )
        return Rematch(game_id, _seats(rows[0][0]), rows[0][1]) if rows else None

    async def undo(self, game_id: str, new_game_id: str) -> None:
        await self.store._write(_sqlite_undo, game_id, new_game_id)


class PostgresRematches:
    """public.game_rematches, written by the server's role (see its migration)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def ask(
        self, game_id: str, seats: list[str], needed: list[str], new_game_id: str
    ) -> Rematch:
        async with self.store._as(Actor.SERVER, write=True) as conn:
            await conn.execute(
                "insert into public.game_rematches (game_id) values ($1)"
                " on conflict (game_id) do nothing",
                game_id,
            )
            row = await conn.fetchrow(
                "select offered_by, new_game_id::text from public.game_rematches"
                " where game_id = $1 for update",
                game_id,
            )
            current = Rematch(game_id, list(row["offered_by"]), row["new_game_id"])
            settled = settle(current, seats, needed, new_game_id)
            await conn.execute(
                "update public.game_rematches set offered_by = $2, new_game_id = $3"
                " where game_id = $1",
                game_id,
                settled.offered_by,
                settled.new_game_id,
            )
        return settled

    async def get(self, game_id: str) -> Rematch | None:
        async with self.store._as(Actor.SERVER) as conn:
            row = await conn.fetchrow(
                "select offered_by, new_game_id::text from public.game_rematches"
                " where game_id = $1",
                game_id,
            )
        return None if row is None else Rematch(game_id, list(row[0]), row[1])

    async def undo(self, game_id: str, new_game_id: str) -> None:
        async with self.store._as(Actor.SERVER, write=True) as conn:
            await conn.execute(
                "update public.game_rematches set new_game_id = null"
                " where game_id = $1 and new_game_id = $2",
                game_id,
                new_game_id,
            )


def rematches_for(store: GameStore) -> RematchStore:
    """The rematches of `store`'s database (memory for a store of another kind)."""
    from socket_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteRematches(store)
    # Not imported here: embedded mode never loads the Postgres driver.
    if type(store).__name__ == "PostgresStore":
        return PostgresRematches(store)  # type: ignore[arg-type]
    return MemoryRematches()


__all__ = ["Rematch", "RematchStore", "rematches_for", "settle"]
