"""The embedded default store: one SQLite file, every call off the event loop.

WAL mode with `synchronous=FULL` fsyncs the log on every commit, so a change that was
acknowledged survives `kill -9` of the process (and a power cut). Two connections: one
writer, in a process of its own (`sqlite_writer`: its Python work would hold the GIL the
event loop needs), and one reader (aiosqlite), which in WAL mode only ever sees
committed data.

Group commit: an fsync costs milliseconds, so one per change would cap a server at a
few hundred moves a second. `commit_change` queues its change; one committer task takes
every change queued at that moment and stores them in ONE transaction in the writer
process, two statements each (the event, then the game at the version before; a refused
one leaves no trace, see `_apply`), so each call still gets its own outcome
(`StaleVersion`, `DuplicateRequest`, or stored). Every caller is answered only after
that transaction's COMMIT, so an acknowledged change is as durable as before.
The version condition in `UPDATE ... WHERE version = ?` decides races, also between
processes sharing the file (`BEGIN IMMEDIATE` takes SQLite's write lock up front).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from socket_server.store.base import (
    Actor,
    ChatLimit,
    ChatRateLimited,
    ChatRecord,
    ChatRoom,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStatus,
    StaleVersion,
    StoreError,
    StoreUnavailable,
    check_event_matches,
)
from socket_server.store.batching import Batcher
from socket_server.store.settle import SQLITE_TABLE as RATINGS_TABLE
from socket_server.store.settle import rated_outcome, settle_sqlite
from socket_server.store.sqlite_writer import WriterProcess

# Each entry migrates the schema from version i to i + 1 (`PRAGMA user_version`).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE games (
        game_id TEXT PRIMARY KEY,
        game_type TEXT NOT NULL,
        status TEXT NOT NULL,
        seats TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        public INTEGER NOT NULL,
        options TEXT NOT NULL,
        created_by TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX games_created_at ON games (created_at DESC, game_id DESC);
    CREATE INDEX games_status ON games (status);
    CREATE TABLE events (
        game_id TEXT NOT NULL REFERENCES games (game_id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        seat TEXT,
        move TEXT NOT NULL,
        san TEXT,
        user_id TEXT,
        request_id TEXT,
        data TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (game_id, version)
    );
    CREATE UNIQUE INDEX events_request ON events (game_id, user_id, request_id)
        WHERE request_id IS NOT NULL;
    """,
    # Clocks (timecontrol.Clock as JSON; NULL: untimed), and finding the running ones.
    """
    ALTER TABLE games ADD COLUMN clock TEXT;
    CREATE INDEX games_timed ON games (status) WHERE clock IS NOT NULL;
    """,
    # Chat: seq 1, 2, ... per game; one message per (author, request id).
    """
    CREATE TABLE chat (
        game_id TEXT NOT NULL REFERENCES games (game_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        room TEXT NOT NULL,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        request_id TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (game_id, seq)
    );
    CREATE UNIQUE INDEX chat_request ON chat (game_id, user_id, request_id)
        WHERE request_id IS NOT NULL;
    CREATE INDEX chat_author ON chat (game_id, user_id, at);
    """,
    # The invite code of a private game (NULL: none); written once, with the game.
    """
    ALTER TABLE games ADD COLUMN invite TEXT;
    """,
    # Seeks (quick pairing): store/seeks.py.
    """
    CREATE TABLE seeks (
        seek_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        pool TEXT NOT NULL,
        game_type TEXT NOT NULL,
        clock TEXT,
        rated INTEGER NOT NULL,
        status TEXT NOT NULL,
        game_id TEXT,
        created_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE INDEX seeks_waiting ON seeks (pool, created_at) WHERE status = 'waiting';
    """,
    # Rematches (store/rematches.py): the seats that asked, the new game once decided.
    """
    CREATE TABLE rematches (
        game_id TEXT PRIMARY KEY REFERENCES games (game_id) ON DELETE CASCADE,
        offered_by TEXT NOT NULL,
        new_game_id TEXT
    );
    """,
    # Profiles (store/profiles.py), and who holds a human seat in which game (kept in
    # step with games.seats by triggers), so a player's games are found by index.
    """
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE game_players (
        user_id TEXT NOT NULL,
        game_id TEXT NOT NULL REFERENCES games (game_id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, game_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO game_players (user_id, game_id)
        SELECT json_extract(s.value, '$.user_id'), games.game_id
        FROM games, json_each(games.seats) AS s
        WHERE json_extract(s.value, '$.kind') = 'human';
    CREATE TRIGGER games_players_insert AFTER INSERT ON games BEGIN
        INSERT OR IGNORE INTO game_players (user_id, game_id)
            SELECT json_extract(s.value, '$.user_id'), new.game_id FROM json_each(new.seats) AS s
            WHERE json_extract(s.value, '$.kind') = 'human';
    END;
    CREATE TRIGGER games_players_update AFTER UPDATE OF seats ON games
    WHEN old.seats IS NOT new.seats BEGIN
        DELETE FROM game_players WHERE game_id = new.game_id;
        INSERT OR IGNORE INTO game_players (user_id, game_id)
            SELECT json_extract(s.value, '$.user_id'), new.game_id FROM json_each(new.seats) AS s
            WHERE json_extract(s.value, '$.kind') = 'human';
    END;
    """,
    # Ratings per user and game type (store/ratings.py), written with a final event.
    RATINGS_TABLE,
]
SCHEMA_VERSION = len(MIGRATIONS)

