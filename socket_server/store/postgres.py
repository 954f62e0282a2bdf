"""`GameStore` on PostgreSQL / Supabase (asyncpg, pooled), with row-level security deciding.

Every call runs in a transaction as its actor, as PostgREST runs a request: `role` is
switched and `request.jwt.claims` holds the user's claims, so `auth.uid()` and the
policies of `migrations/` see the identity they would see through the API. Reads run as
`authenticated` (a signed-in user) or `anon`, exactly as PostgREST would; a player's
changes run as `gamesocket_player` with the same claims, a role PostgREST cannot take,
so that API clients only read and every write has passed the server's rules first.
`Actor.SERVER` runs as `gamesocket_server`. The schema comes from the migrations
(`gamesocket migrate`), not from this class.

A change is one call of `gamesocket.append_event`, which locks the game row, checks the
version and appends the event and the new row together; its error codes map to
`StaleVersion`, `DuplicateRequest` and `NotPermitted`. Changes are committed in groups:
those that arrive while earlier batches are being written go together in one
transaction, each in its own subtransaction and as its own actor (`append_event_as`
switches role and claims first), so each keeps its own outcome and RLS still judges each
as the player who made it; every caller hears back after the COMMIT. A run of changes
that settle no ratings is one call of `try_append_events_as` (one round trip, each
change's outcome returned as a row); a rated game's final change has its own savepoint,
as its ratings are computed here between its statements.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import Any

import asyncpg
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
    NotPermitted,
    StaleVersion,
    StoreError,
    check_event_matches,
)
from socket_server.store.batching import Batcher
from socket_server.store.settle import rated_outcome, settle_postgres

SERVER_ROLE = "gamesocket_server"
PLAYER_ROLE = "gamesocket_player"  # a signed-in user's writes
# SQLSTATEs raised by gamesocket.append_event (migrations/*_gamesocket_rls.sql).
STALE_VERSION_SQLSTATE = "GS409"
DUPLICATE_REQUEST_SQLSTATE = "GS208"
INSUFFICIENT_PRIVILEGE_SQLSTATE = "42501"
DEADLOCK_SQLSTATE = "40P01"
# What a connection whose backend is gone raises on its next use.
DEAD_CONNECTION: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.InterfaceError,
    OSError,
)

# Changes per transaction at most: each savepoint is a subtransaction, and a transaction
# with more than 64 of them slows every other backend's snapshots (its cache overflows).
MAX_BATCH = 50
# Batches stored at once, each on its own connection (the rest of the pool serves reads).
# Each batch applies its changes one after the other, so this is the database work in
# parallel: on two cores, 2 stored more moves a second than 1 or 5.
CONCURRENT_BATCHES = 2

APPEND_EVENT_AS = (
    "select gamesocket.append_event_as($1, $2, $3, $4, $5, $6, $7::json, $8::jsonb, $9,"
    " $10, $11, $12, $13::jsonb, $14, $15, $16, $17::jsonb, $18, $19::jsonb)"
)
# The same arguments, one array each (element i: change i), one outcome row per change.
TRY_APPEND_EVENTS_AS = (
    "select o_code, o_message, o_detail from gamesocket.try_append_events_as($1, $2, $3, $4,"
    " $5, $6, $7::text[]::json[], $8::text[]::jsonb[], $9, $10, $11, $12, $13::text[]::jsonb[],"
    " $14, $15, $16, $17::text[]::jsonb[], $18, $19::text[]::jsonb[])"
)

# Read from the catalog, which every user may read (the schema may not be theirs to use).
TRY_APPEND_EVENTS_AS_EXISTS = (
    "select exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n"
    " on n.oid = p.pronamespace"
    " where n.nspname = 'gamesocket' and p.proname = 'try_append_events_as')"
)

_GAME_COLUMNS = (
    "id::text, game_type, status, seats, state, version, public, options,"
    " created_by::text, created_at, updated_at, clock,"
    # Under RLS: the code is read back for the server and the game's seated players only.
    " (select i.code from public.game_invites i where i.game_id = games.id) as invite"
)
_EVENT_COLUMNS = (
    "game_id::text, version, kind, seat, move, san, user_id::text, request_id, data, at"
)

_CHAT_COLUMNS = "game_id::text, seq, room, user_id::text, text, request_id, at"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _json(value: Any) -> str:
    return _encode(value).decode()


def _uuid(text: str | None) -> str | None:
    """`text` if it is a UUID (every Supabase user and game id is one), else None."""
    if text is None:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _role_and_claims(actor: Actor, *, write: bool) -> tuple[str, str]:
    if actor.is_server:
        return SERVER_ROLE, _json({"role": SERVER_ROLE})
    if actor.user_id is None:
        return "anon", _json({"role": "anon"})
    # The verified claims, with the subject and role this call really runs as. A user id
    # that is not a UUID cannot be a Supabase user: it runs with no subject, so owns nothing.
    claims = {k: v for k, v in (actor.claims or {}).items() if k != "sub"}
    subject = _uuid(actor.user_id)
    if subject is not None:
        claims["sub"] = subject
    claims["role"] = "authenticated"
    return PLAYER_ROLE if write else "authenticated", _json(claims)


def _game_record(row: asyncpg.Record) -> GameRecord:
    return GameRecord(
        game_id=row["id"],
        game_type=row["game_type"],
        status=row["status"],
        seats=_decode(row["seats"]),
        state=_decode(row["state"]),
        version=row["version"],
        public=row["public"],
        options=_decode(row["options"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        clock=None if row["clock"] is None else _decode(row["clock"]),
        invite=row["invite"],
    )


def _event_record(row: asyncpg.Record) -> EventRecord:
    return EventRecord(
        game_id=row["game_id"],
        version=row["version"],
        kind=row["kind"],
        seat=row["seat"],
        move=_decode(row["move"]) if row["move"] is not None else None,
        san=row["san"],
        user_id=row["user_id"],
        request_id=row["request_id"],
        data=_decode(row["data"]),
        at=row["at"],
    )


def _store_error(error: asyncpg.PostgresError) -> StoreError | None:
    """The contract's error for a database error, or None for an unexpected one."""
    code = error.sqlstate
    if code == STALE_VERSION_SQLSTATE:
        return StaleVersion(str(error))
    if code == DUPLICATE_REQUEST_SQLSTATE:
        return DuplicateRequest(int(error.detail or 0))
    if code == INSUFFICIENT_PRIVILEGE_SQLSTATE:
        return NotPermitted(str(error))
    return None


