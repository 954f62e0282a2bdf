"""Seeks (quick pairing) in the game store's database: pairing decided by the database.

`place` is one transaction: it lapses the pool's stale seeks, replaces the user's own
waiting seek of the same pool, and pairs the new seek with the oldest waiting seek of
another user in the pool, or stores it waiting. The pool (game type, clock, rated) is
serialised: on SQLite by the single writer (`BEGIN IMMEDIATE` also between processes
sharing the file), on Postgres by a transaction-level advisory lock on the pool plus
`for update` on the partner, all in one call of `gamesocket.place_seek` (so the lock is
never held across the server's awaits), so two seeks never both pair with a third, on
any process.
Times are Unix epoch seconds (float).
"""

from __future__ import annotations

import copy
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from socket_server.store.base import Actor, GameStore

if TYPE_CHECKING:
    from socket_server.store.postgres import PostgresStore
    from socket_server.store.sqlite import SqliteStore

SeekStatus = Literal["waiting", "paired", "expired", "withdrawn"]

_COLUMNS = "seek_id, user_id, pool, game_type, clock, rated, status, game_id, created_at, seen_at"


def pool_of(game_type: str, clock: dict[str, Any] | None, rated: bool) -> str:
    """The pool a seek pairs within: same game type, same clock, same `rated`."""
    return msgspec.json.encode([game_type, clock, rated], order="sorted").decode()


@dataclass
class SeekRecord:
    seek_id: str
    user_id: str
    game_type: str
    clock: dict[str, Any] | None  # the clock as asked for (POST /api/games's `clock`)
    rated: bool
    status: SeekStatus = "waiting"
    game_id: str | None = None
    created_at: float = field(default_factory=time.time)
    seen_at: float = field(default_factory=time.time)

    @property
    def pool(self) -> str:
        return pool_of(self.game_type, self.clock, self.rated)


@dataclass
class Placed:
    """What `place` did: the new seek (waiting or paired), its partner, and the seeks of
    the pool that went away (the user's replaced one, lapsed ones)."""

    seek: SeekRecord
    partner: SeekRecord | None = None
    gone: list[SeekRecord] = field(default_factory=list)


class SeekStore(Protocol):
    async def place(self, seek: SeekRecord, game_id: str, ttl: float) -> Placed:
        """Store `seek`, paired (into `game_id`) with the oldest compatible waiting seek."""

    async def get(self, seek_id: str, now: float, ttl: float) -> SeekRecord | None:
        """The seek; a waiting one is kept alive (seen now), or lapses if stale."""

    async def withdraw(self, seek_id: str, user_id: str) -> SeekRecord | None:
        """Withdraw `user_id`'s waiting seek; the seek as it stands (None: no such seek)."""

    async def touch(self, user_ids: list[str], now: float) -> None:
        """Keep these users' waiting seeks alive (watched on a lobby socket)."""

    async def lapse(self, now: float, ttl: float) -> list[SeekRecord]:
        """Waiting seeks unseen for `ttl` seconds become `expired`; those seeks."""

    async def waiting(self) -> list[SeekRecord]:
        """Every waiting seek, oldest first."""

    async def undo_pairing(self, partner_id: str, seek_id: str) -> None:
        """The pairing's game could not be created: the partner waits again (keeping its
        age), the new seek is withdrawn."""


def _lapsed(seek: SeekRecord, now: float, ttl: float) -> bool:
    return seek.status == "waiting" and seek.seen_at < now - ttl