_GAME_COLUMNS = (
    "game_id, game_type, status, seats, state, version, public, options, "
    "created_by, created_at, updated_at, clock, invite"
)
_EVENT_COLUMNS = "game_id, version, kind, seat, move, san, user_id, request_id, data, at"

# A human seat of the game held by the given user (games.seats is a JSON object).
_SEATED = (
    "EXISTS (SELECT 1 FROM json_each(games.seats) AS s "
    "WHERE json_extract(s.value, '$.kind') = 'human' "
    "AND json_extract(s.value, '$.user_id') = ?)"
)
_AI_SEAT = (
    "EXISTS (SELECT 1 FROM json_each(games.seats) AS s "
    "WHERE json_extract(s.value, '$.kind') = 'ai')"
)


def _visible(actor: Actor) -> tuple[str, list[Any]]:
    """SQL condition (and its parameters) for the games `actor` may see."""
    if actor.is_server:
        return "1", []
    if actor.user_id is None:
        return "games.public = 1", []
    return f"(games.public = 1 OR {_SEATED})", [actor.user_id]


_encode_json = msgspec.json.Encoder().encode


def _encode(value: Any) -> str:
    return _encode_json(value).decode()


def _decode(text: str) -> Any:
    return msgspec.json.decode(text)


_RFC3339_WHOLE_SECOND = len(b'"2026-01-01T00:00:00Z"')


def _time_text(value: datetime) -> str:
    """Fixed-width UTC text, so text order is time order (a naive time is taken as UTC):
    `isoformat(timespec="microseconds")` of the UTC time, spelled from msgspec's RFC 3339
    (a tenth of isoformat's time; the writer spells one for every change)."""
    zone = value.tzinfo
    if zone is None:
        value = value.replace(tzinfo=UTC)
    elif zone is not UTC and value.utcoffset():  # converted only when not UTC already
        value = value.astimezone(UTC)
    rfc3339 = _encode_json(value)  # b'"...T12:00:00.000123Z"', no fraction if 0
    if len(rfc3339) == _RFC3339_WHOLE_SECOND:
        return rfc3339[1:-2].decode() + ".000000+00:00"
    return rfc3339[1:-2].decode() + "+00:00"