@dataclass(frozen=True)
class _Change:
    game: GameRecord
    event: EventRecord
    actor: Actor


async def _savepoint(conn: asyncpg.Connection, change: _Change) -> Exception | None:
    """`change` applied in its own savepoint: None, or the error it was rolled back with.

    An unexpected database error fails this change alone as well (a deadlock as a
    stale version: the service plans it again); a broken connection
    (nothing can be rolled back on it) fails the whole batch. The savepoint is not
    released: the next change's nests in it, and the COMMIT keeps them all."""
    await conn.execute("savepoint change")
    try:
        await _apply(conn, change)
    except asyncpg.PostgresError as error:
        if isinstance(error, DEAD_CONNECTION):
            raise
        await conn.execute("rollback to savepoint change")
        return _change_error(change, error)
    return None


async def _append_all(
    conn: asyncpg.Connection, changes: Sequence[_Change]
) -> list[Exception | None]:
    """`changes` applied in one call, each in its own subtransaction (as `_savepoint`
    does it, without its round trips): their outcomes, in order, the same as
    `_savepoint`'s. For changes that need nothing from the server between statements."""
    columns = list(zip(*(append_arguments(c.game, c.event, c.actor) for c in changes), strict=True))
    rows = await conn.fetch(TRY_APPEND_EVENTS_AS, *columns)
    return [
        None
        if code is None
        else _change_error(
            change, asyncpg.PostgresError.new({"C": code, "M": message, "D": detail})
        )
        for change, (code, message, detail) in zip(changes, rows, strict=True)
    ]


def _change_error(change: _Change, error: asyncpg.PostgresError) -> Exception:
    """What `change`'s caller hears of the database error it was rolled back with: an
    unexpected one as it is (it fails this change alone)."""
    if error.sqlstate == DEADLOCK_SQLSTATE:
        # Picked to break a cycle of row locks with another transaction (one that
        # locks rows in another order): nothing was stored and the change may be
        # planned again, as after a stale version.
        return StaleVersion(f"game {change.game.game_id}: {error}")
    return _store_error(error) or error