# -- memory -------------------------------------------------------------------------------
class MemorySeeks:
    """Every method body runs without an await: atomic on one event loop."""

    def __init__(self) -> None:
        self._seeks: dict[str, SeekRecord] = {}

    async def place(self, seek: SeekRecord, game_id: str, ttl: float) -> Placed:
        placed = Placed(copy.deepcopy(seek))
        pool = [s for s in self._seeks.values() if s.status == "waiting" and s.pool == seek.pool]
        for other in pool:
            if _lapsed(other, seek.created_at, ttl) or other.user_id == seek.user_id:
                other.status = "expired" if other.user_id != seek.user_id else "withdrawn"
                placed.gone.append(copy.deepcopy(other))
        waiting = [s for s in pool if s.status == "waiting"]
        if waiting:
            partner = min(waiting, key=lambda s: (s.created_at, s.seek_id))
            partner.status = placed.seek.status = "paired"
            partner.game_id = placed.seek.game_id = game_id
            placed.partner = copy.deepcopy(partner)
        self._seeks[seek.seek_id] = copy.deepcopy(placed.seek)
        return placed

    async def get(self, seek_id: str, now: float, ttl: float) -> SeekRecord | None:
        seek = self._seeks.get(seek_id)
        if seek is None:
            return None
        if _lapsed(seek, now, ttl):
            seek.status = "expired"
        elif seek.status == "waiting":
            seek.seen_at = now
        return copy.deepcopy(seek)

    async def withdraw(self, seek_id: str, user_id: str) -> SeekRecord | None:
        seek = self._seeks.get(seek_id)
        if seek is None or seek.user_id != user_id:
            return None
        if seek.status == "waiting":
            seek.status = "withdrawn"
        return copy.deepcopy(seek)

    async def touch(self, user_ids: list[str], now: float) -> None:
        users = set(user_ids)
        for seek in self._seeks.values():
            if seek.status == "waiting" and seek.user_id in users:
                seek.seen_at = now

    async def lapse(self, now: float, ttl: float) -> list[SeekRecord]:
        gone = [s for s in self._seeks.values() if _lapsed(s, now, ttl)]
        for seek in gone:
            seek.status = "expired"
        return copy.deepcopy(gone)

    async def waiting(self) -> list[SeekRecord]:
        seeks = [s for s in self._seeks.values() if s.status == "waiting"]
        return copy.deepcopy(sorted(seeks, key=lambda s: (s.created_at, s.seek_id)))

    async def undo_pairing(self, partner_id: str, seek_id: str) -> None:
        undone: tuple[tuple[str, SeekStatus], ...] = (
            (partner_id, "waiting"),
            (seek_id, "withdrawn"),
        )
        for key, status in undone:
            seek = self._seeks.get(key)
            if seek is not None and seek.status == "paired":
                seek.status, seek.game_id = status, None


# -- SQLite (in the store's writer process, each call one transaction) -------------------
def _row(seek: SeekRecord) -> tuple[Any, ...]:
    clock = None if seek.clock is None else msgspec.json.encode(seek.clock).decode()
    return (
        seek.seek_id,
        seek.user_id,
        seek.pool,
        seek.game_type,
        clock,
        int(seek.rated),
        seek.status,
        seek.game_id,
        seek.created_at,
        seek.seen_at,
    )


def _record(row: Any) -> SeekRecord:
    return SeekRecord(
        seek_id=row[0],
        user_id=row[1],
        game_type=row[3],
        clock=None if row[4] is None else msgspec.json.decode(row[4]),
        rated=bool(row[5]),
        status=row[6],
        game_id=row[7],
        created_at=row[8],
        seen_at=row[9],
    )


def _transaction(conn: sqlite3.Connection, fn: Any, *args: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _sqlite_place(conn: sqlite3.Connection, seek: SeekRecord, game_id: str, ttl: float) -> Placed:
    placed = Placed(copy.deepcopy(seek))
    gone = conn.execute(
        f"UPDATE seeks SET status = CASE WHEN user_id = ? THEN 'withdrawn' ELSE 'expired' END "
        f"WHERE pool = ? AND status = 'waiting' AND (user_id = ? OR seen_at < ?) "
        f"RETURNING {_COLUMNS}",
        (seek.user_id, seek.pool, seek.user_id, seek.created_at - ttl),
    ).fetchall()
    placed.gone = [_record(row) for row in gone]
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM seeks WHERE pool = ? AND status = 'waiting' AND user_id <> ? "
        "ORDER BY created_at, seek_id LIMIT 1",
        (seek.pool, seek.user_id),
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE seeks SET status = 'paired', game_id = ? WHERE seek_id = ?", (game_id, row[0])
        )
        placed.partner = _record(row)
        placed.partner.status, placed.partner.game_id = "paired", game_id
        placed.seek.status, placed.seek.game_id = "paired", game_id
    conn.execute(f"INSERT INTO seeks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", _row(placed.seek))
    return placed