def _time_value(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _game_row(game: GameRecord) -> tuple[Any, ...]:
    return (
        game.game_id,
        game.game_type,
        game.status,
        _encode(game.seats),
        _encode(game.state),
        game.version,
        int(game.public),
        _encode(game.options),
        game.created_by,
        _time_text(game.created_at),
        _time_text(game.updated_at),
        None if game.clock is None else _encode(game.clock),
        game.invite,
    )


def _game_record(row: aiosqlite.Row) -> GameRecord:
    return GameRecord(
        game_id=row[0],
        game_type=row[1],
        status=row[2],
        seats=_decode(row[3]),
        state=_decode(row[4]),
        version=row[5],
        public=bool(row[6]),
        options=_decode(row[7]),
        created_by=row[8],
        created_at=_time_value(row[9]),
        updated_at=_time_value(row[10]),
        clock=None if row[11] is None else _decode(row[11]),
        invite=row[12],
    )


def _event_record(row: aiosqlite.Row) -> EventRecord:
    return EventRecord(
        game_id=row[0],
        version=row[1],
        kind=row[2],
        seat=row[3],
        move=_decode(row[4]),
        san=row[5],
        user_id=row[6],
        request_id=row[7],
        data=_decode(row[8]),
        at=_time_value(row[9]),
    )


def make_private(path: Path) -> None:
    """The database file (created if new) and its -wal and -shm: this user's only (0600).

    SQLite gives the -wal and -shm files the permissions of the database file, so one
    created here at 0600 keeps them private under any umask; older ones are tightened.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)


# -- the writer process: plain sqlite3 calls, each function one whole transaction ---------
def _null(_none: None) -> None:
    return None


def _open_writer(path: Path) -> sqlite3.Connection:
    make_private(path)
    # sqlite3 binds str, int and float as they are, but looks for a way to adapt any
    # other value, None included (a failed attribute lookup on the value and one on
    # the protocol): a change's few None columns cost 2.5% of the writer's work. With an
    # adapter registered it is a dict lookup and a call. This process only.
    sqlite3.register_adapter(type(None), _null)
    # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        conn.execute("PRAGMA journal_mode = WAL")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has schema version {current}; this server knows "
                f"up to {SCHEMA_VERSION} (is it an older gamesocket?)"
            )
        for script in MIGRATIONS[current:]:
            for statement in _statements(script):
                conn.execute(statement)
        # PRAGMA takes no parameters; SCHEMA_VERSION is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """The statements of `script`: split at semicolons, but a trigger's body stays whole."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements


def _insert_game(conn: sqlite3.Connection, game: GameRecord) -> None:
    try:
        conn.execute(
            f"INSERT INTO games ({_GAME_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _game_row(game),
        )
    except sqlite3.IntegrityError as error:
        raise ValueError(f"game {game.game_id} already exists") from error


# Changes per transaction at most (about 1 MB on the pipe). One batch is under way at a
# time: SQLite has one writer, and a second batch queued behind it stored no more moves a
# second in the throughput bench, at about 10% more CPU a move (smaller batches, more
# fsyncs).
MAX_BATCH = 1000


class _Event(msgspec.Struct, array_like=True):
    """An `EventRecord` as it crosses to the writer: its fields in order, without their
    names (a dataclass crosses as a map, and matching its ten names took the writer a
    tenth of a change's work)."""

    game_id: str
    version: int
    kind: str
    seat: str | None
    move: Any
    san: str | None
    user_id: str | None
    request_id: str | None
    data: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, event: EventRecord) -> _Event:
        return cls(
            event.game_id, event.version, event.kind, event.seat, event.move, event.san,
            event.user_id, event.request_id, event.data, event.at,
        )  # fmt: skip


class _Move(msgspec.Struct, array_like=True, tag="m"):
    """A move that leaves its game active, as it crosses to the writer: what such a move
    changes of the game and no more (status, seats, options stay as stored; its id and
    version are the event's)."""

    state: bytes  # JSON: encoded in the loop in place of the dict, never decoded here
    clock: bytes | None  # JSON, as `state`
    updated_at: datetime
    event: _Event


class _Change(msgspec.Struct, array_like=True, tag="c"):
    """Any other change: the whole game record with its event."""

    game: GameRecord
    event: _Event