async def _apply(conn: asyncpg.Connection, change: _Change) -> None:
    """One change as its actor, in one call: row-level security judges it as that actor.
    Whatever else a change writes goes here, in its savepoint: the ratings a rated game's
    final event settles (as the server's role; the next change sets its own)."""
    await conn.execute(APPEND_EVENT_AS, *append_arguments(change.game, change.event, change.actor))
    await settle_postgres(conn, change.game)


def _settles(change: _Change) -> bool:
    """Whether `change` ends a rated game: `settle_postgres` writes its ratings."""
    return rated_outcome(change.game) is not None


def append_arguments(game: GameRecord, event: EventRecord, actor: Actor) -> tuple[Any, ...]:
    """The arguments of APPEND_EVENT_AS: the actor's role and claims, the invite code its
    join carries (None: none), then the new game row and its event."""
    role, claims = _role_and_claims(actor, write=True)
    invite = event.data.get("invite") if event.kind == "join" else None
    return (
        role,
        claims,
        invite if isinstance(invite, str) else None,
        game.game_id,
        game.version,
        game.status,
        _json(game.seats),
        _json(game.state),
        game.turn,
        game.updated_at,
        event.kind,
        event.seat,
        _json(event.move),
        event.san,
        event.user_id,
        event.request_id,
        _json(event.data),
        event.at,
        None if game.clock is None else _json(game.clock),
    )


async def _check_database(pool: asyncpg.Pool) -> None:
    """Refuse to start, saying what to do, unless the schema is there and the database
    user can act as every role the store switches to."""
    async with pool.acquire() as conn:
        if await conn.fetchval("select to_regclass('public.games')") is None:
            raise RuntimeError("the database has no gamesocket tables: run `gamesocket migrate`")
        if not await conn.fetchval(TRY_APPEND_EVENTS_AS_EXISTS):
            raise RuntimeError(
                "the database's schema predates this server (no gamesocket.try_append_events_as):"
                " run `gamesocket migrate`"
            )
        missing = []
        for role in ("anon", "authenticated", PLAYER_ROLE, SERVER_ROLE):
            try:
                async with conn.transaction():
                    await conn.execute("select set_config('role', $1, true)", role)
            except asyncpg.PostgresError:
                missing.append(role)
        if missing:
            user = await conn.fetchval("select session_user")
            raise RuntimeError(
                f"database user {user} cannot switch to role(s) {', '.join(missing)}: run"
                f" `gamesocket migrate` as this user, or `grant {', '.join(missing)} to {user}`"
            )