def _sqlite_get(conn: sqlite3.Connection, seek_id: str, now: float, ttl: float) -> Any:
    conn.execute(
        "UPDATE seeks SET status = CASE WHEN seen_at < ? THEN 'expired' ELSE status END, "
        "seen_at = CASE WHEN seen_at < ? THEN seen_at ELSE ? END "
        "WHERE seek_id = ? AND status = 'waiting'",
        (now - ttl, now - ttl, now, seek_id),
    )
    return conn.execute(f"SELECT {_COLUMNS} FROM seeks WHERE seek_id = ?", (seek_id,)).fetchone()


def _sqlite_withdraw(conn: sqlite3.Connection, seek_id: str, user_id: str) -> Any:
    conn.execute(
        "UPDATE seeks SET status = 'withdrawn' WHERE seek_id = ? AND user_id = ? "
        "AND status = 'waiting'",
        (seek_id, user_id),
    )
    return conn.execute(
        f"SELECT {_COLUMNS} FROM seeks WHERE seek_id = ? AND user_id = ?", (seek_id, user_id)
    ).fetchone()


def _sqlite_touch(conn: sqlite3.Connection, user_ids: list[str], now: float) -> None:
    conn.execute(
        "UPDATE seeks SET seen_at = ? WHERE status = 'waiting' "
        "AND user_id IN (SELECT value FROM json_each(?))",
        (now, msgspec.json.encode(user_ids).decode()),
    )


def _sqlite_lapse(conn: sqlite3.Connection, now: float, ttl: float) -> list[Any]:
    return conn.execute(
        f"UPDATE seeks SET status = 'expired' WHERE status = 'waiting' AND seen_at < ? "
        f"RETURNING {_COLUMNS}",
        (now - ttl,),
    ).fetchall()


def _sqlite_undo(conn: sqlite3.Connection, partner_id: str, seek_id: str) -> None:
    conn.execute(
        "UPDATE seeks SET status = CASE WHEN seek_id = ? THEN 'waiting' ELSE 'withdrawn' END,"
        " game_id = NULL WHERE seek_id IN (?, ?) AND status = 'paired'",
        (partner_id, partner_id, seek_id),
    )


class SqliteSeeks:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _tx(self, fn: Any, *args: Any) -> Any:
        return await self.store._write(_transaction, fn, *args)

    async def place(self, seek: SeekRecord, game_id: str, ttl: float) -> Placed:
        placed: Placed = await self._tx(_sqlite_place, seek, game_id, ttl)
        return placed

    async def get(self, seek_id: str, now: float, ttl: float) -> SeekRecord | None:
        row = await self._tx(_sqlite_get, seek_id, now, ttl)
        return None if row is None else _record(row)

    async def withdraw(self, seek_id: str, user_id: str) -> SeekRecord | None:
        row = await self._tx(_sqlite_withdraw, seek_id, user_id)
        return None if row is None else _record(row)

    async def touch(self, user_ids: list[str], now: float) -> None:
        if user_ids:
            await self._tx(_sqlite_touch, user_ids, now)

    async def lapse(self, now: float, ttl: float) -> list[SeekRecord]:
        return [_record(row) for row in await self._tx(_sqlite_lapse, now, ttl)]

    async def waiting(self) -> list[SeekRecord]:
        rows = await self.store._rows(
            f"SELECT {_COLUMNS} FROM seeks WHERE status = 'waiting' ORDER BY created_at, seek_id"
        )
        return [_record(row) for row in rows]

    async def undo_pairing(self, partner_id: str, seek_id: str) -> None:
        await self._tx(_sqlite_undo, partner_id, seek_id)