def _crossing(game: GameRecord, event: EventRecord) -> _Move | _Change:
    """A change in the form it crosses the pipe in (nearly every one a `_Move`)."""
    if event.kind == "move" and game.status == "active":
        clock = None if game.clock is None else _encode_json(game.clock)
        return _Move(_encode_json(game.state), clock, game.updated_at, _Event.of(event))
    return _Change(game, _Event.of(event))


# A batch crosses the writer's pipe as msgpack, not pickled: the loop pays for every
# change it sends, and msgspec encodes one in about a quarter of pickle's time.
_encode_batch = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(list[_Move | _Change]).decode


def _commit_batch(conn: sqlite3.Connection, encoded: bytes) -> list[Exception | None]:
    """Store the changes `encoded` (`_encode_batch`) in one transaction; per change None
    (stored) or why it was not.

    A refused change leaves no trace, so the others (later changes of the same game
    included) see exactly what was stored before them.
    """
    changes = _decode_batch(encoded)
    outcomes: list[Exception | None] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for change in changes:
            try:
                _store(conn, change)
            except (StoreError, sqlite3.IntegrityError) as refused:
                outcomes.append(refused)
            else:
                outcomes.append(None)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _store(conn: sqlite3.Connection, change: _Move | _Change) -> None:
    if isinstance(change, _Move):
        _apply(
            conn, change.event, change.updated_at, lambda at: _update_after_move(conn, change, at)
        )
    else:
        _store_change(conn, change.game, change.event)


def _store_change(conn: sqlite3.Connection, game: GameRecord, event: _Event) -> None:
    """One change; the end of a rated game settles the ratings with it, in a savepoint
    (the other changes need none: see `_apply`)."""
    if rated_outcome(game) is None:
        _apply(conn, event, game.updated_at, lambda at: _update_game(conn, game, at))
        return
    conn.execute("SAVEPOINT change")
    try:
        _apply(conn, event, game.updated_at, lambda at: _update_game(conn, game, at))
        settle_sqlite(conn, game)
    except BaseException:
        conn.execute("ROLLBACK TO change")
        raise
    finally:
        conn.execute("RELEASE change")


def _apply(
    conn: sqlite3.Connection,
    event: _Event,
    updated_at: datetime,
    update: Callable[[str], sqlite3.Cursor],
) -> None:
    """The event, then `update(stamp)` of its game (`stamp`: the game's `updated_at` as
    text) if the game is still at the version before: two statements and no savepoint.
    A refused insert changes nothing; a refused update takes the event out again. Only
    what a change can change is written (as the Postgres `append_event`)."""
    at = _time_text(event.at)
    try:
        conn.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                event.game_id,
                event.version,
                event.kind,
                event.seat,
                _encode(event.move),
                event.san,
                event.user_id,
                event.request_id,
                _encode(event.data),
                at,
            ),
        )
    except sqlite3.IntegrityError:
        # The unique index events_request (a retry reports where it landed) or the
        # version taken by another change.
        _check_not_stored_before(conn, event)
        _check_at_version(conn, event)
        raise
    try:
        # A change's game and event carry the same time (`next_version`): spelled once.
        cursor = update(at if updated_at == event.at else _time_text(updated_at))
    except sqlite3.IntegrityError:
        _take_back(conn, event)
        raise
    if cursor.rowcount != 1:
        _take_back(conn, event)
        raise StaleVersion(f"game {event.game_id} is not at version {event.version - 1}")


def _update_after_move(conn: sqlite3.Connection, move: _Move, updated_at: str) -> sqlite3.Cursor:
    """The game's row after a move that leaves it active: neither status nor seats are
    written, so the status indexes and the seats trigger, which every write of those
    columns touches (a tenth of a change's time in the writer), stay as they are."""
    event = move.event
    return conn.execute(
        "UPDATE games SET state = ?, version = ?, updated_at = ?, clock = ? "
        "WHERE game_id = ? AND version = ?",
        (
            move.state.decode(),
            event.version,
            updated_at,
            None if move.clock is None else move.clock.decode(),
            event.game_id,
            event.version - 1,
        ),
    )