class PostgresStore:
    def __init__(self, url: str, *, prepared_statements: bool = True, max_connections: int = 10):
        self.url = url
        # Supabase's transaction-mode pooler (port 6543) cannot keep named prepared
        # statements between transactions: without a cache asyncpg uses unnamed ones.
        self.prepared_statements = prepared_statements
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        # Changes that arrive while earlier batches are being stored wait and go together.
        self._changes = Batcher(
            self._commit_batch,
            concurrency=min(CONCURRENT_BATCHES, max_connections),
            max_size=MAX_BATCH,
        )

    async def open(self) -> None:
        pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.max_connections,
            statement_cache_size=100 if self.prepared_statements else 0,
        )
        try:
            await _check_database(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        await self._changes.drain()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _as(self, actor: Actor, *, write: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction running as `actor` (to change data if `write`)."""
        if self._pool is None:
            raise RuntimeError("PostgresStore.open() was not called")
        role, claims = _role_and_claims(actor, write=write)
        for attempt in (1, 2):
            async with self._pool.acquire() as conn:
                transaction = conn.transaction()
                try:
                    await transaction.start()
                    await conn.execute(
                        "select set_config('role', $1, true),"
                        " set_config('request.jwt.claims', $2, true)",
                        role,
                        claims,
                    )
                except DEAD_CONNECTION:
                    if attempt == 2:
                        raise
                    # The pooled connection died while idle (its backend was terminated):
                    # nothing of the call ran on it, so it goes to a new connection.
                    continue
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(*DEAD_CONNECTION):
                        await transaction.rollback()
                    raise
                await transaction.commit()
                return

    async def health(self) -> bool:
        if self._pool is None:
            return False
        try:
            return await self._pool.fetchval("select 1") == 1
        except (OSError, asyncpg.PostgresError):
            return False

    async def create_game(self, game: GameRecord, actor: Actor) -> None:
        try:
            async with self._as(actor, write=True) as conn:
                await conn.execute(
                    "insert into public.games (id, game_type, status, seats, state, version,"
                    " turn, public, options, created_by, created_at, updated_at, clock)"
                    " values ($1, $2, $3, $4::json, $5::jsonb, $6, $7, $8, $9::jsonb, $10,"
                    " $11, $12, $13::jsonb)",
                    game.game_id,
                    game.game_type,
                    game.status,
                    _json(game.seats),
                    _json(game.state),
                    game.version,
                    game.turn,
                    game.public,
                    _json(game.options),
                    game.created_by,
                    game.created_at,
                    game.updated_at,
                    None if game.clock is None else _json(game.clock),
                )
                if game.invite is not None:
                    await conn.execute(
                        "insert into public.game_invites (game_id, code) values ($1, $2)",
                        game.game_id,
                        game.invite,
                    )
        except asyncpg.PostgresError as error:
            raise _store_error(error) or error from None

    async def get_game(self, game_id: str, actor: Actor) -> GameRecord | None:
        if _uuid(game_id) is None:
            return None
        async with self._as(actor) as conn:
            row = await conn.fetchrow(
                f"select {_GAME_COLUMNS} from public.games where id = $1", game_id
            )
        return _game_record(row) if row is not None else None

    async def list_games(
        self,
        actor: Actor,
        *,
        game_type: str | None = None,
        status: GameStatus | None = None,
        limit: int = 50,
    ) -> list[GameRecord]:
        async with self._as(actor) as conn:
            rows = await conn.fetch(
                f"select {_GAME_COLUMNS} from public.games"
                " where ($1::text is null or game_type = $1)"
                " and ($2::text is null or status = $2)"
                " order by created_at desc, id desc limit $3",
                game_type,
                status,
                max(limit, 0),
            )
        return [_game_record(row) for row in rows]

    async def commit_change(self, game: GameRecord, event: EventRecord, actor: Actor) -> None:
        """Goes in the next batch: `_commit_batch` stores it in its own subtransaction."""
        check_event_matches(game, event)
        if _uuid(game.game_id) is None:
            raise StaleVersion(f"no game {game.game_id!r}")
        await self._changes.submit(_Change(game, event, actor))

    async def _commit_batch(self, changes: Sequence[_Change]) -> list[Exception | None]:
        """The changes that arrived together, in one transaction: each in its own
        subtransaction as its own actor, in game id order (every process locks rows in the
        same order); one outcome per change, known to its caller only after the COMMIT."""
        outcomes: list[Exception | None] = [None] * len(changes)
        order = sorted(range(len(changes)), key=lambda i: changes[i].game.game_id)
        async with self._as(Actor.SERVER, write=True) as conn:
            # A run of changes that settle nothing goes in one call; a rated game's final
            # change in its own savepoint, its ratings computed here in between.
            for settles, run in groupby(order, key=lambda i: _settles(changes[i])):
                indexes = list(run)
                if settles:
                    for index in indexes:
                        outcomes[index] = await _savepoint(conn, changes[index])
                else:
                    found = await _append_all(conn, [changes[i] for i in indexes])
                    for index, outcome in zip(indexes, found, strict=True):
                        outcomes[index] = outcome
        return outcomes

    async def events_after(self, game_id: str, version: int, actor: Actor) -> list[EventRecord]:
        if _uuid(game_id) is None:
            return []
        async with self._as(actor) as conn:
            rows = await conn.fetch(
                f"select {_EVENT_COLUMNS} from public.game_events"
                " where game_id = $1 and version > $2 order by version",
                game_id,
                version,
            )
        return [_event_record(row) for row in rows]

    async def find_request(
        self, game_id: str, user_id: str, request_id: str, actor: Actor
    ) -> int | None:
        if _uuid(game_id) is None or _uuid(user_id) is None:
            return None
        async with self._as(actor) as conn:
            version: int | None = await conn.fetchval(
                "select version from public.game_events"
                " where game_id = $1 and user_id = $2 and request_id = $3",
                game_id,
                user_id,
                request_id,
            )
        return version

    async def count_games(self) -> dict[GameStatus, int]:
        async with self._as(Actor.SERVER) as conn:
            rows = await conn.fetch("select status, count(*) from public.games group by status")
        return {row[0]: row[1] for row in rows}

    async def public_game_ids(self, game_ids: list[str]) -> set[str]:
        ids = [game_id for game_id in game_ids if _uuid(game_id) is not None]
        if not ids:
            return set()
        async with self._as(Actor.SERVER) as conn:
            rows = await conn.fetch(
                "select id::text from public.games where id = any($1::uuid[]) and public", ids
            )
        return {row[0] for row in rows}

    async def active_timed_games(self) -> list[GameRecord]:
        async with self._as(Actor.SERVER) as conn:
            rows = await conn.fetch(
                f"select {_GAME_COLUMNS} from public.games"
                " where status = 'active' and clock is not null order by created_at, id"
            )
        return [_game_record(row) for row in rows]

    async def active_ai_games(self) -> list[GameRecord]:
        async with self._as(Actor.SERVER) as conn:
            rows = await conn.fetch(
                f"select {_GAME_COLUMNS} from public.games"
                """ where status = 'active' and seats::jsonb @? '$.* ? (@.kind == "ai")'"""
                " order by created_at, id"
            )
        return [_game_record(row) for row in rows]

    async def append_chat(self, message: ChatRecord, limit: ChatLimit, actor: Actor) -> int:
        """As the author (gamesocket_player): the game's chat lock, then the checks and
        the insert, so every process counts and numbers the same rows."""
        if _uuid(message.game_id) is None or _uuid(message.user_id) is None:
            raise NotPermitted("no such game or user")
        try:
            async with self._as(actor, write=True) as conn:
                await conn.execute(
                    "select pg_advisory_xact_lock(hashtextextended('gamesocket.chat:' || $1, 0))",
                    message.game_id,
                )
                seq = await _next_chat_seq(conn, message, limit)
                await conn.execute(
                    "insert into public.game_chat"
                    " (game_id, seq, room, user_id, text, request_id, at)"
                    " values ($1, $2, $3, $4, $5, $6, $7)",
                    message.game_id,
                    seq,
                    message.room,
                    message.user_id,
                    message.text,
                    message.request_id,
                    message.at,
                )
        except asyncpg.PostgresError as error:
            raise _store_error(error) or error from None
        return seq

    async def chat_after(
        self, game_id: str, room: ChatRoom, after: int, limit: int, actor: Actor
    ) -> list[ChatRecord]:
        if _uuid(game_id) is None:
            return []
        async with self._as(actor) as conn:
            rows = await conn.fetch(
                f"select {_CHAT_COLUMNS} from public.game_chat"
                " where game_id = $1 and room = $2 and seq > $3 order by seq limit $4",
                game_id,
                room,
                after,
                max(limit, 0),
            )
        return [_chat_record(row) for row in rows]


async def _next_chat_seq(conn: asyncpg.Connection, message: ChatRecord, limit: ChatLimit) -> int:
    """The seq `message` gets, unless it was stored before or its author is over the limit."""
    if message.request_id is not None:
        seen = await conn.fetchval(
            "select seq from public.game_chat"
            " where game_id = $1 and user_id = $2 and request_id = $3",
            message.game_id,
            message.user_id,
            message.request_id,
        )
        if seen is not None:
            raise DuplicateRequest(seen)
    recent = await conn.fetchval(
        "select count(*) from public.game_chat where game_id = $1 and user_id = $2 and at > $3",
        message.game_id,
        message.user_id,
        message.at - timedelta(seconds=limit.window_seconds),
    )
    if recent >= limit.count:
        raise ChatRateLimited(f"at most {limit.count} messages per {limit.window_seconds:g} s")
    last: int = await conn.fetchval("select private.chat_last_seq($1)", message.game_id)
    return last + 1


def _chat_record(row: asyncpg.Record) -> ChatRecord:
    return ChatRecord(
        game_id=row["game_id"],
        seq=row["seq"],
        room=row["room"],
        user_id=row["user_id"],
        text=row["text"],
        request_id=row["request_id"],
        at=row["at"],
    )