# -- Postgres (as the server's role; users read their own seeks under RLS) ----------------
_PG_COLUMNS = (
    "seek_id::text, user_id::text, pool, game_type, clock::text, rated, status,"
    " game_id::text, created_at, seen_at"
)


class PostgresSeeks:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def _server(self) -> Any:
        return self.store._as(Actor.SERVER, write=True)

    async def place(self, seek: SeekRecord, game_id: str, ttl: float) -> Placed:
        """One call of gamesocket.place_seek: the pool's lock is held for its run only."""
        async with self._server() as conn:
            rows = await conn.fetch(
                "select * from gamesocket.place_seek($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)",
                seek.seek_id,
                seek.user_id,
                seek.pool,
                seek.game_type,
                None if seek.clock is None else msgspec.json.encode(seek.clock).decode(),
                seek.rated,
                seek.created_at,
                ttl,
                game_id,
            )
        placed = Placed(copy.deepcopy(seek))
        for row in rows:
            record = _record(list(row.values())[1:])
            if row["role"] == "gone":
                placed.gone.append(record)
            elif row["role"] == "partner":
                placed.partner = record
            else:
                placed.seek = record
        return placed

    async def get(self, seek_id: str, now: float, ttl: float) -> SeekRecord | None:
        async with self._server() as conn:
            await conn.execute(
                "update public.seeks set"
                " status = case when seen_at < $2 then 'expired' else status end,"
                " seen_at = case when seen_at < $2 then seen_at else $3 end"
                " where seek_id::text = $1 and status = 'waiting'",
                seek_id,
                now - ttl,
                now,
            )
            found = await conn.fetchrow(
                f"select {_PG_COLUMNS} from public.seeks where seek_id::text = $1", seek_id
            )
        return None if found is None else _record(found)

    async def withdraw(self, seek_id: str, user_id: str) -> SeekRecord | None:
        async with self._server() as conn:
            await conn.execute(
                "update public.seeks set status = 'withdrawn' where seek_id::text = $1"
                " and user_id::text = $2 and status = 'waiting'",
                seek_id,
                user_id,
            )
            row = await conn.fetchrow(
                f"select {_PG_COLUMNS} from public.seeks where seek_id::text = $1"
                " and user_id::text = $2",
                seek_id,
                user_id,
            )
        return None if row is None else _record(row)

    async def touch(self, user_ids: list[str], now: float) -> None:
        if not user_ids:
            return
        async with self._server() as conn:
            await conn.execute(
                "update public.seeks set seen_at = $1 where status = 'waiting'"
                " and user_id::text = any($2::text[])",
                now,
                user_ids,
            )

    async def lapse(self, now: float, ttl: float) -> list[SeekRecord]:
        async with self._server() as conn:
            rows = await conn.fetch(
                "update public.seeks set status = 'expired' where status = 'waiting'"
                f" and seen_at < $1 returning {_PG_COLUMNS}",
                now - ttl,
            )
        return [_record(row) for row in rows]

    async def waiting(self) -> list[SeekRecord]:
        async with self._server() as conn:
            rows = await conn.fetch(
                f"select {_PG_COLUMNS} from public.seeks where status = 'waiting'"
                " order by created_at, seek_id"
            )
        return [_record(row) for row in rows]

    async def undo_pairing(self, partner_id: str, seek_id: str) -> None:
        async with self._server() as conn:
            await conn.execute(
                "update public.seeks set game_id = null, status = case when seek_id::text = $1"
                " then 'waiting' else 'withdrawn' end"
                " where seek_id::text in ($1, $2) and status = 'paired'",
                partner_id,
                seek_id,
            )


def seeks_for(store: GameStore) -> SeekStore:
    """The seeks of `store`'s database (memory for a store of another kind)."""
    from socket_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteSeeks(store)
    # Not imported here: embedded mode never loads the Postgres driver.
    if type(store).__name__ == "PostgresStore":
        return PostgresSeeks(store)  # type: ignore[arg-type]
    return MemorySeeks()