def _update_game(conn: sqlite3.Connection, game: GameRecord, updated_at: str) -> sqlite3.Cursor:
    """The game's row at `game.version` if it is still at the version before."""
    return conn.execute(
        "UPDATE games SET status = ?, seats = ?, state = ?, version = ?, updated_at = ?, "
        "clock = ? WHERE game_id = ? AND version = ?",
        (
            game.status,
            _encode(game.seats),
            _encode(game.state),
            game.version,
            updated_at,
            None if game.clock is None else _encode(game.clock),
            game.game_id,
            game.version - 1,
        ),
    )


def _take_back(conn: sqlite3.Connection, event: _Event) -> None:
    conn.execute(
        "DELETE FROM events WHERE game_id = ? AND version = ?", (event.game_id, event.version)
    )


def _check_at_version(conn: sqlite3.Connection, event: _Event) -> None:
    """`StaleVersion` unless the event's game is stored at the version before the event's."""
    row = conn.execute("SELECT version FROM games WHERE game_id = ?", (event.game_id,)).fetchone()
    if row is None or row[0] != event.version - 1:
        raise StaleVersion(f"game {event.game_id} is not at version {event.version - 1}")


def _check_not_stored_before(conn: sqlite3.Connection, event: _Event) -> None:
    """`DuplicateRequest` when the event's request id was stored before for its game.

    Looked up only when a change failed (its version, or the unique index
    events_request), which saves a query per change on the hot path.
    """
    if event.user_id is None or event.request_id is None:
        return
    row = conn.execute(
        "SELECT version FROM events WHERE game_id = ? AND user_id = ? AND request_id = ?",
        (event.game_id, event.user_id, event.request_id),
    ).fetchone()
    if row is not None:
        raise DuplicateRequest(row[0])


_CHAT_COLUMNS = "game_id, seq, room, user_id, text, request_id, at"


def _append_chat(conn: sqlite3.Connection, message: ChatRecord, limit: ChatLimit) -> int:
    """One transaction: the author's duplicate and rate checks, then the next seq."""
    conn.execute("BEGIN IMMEDIATE")  # the write lock: one writer at a time, any process
    try:
        seq = _chat_seq(conn, message, limit)
        conn.execute(
            f"INSERT INTO chat ({_CHAT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            (
                message.game_id,
                seq,
                message.room,
                message.user_id,
                message.text,
                message.request_id,
                _time_text(message.at),
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return seq


def _chat_seq(conn: sqlite3.Connection, message: ChatRecord, limit: ChatLimit) -> int:
    """The seq `message` gets, unless it was stored before or its author is over the limit."""
    if message.request_id is not None:
        row = conn.execute(
            "SELECT seq FROM chat WHERE game_id = ? AND user_id = ? AND request_id = ?",
            (message.game_id, message.user_id, message.request_id),
        ).fetchone()
        if row is not None:
            raise DuplicateRequest(row[0])
    since = _time_text(message.at - timedelta(seconds=limit.window_seconds))
    (recent,) = conn.execute(
        "SELECT count(*) FROM chat WHERE game_id = ? AND user_id = ? AND at > ?",
        (message.game_id, message.user_id, since),
    ).fetchone()
    if recent >= limit.count:
        raise ChatRateLimited(f"at most {limit.count} messages per {limit.window_seconds:g} s")
    (last,) = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM chat WHERE game_id = ?", (message.game_id,)
    ).fetchone()
    return int(last) + 1


def _chat_record(row: aiosqlite.Row) -> ChatRecord:
    return ChatRecord(
        game_id=row[0],
        seq=row[1],
        room=row[2],
        user_id=row[3],
        text=row[4],
        request_id=row[5],
        at=_time_value(row[6]),
    )


_PRAGMAS = ("PRAGMA busy_timeout = 5000", "PRAGMA foreign_keys = ON", "PRAGMA synchronous = FULL")

log = logging.getLogger("gamesocket.store")

# SQLite's result codes for "the file cannot be written now": the disk is full, an I/O
# error, the file or its folder turned read-only. The change was not stored.
_CANNOT_WRITE = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)
# While writes fail, /health writes this much beside the database (and removes it) to
# learn whether there is room again.
PROBE_BYTES = 64 * 1024


def _cannot_write(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF in _CANNOT_WRITE


def _probe_room(_conn: sqlite3.Connection, path: Path) -> bool:
    """In the writer process: whether `PROBE_BYTES` can be written (and synced) at `path`."""
    try:
        with path.open("wb") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError:
        return False
    finally:
        path.unlink(missing_ok=True)
    return True


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: WriterProcess | None = None
        self._reader: aiosqlite.Connection | None = None
        self._changes: Batcher[tuple[GameRecord, EventRecord], None] = Batcher(
            self._store_batch, max_size=MAX_BATCH
        )
        # Why writes fail, from the first failed write until one succeeds (or /health's
        # probe finds room again): /health answers 503 meanwhile.
        self.write_failure: str | None = None

    async def open(self) -> None:
        writer = WriterProcess(self.path, _open_writer)
        await writer.start()  # opens (and migrates) the file before the reader does
        try:
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in _PRAGMAS:
                await reader.execute(pragma)
        except BaseException:
            await writer.close()
            raise
        self._writer, self._reader = writer, reader

    async def close(self) -> None:
        await self._changes.drain()
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None:
            await self._writer.close()
        self._reader = self._writer = None

    async def _rows(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        """Every row of one query, run to its end in one call on the reader's thread.

        A cursor read in several steps would keep its statement, and so its WAL snapshot,
        open between them; with many tasks sharing the reader some statement would
        always be open and the reader would never see newer commits.
        """
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open")
        return list(await self._reader.execute_fetchall(sql, params or []))

    async def _on_writer(self, fn: Any, *args: Any) -> Any:
        """`fn(writer connection, *args)` in the writer process."""
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._writer.call(fn, *args)

    async def _write(self, fn: Any, *args: Any) -> Any:
        """`_on_writer` for a write: a full disk (or the like) is `StoreUnavailable`."""
        try:
            result = await self._on_writer(fn, *args)
        except sqlite3.Error as error:
            if not _cannot_write(error):
                raise
            if self.write_failure is None:
                log.error("store cannot write path=%s error=%s: changes refused", self.path, error)
            self.write_failure = str(error)
            raise StoreUnavailable(f"the store cannot write ({error})") from None
        self._writes_again("a write succeeded")
        return result

    def _writes_again(self, why: str) -> None:
        if self.write_failure is not None:
            self.write_failure = None
            log.warning("store writes again path=%s: %s", self.path, why)

    async def health(self) -> bool:
        """The store answers a query, and (after a failed write) has room to write."""
        try:
            rows = await self._rows("SELECT 1")
        except (aiosqlite.Error, RuntimeError, ValueError):
            return False
        if rows != [(1,)]:
            return False
        if self.write_failure is None:
            return True
        probe = self.path.with_name(f".{self.path.name}.probe")
        if not await self._on_writer(_probe_room, probe):
            return False
        self._writes_again("there is room to write")
        return True

    async def create_game(self, game: GameRecord, actor: Actor) -> None:
        await self._write(_insert_game, game)

    async def get_game(self, game_id: str, actor: Actor) -> GameRecord | None:
        condition, params = _visible(actor)
        rows = await self._rows(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE game_id = ? AND {condition}",
            [game_id, *params],
        )
        return _game_record(rows[0]) if rows else None

    async def list_games(
        self,
        actor: Actor,
        *,
        game_type: str | None = None,
        status: GameStatus | None = None,
        limit: int = 50,
    ) -> list[GameRecord]:
        condition, params = _visible(actor)
        conditions = [condition]
        if game_type is not None:
            conditions.append("game_type = ?")
            params.append(game_type)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        params.append(max(limit, 0))
        rows = await self._rows(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE {' AND '.join(conditions)} "
            "ORDER BY created_at DESC, game_id DESC LIMIT ?",
            params,
        )
        return [_game_record(row) for row in rows]

    def commit_change(
        self, game: GameRecord, event: EventRecord, actor: Actor
    ) -> Coroutine[Any, Any, None]:
        # The batcher's coroutine itself, not awaited in one of this method's (every
        # change waits in it). Raises here, at the call, for what it refuses at once.
        check_event_matches(game, event)
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open")
        return self._changes.submit((game, event))

    async def _store_batch(
        self, changes: Sequence[tuple[GameRecord, EventRecord]]
    ) -> list[Exception | None]:
        """The changes that arrived together, in one transaction in the writer process."""
        batch = _encode_batch([_crossing(game, event) for game, event in changes])
        outcomes: list[Exception | None] = await self._write(_commit_batch, batch)
        return outcomes

    async def events_after(self, game_id: str, version: int, actor: Actor) -> list[EventRecord]:
        condition, params = _visible(actor)
        columns = ", ".join(f"events.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
        rows = await self._rows(
            f"SELECT {columns} FROM events JOIN games ON games.game_id = events.game_id "
            f"WHERE events.game_id = ? AND events.version > ? AND {condition} "
            "ORDER BY events.version",
            [game_id, version, *params],
        )
        return [_event_record(row) for row in rows]

    async def find_request(
        self, game_id: str, user_id: str, request_id: str, actor: Actor
    ) -> int | None:
        condition, params = _visible(actor)
        rows = await self._rows(
            "SELECT events.version FROM events JOIN games ON games.game_id = events.game_id "
            "WHERE events.game_id = ? AND events.user_id = ? AND events.request_id = ? "
            f"AND {condition}",
            [game_id, user_id, request_id, *params],
        )
        return rows[0][0] if rows else None

    async def count_games(self) -> dict[GameStatus, int]:
        rows = await self._rows("SELECT status, count(*) FROM games GROUP BY status")
        return {row[0]: row[1] for row in rows}

    async def public_game_ids(self, game_ids: list[str]) -> set[str]:
        if not game_ids:
            return set()
        # One JSON array parameter, so no number of ids meets SQLite's variable limit.
        rows = await self._rows(
            "SELECT game_id FROM games WHERE public = 1"
            " AND game_id IN (SELECT value FROM json_each(?))",
            [_encode(list(game_ids))],
        )
        return {row[0] for row in rows}

    async def active_timed_games(self) -> list[GameRecord]:
        rows = await self._rows(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE status = 'active' AND clock IS NOT NULL "
            "ORDER BY created_at, game_id"
        )
        return [_game_record(row) for row in rows]

    async def active_ai_games(self) -> list[GameRecord]:
        rows = await self._rows(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE status = 'active' AND {_AI_SEAT} "
            "ORDER BY created_at, game_id"
        )
        return [_game_record(row) for row in rows]

    async def append_chat(self, message: ChatRecord, limit: ChatLimit, actor: Actor) -> int:
        seq: int = await self._write(_append_chat, message, limit)
        return seq

    async def chat_after(
        self, game_id: str, room: ChatRoom, after: int, limit: int, actor: Actor
    ) -> list[ChatRecord]:
        condition, params = _visible(actor)
        columns = ", ".join(f"chat.{c.strip()}" for c in _CHAT_COLUMNS.split(","))
        rows = await self._rows(
            f"SELECT {columns} FROM chat JOIN games ON games.game_id = chat.game_id "
            f"WHERE chat.game_id = ? AND chat.room = ? AND chat.seq > ? AND {condition} "
            "ORDER BY chat.seq LIMIT ?",
            [game_id, room, after, *params, max(limit, 0)],
        )
        return [_chat_record(row) for row in rows]
