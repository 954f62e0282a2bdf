"""The game service: the one path of every state change (socket, REST, AI).

A change is: load the game (cached) -> plan it (`changes`, pure) -> store it with the
expected version (the store's atomic check decides races between processes) ->
publish its `update`, serialised once -> the after-commit hooks (the AI turns react
there). Inside this process an asyncio lock per game serialises changes.

A stored change always reaches everyone: an unexpected error from the store's commit
(a connection lost around it) is followed by asking the store whether the change
landed all the same, and a landed change is answered, published and handed to the
hooks like any other. A publish the broker refuses is retried in the background, in
order per game, until the broker takes it; the game's lock is not held meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from games import GameState
from socket_server import protocol
from socket_server.changes import (
    Change,
    Refused,
    check_ai_delay,
    check_ai_games_cap,
    check_rated_player,
    check_rated_seats,
    check_viewer,
    derive_status,
    epoch_ms,
    initial_seats,
    invite_opens,
    invite_shown,
    new_clock,
    new_invite,
    next_version,
    only_ai,
    plan_abort,
    plan_claim,
    plan_draw_accept,
    plan_draw_decline,
    plan_draw_offer,
    plan_invited_join,
    plan_player_move,
    plan_resign,
    plan_seat_move,
    plan_timeout,
    rated_join,
    replay_event,
    seats_before_joins,
    turn_of,
)
from socket_server.fanout.base import Broker
from socket_server.metrics import Metrics
from socket_server.profiles import Profiles
from socket_server.protocol import ErrorCode, Header, Snapshot
from socket_server.publisher import OrderedPublisher
from socket_server.ratings import is_rated, seat_rating
from socket_server.registry import GameTypes
from socket_server.settings import Settings
from socket_server.snapshot import build_snapshot, event_of, with_clock_now
from socket_server.store.base import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStatus,
    GameStore,
    NotPermitted,
    StaleVersion,
    StoreError,
    StoreUnavailable,
    human_seat,
    may_see,
    utc_now,
)
from socket_server.store.profiles import profiles_for
from socket_server.store.ratings import ratings_for

log = logging.getLogger("gamesocket.service")

CACHE_SIZE = 4096
# A game id is a UUID in its canonical spelling (lower case, dashed), as the server
# hands them out; any other spelling names no game, on every store.
GAME_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A snapshot of a longer game is built off the event loop: python-chess replays every
# move for the board and the SAN list (about 10 ms at 200 plies).
INLINE_BUILD_PLIES = 24
# Encoded updates kept for `since` replays, over every game (least recently used go).
UPDATE_LOG_BYTES = 64 * 1024 * 1024
# After an unexpected error from `commit_change`, the store is asked whether the change
# landed all the same, after each of these pauses (seconds) until it answers.
LANDED_CHECK_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)

# (record, state) -> the change to store, or None when there is nothing to store
Plan = Callable[[GameRecord, GameState], Change | None]
# Called after a game was created or a change stored (never with the lock held).
CommitHook = Callable[[GameRecord, GameState], None]
# Called with a game id when the service stops holding the game (cache eviction).
ForgetHook = Callable[[str], None]


# Request and Committed: not frozen, for the reason Change is not (changes.py).
@dataclass(slots=True)
class Request:
    actor: Actor
    game_id: str
    request_id: str | None
    plan: Plan
    expected_version: int | None = None
    invite: str | None = None  # an invite code: it admits a stranger to a private game


@dataclass(slots=True)
class Committed:
    record: GameRecord
    state: GameState
    event: EventRecord
    # Stored, yet the request is answered with this (a move after its mover's flag fell).
    then_refuse: Refused | None = None


class GameService:
    def __init__(
        self,
        store: GameStore,
        broker: Broker,
        settings: Settings,
        game_types: GameTypes,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.game_types = game_types
        self.metrics = metrics or Metrics()
        self.ratings = ratings_for(store)
        self.profiles = Profiles(profiles_for(store))  # the names seats are given
        self._cache: OrderedDict[str, tuple[GameRecord, GameState]] = OrderedDict()
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()  # newest per game
        # Heavy reads (long snapshots, replays) run here, one at a time, off the loop;
        # a build or replay asked for again while it runs is shared, not repeated.
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gamesocket-reads")
        self._building: dict[tuple[str, int], asyncio.Future[Snapshot]] = {}
        self._replaying: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._updates = UpdateLog(UPDATE_LOG_BYTES, settings.max_replay_updates)
        self.snapshot_builds = 0  # snapshots built off the loop (counted for tests)
        self.replays = 0  # replays of stored events (counted for tests)
        # A game's lock lives while anyone holds or waits for it; the newest games' locks
        # are kept as well, so a game's every move does not make (and drop) a new one.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._recent_locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        # The seat that offered a draw, per game; other processes' offers arrive through
        # `note_published`.
        self._draw_offers: dict[str, str] = {}
        self._commit_hooks: list[CommitHook] = []
        self._forget_hooks: list[ForgetHook] = []
        self._publisher = OrderedPublisher(broker)
        self._changes_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False
        # Serialises creating AI-vs-AI games, so that this process counts each one
        # against GAMESOCKET_MAX_AI_GAMES_PER_USER before the next is checked.
        self._ai_game_creation = asyncio.Lock()

    def on_commit(self, hook: CommitHook) -> None:
        self._commit_hooks.append(hook)

    def on_forget(self, hook: ForgetHook) -> None:
        self._forget_hooks.append(hook)

    # -- reading --------------------------------------------------------------------
    def _lock(self, game_id: str) -> asyncio.Lock:
        lock = self._locks.get(game_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[game_id] = lock
        recent = self._recent_locks
        recent[game_id] = lock
        recent.move_to_end(game_id)
        if len(recent) > CACHE_SIZE:
            recent.popitem(last=False)
        return lock

    def _remember(self, record: GameRecord, state: GameState) -> None:
        cached = self._cache.get(record.game_id)
        # A read that began before a change and ended after it must not roll the cache
        # back: the AI is scheduled from the newest state, and an old turn stalls it.
        if cached is not None and cached[0].version > record.version:
            return
        self._cache[record.game_id] = (record, state)
        self._cache.move_to_end(record.game_id)
        while len(self._cache) > CACHE_SIZE:
            evicted, _ = self._cache.popitem(last=False)
            for hook in self._forget_hooks:
                hook(evicted)

    def cached(self, game_id: str) -> tuple[GameRecord, GameState] | None:
        """The game as this process last stored or read it, if it still holds it."""
        return self._cache.get(game_id)

    def note_published(self, game_id: str, header: Header, data: bytes | None = None) -> None:
        """A message of `game_id` (`data`, when given) went through the broker (from any
        process)."""
        if header.type == "update" and header.version is not None:
            if data is not None:
                self._updates.add(game_id, header.version, data)
            cached = self._cache.get(game_id)
            if cached is not None and cached[0].version < header.version:
                del self._cache[game_id]  # another process stored a newer version
        elif header.type == "draw_offer" and header.seat is not None:
            self._draw_offers[game_id] = header.seat
        elif header.type == "draw_declined":
            self._draw_offers.pop(game_id, None)

    async def load(self, game_id: str, *, fresh: bool = False) -> tuple[GameRecord, GameState]:
        """The game (read as the server) and its state; `not_found` if there is none."""
        if not fresh:
            entry = self._cache.get(game_id)
            if entry is not None:
                return entry
        if not is_game_id(game_id):
            raise Refused(ErrorCode.NOT_FOUND, "no such game")
        record = await self.store.get_game(game_id, Actor.SERVER)
        if record is None or record.game_type not in self.game_types:
            raise Refused(ErrorCode.NOT_FOUND, "no such game")
        cached = self._cache.get(game_id)
        if cached is not None and cached[0].version == record.version:
            state = cached[1]  # the same version: no parse, and its board stays built
        else:
            state = self.game_types.load_state(record.game_type, record.state)
        self._remember(record, state)
        return record, state

    async def view(self, game_id: str, actor: Actor) -> tuple[GameRecord, GameState]:
        """The game as stored now, if `actor` may see it (strangers to private games not)."""
        record, state = await self.load(game_id, fresh=True)
        check_viewer(record, actor)
        return record, state

    async def snapshot(self, game_id: str, actor: Actor) -> Snapshot:
        """The game now, its clock exact at this moment (`server_time_ms`)."""
        record, state = await self.view(game_id, actor)
        return self.personal(
            with_clock_now(await self.built_snapshot(record, state), record), record, actor
        )

    @staticmethod
    def personal(snapshot: Snapshot, record: GameRecord, actor: Actor) -> Snapshot:
        """`snapshot` as sent to `actor` alone: with the invite code for a seated player
        of a private game with a free seat (never in the shared `update` bytes)."""
        code = invite_shown(record, actor)
        return snapshot if code is None else msgspec.structs.replace(snapshot, invite=code)

    def snapshot_of(self, record: GameRecord, state: GameState) -> Snapshot:
        """The snapshot of a stored version, built once per version and reused."""
        built = self._snapshots.get(record.game_id)
        if built is not None and built.version == record.version:
            return built
        snapshot = build_snapshot(record, state)
        self._keep_snapshot(snapshot)
        return snapshot

    def _keep_snapshot(self, snapshot: Snapshot) -> None:
        """Cache `snapshot` as its game's newest (an older one never replaces a newer)."""
        kept = self._snapshots.get(snapshot.game_id)
        if kept is not None and kept.version > snapshot.version:
            return
        self._snapshots[snapshot.game_id] = snapshot
        self._snapshots.move_to_end(snapshot.game_id)
        while len(self._snapshots) > CACHE_SIZE:
            self._snapshots.popitem(last=False)

    async def built_snapshot(self, record: GameRecord, state: GameState) -> Snapshot:
        """`snapshot_of`, with the first build of a long game's version off the loop."""
        (snapshot,) = await self.snapshots_for([(record, state)])
        return snapshot

    async def snapshots_for(
        self, items: Sequence[tuple[GameRecord, GameState | None]]
    ) -> list[Snapshot]:
        """The snapshots of stored versions (a state None: parse `record.state`).

        A cached snapshot of the same version is reused; a short game's is built here;
        the others are built in one batch on the reads thread, and a version already
        being built there for another caller is waited for, not built again.
        """
        slots: list[Snapshot | asyncio.Future[Snapshot]] = []
        batch: list[tuple[GameRecord, GameState | None]] = []
        for record, state in items:
            slot = self._snapshot_slot(record, state)
            if slot is None:
                slot = asyncio.get_running_loop().create_future()
                self._building[(record.game_id, record.version)] = slot
                batch.append((record, state if state is not None else self._cached_state(record)))
            slots.append(slot)
        if batch:
            self._spawn(self._build_batch(batch))
        return [s if isinstance(s, Snapshot) else await asyncio.shield(s) for s in slots]

    def _snapshot_slot(
        self, record: GameRecord, state: GameState | None
    ) -> Snapshot | asyncio.Future[Snapshot] | None:
        """The snapshot of `record`'s version if cached or cheap, else its build under
        way; None: it has to be built."""
        built = self._snapshots.get(record.game_id)
        if built is not None and built.version == record.version:
            return built
        running = self._building.get((record.game_id, record.version))
        if running is not None:
            return running
        plies = len(state.history if state is not None else record.state.get("history") or ())
        if plies > INLINE_BUILD_PLIES:
            return None
        if state is None:
            state = self.game_types.load_state(record.game_type, record.state)
        return self.snapshot_of(record, state)

    def _cached_state(self, record: GameRecord) -> GameState | None:
        cached = self._cache.get(record.game_id)
        return cached[1] if cached is not None and cached[0].version == record.version else None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task of its own: a caller that goes away does not cancel it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _build_batch(self, batch: list[tuple[GameRecord, GameState | None]]) -> None:
        keys = [(record.game_id, record.version) for record, _ in batch]
        try:
            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(
                self._reads, _build_snapshots, self.game_types, batch
            )
        except BaseException:
            for key in keys:
                self._building.pop(key).cancel()
            raise
        self.snapshot_builds += len(batch)
        for key, outcome in zip(keys, built, strict=True):
            future = self._building.pop(key)
            if isinstance(outcome, Snapshot):
                self._keep_snapshot(outcome)
                future.set_result(outcome)
            else:
                future.set_exception(outcome)

    async def list_games(
        self, actor: Actor, *, game_type: str | None, status: GameStatus | None, limit: int
    ) -> list[Snapshot]:
        records = await self.store.list_games(
            actor, game_type=game_type, status=status, limit=limit
        )
        visible = [r for r in records if r.game_type in self.game_types and may_see(r, actor)]
        return await self.snapshots_for([(r, self._cached_state(r)) for r in visible])

    async def move_log(self, game_id: str, actor: Actor) -> list[dict[str, Any]]:
        """`[{"version", "seat", "move", "san"?, "at"}]` of the game's moves."""
        await self.view(game_id, actor)
        events = await self.store.events_after(game_id, 0, Actor.SERVER)
        return [_move_entry(event) for event in events if event.kind == "move"]

    async def replay_updates(
        self, game_id: str, after: int, upto: int | None = None
    ) -> list[tuple[int, bytes]]:
        """The `update` messages after version `after` (up to `upto`; None: all stored).

        From the update log when it holds them (every update this process published or
        heard, and every replay, are kept there), else rebuilt from the stored events on
        the reads thread; callers asking for one game meanwhile wait for that replay.
        """
        for _ in range(3):
            if upto is not None:
                logged = self._updates.between(game_id, after, upto)
                if logged is not None:
                    return logged
            running = self._replaying.get(game_id)
            if running is None:
                break
            await running.wait()
        updates = await self._replay(game_id, after)
        return [(v, data) for v, data in updates if upto is None or v <= upto]

    async def _replay(self, game_id: str, after: int) -> list[tuple[int, bytes]]:
        """Every update after `after`, from the stored events (kept in the update log)."""
        done = self._replaying[game_id] = asyncio.Event()
        try:
            record, _ = await self.load(game_id)
            events = await self.store.events_after(game_id, 0, Actor.SERVER)
            loop = asyncio.get_running_loop()
            updates = await loop.run_in_executor(
                self._reads, _replay_events, self.game_types, record, events, after
            )
            self.replays += 1
            self._updates.put(game_id, updates)
            return updates
        finally:
            done.set()
            if self._replaying.get(game_id) is done:
                del self._replaying[game_id]

    # -- changing -------------------------------------------------------------------
    async def create_game(
        self,
        actor: Actor,
        game_type: str,
        seats: Mapping[str, Any] | None,
        public: bool,
        options: Mapping[str, Any] | None,
        clock: Mapping[str, Any] | None = None,
        rated: bool = False,
    ) -> Snapshot:
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to create a game")
        player = await self.profiles.named(actor)
        record, state = self._new_game(
            player, game_type, seats or {}, public, _with_rated(options, rated, actor), clock
        )
        if rated:
            check_rated_seats(record.seats)
            record = await self.with_ratings(record)
        async with self._ai_game_slot(actor.user_id, record.seats):
            try:
                await self.store.create_game(record, actor)
            except NotPermitted:
                raise Refused(
                    ErrorCode.FORBIDDEN, "the store refused to create this game"
                ) from None
            except StoreUnavailable as error:
                raise _unavailable(error) from None
        self._remember(record, state)
        log.info("game created game=%s type=%s user=%s", record.game_id, game_type, actor.user_id)
        self._run_commit_hooks(record, state)
        return self.personal(self.snapshot_of(record, state), record, actor)

    async def create_paired_game(
        self,
        game_id: str,
        game_type: str,
        players: Mapping[str, str],
        clock: Mapping[str, Any] | None = None,
        rated: bool = False,
    ) -> Snapshot:
        """A public game with the given human seats (`{seat: user_id}`, every seat), stored
        by the server: a seek's pairing. `active` at once, its clock running."""
        entry = self.game_types.get(game_type)
        if entry is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {game_type!r}")
        state = entry.state_class.initial({})
        seats = await self.profiles.with_current_names(
            {name: human_seat(players[name], None) for name in entry.state_class.seats}
        )
        status = derive_status(seats, state)
        now = utc_now()
        record = GameRecord(
            game_id=game_id,
            game_type=game_type,
            status=status,
            seats=seats,
            state=state.to_json(),
            version=0,
            public=True,
            options={"rated": True} if rated else {},
            turn=turn_of(status, state),
            clock=new_clock(clock, state, status, epoch_ms(now)),
            created_at=now,
            updated_at=now,
        )
        record = await self.with_ratings(record)
        try:
            await self.store.create_game(record, Actor.SERVER)
        except StoreUnavailable as error:
            raise _unavailable(error) from None
        self._remember(record, state)
        log.info("paired game created game=%s type=%s", game_id, game_type)
        self._run_commit_hooks(record, state)
        return self.snapshot_of(record, state)

    async def store_server_game(self, record: GameRecord, state: GameState) -> Snapshot:
        """Store a new game the server built (a rematch) as the server; its snapshot."""
        record = await self.with_ratings(record)
        try:
            await self.store.create_game(record, Actor.SERVER)
        except StoreUnavailable as error:
            raise _unavailable(error) from None
        self._remember(record, state)
        log.info("server game created game=%s type=%s", record.game_id, record.game_type)
        self._run_commit_hooks(record, state)
        return self.snapshot_of(record, state)

    async def with_ratings(self, record: GameRecord) -> GameRecord:
        """A new rated game with each human seat's current `rating` (an unrated one as
        it is)."""
        if not is_rated(record.options):
            return record
        users = [seat["user_id"] for seat in record.seats.values() if seat is not None]
        found = await self.ratings.ratings_of(record.game_type, users)
        seats = {
            name: None
            if seat is None
            else {**seat, "rating": seat_rating(found[seat["user_id"]].rating)}
            for name, seat in record.seats.items()
        }
        return replace(record, seats=seats)

    async def _join_rating(self, game_id: str, actor: Actor) -> int | None:
        """The rating `actor` brings to a rated game's seat; None for an unrated game."""
        record, _ = await self.load(game_id)
        if not is_rated(record.options) or actor.user_id is None:
            return None
        found = await self.ratings.ratings_of(record.game_type, [actor.user_id])
        return seat_rating(found[actor.user_id].rating)

    @asynccontextmanager
    async def _ai_game_slot(self, user_id: str, seats: Mapping[str, Any]) -> AsyncIterator[None]:
        """Around storing a new game: an AI-vs-AI one only within the user's cap.

        Counted from the store (every process's games); the lock makes the count exact
        within this process (processes racing may each admit one more).
        """
        cap = self.settings.max_ai_games_per_user
        if cap <= 0 or not only_ai(seats):
            yield
            return
        async with self._ai_game_creation:
            check_ai_games_cap(await self.store.active_ai_games(), user_id, cap)
            yield

    def _new_game(
        self,
        actor: Actor,
        game_type: str,
        seats: Mapping[str, Any],
        public: bool,
        options: Mapping[str, Any] | None,
        clock: Mapping[str, Any] | None,
    ) -> tuple[GameRecord, GameState]:
        """A new game at version 0 as asked for, checked; `bad_message` if it cannot be."""
        entry = self.game_types.get(game_type)
        if entry is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {game_type!r}")
        options = dict(options or {})
        check_ai_delay(options, self.settings.default_ai_delay_ms)
        try:
            state = entry.state_class.initial(options)
        except ValueError as error:
            raise Refused(ErrorCode.BAD_MESSAGE, str(error)) from None
        chosen = initial_seats(entry.state_class, seats, actor, entry.agent_builder is not None)
        status = derive_status(chosen, state)
        now = utc_now()
        record = GameRecord(
            game_id=str(uuid.uuid4()),
            game_type=game_type,
            status=status,
            seats=chosen,
            state=state.to_json(),
            version=0,
            public=public,
            options=options,
            created_by=actor.user_id,
            turn=turn_of(status, state),
            clock=new_clock(clock, state, status, epoch_ms(now)),
            invite=new_invite(public, chosen),
            created_at=now,
            updated_at=now,
        )
        return record, state

    async def join(
        self,
        actor: Actor,
        game_id: str,
        seat: str | None,
        request_id: str | None = None,
        invite: str | None = None,
    ) -> int:
        """Take `seat` (the first free one if None); a private game's with its `invite`."""
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to take a seat")
        player = await self.profiles.named(actor)
        rating = await self._join_rating(game_id, actor)

        def plan(record: GameRecord, state: GameState) -> Change | None:
            change = plan_invited_join(record, state, player, seat, invite)
            return rated_join(change, record, actor, rating)

        return await self._commit(Request(actor, game_id, request_id, plan, invite=invite))

    def move(
        self,
        actor: Actor,
        game_id: str,
        raw: Any,
        *,
        version: int | None = None,
        request_id: str | None = None,
        at_ms: int | None = None,
    ) -> Coroutine[Any, Any, int]:
        """A player's move; `at_ms`: when it arrived (its clock stops then; default now).
        The commit's coroutine itself: a move waits in one coroutine less."""
        arrived = at_ms if at_ms is not None else epoch_ms(utc_now())
        credit = self.settings.lag_credit_ms

        def plan(record: GameRecord, state: GameState) -> Change:
            return plan_player_move(record, state, actor, raw, at_ms=arrived, credit_ms=credit)

        return self._commit(Request(actor, game_id, request_id, plan, version))

    async def move_for_seat(
        self,
        actor: Actor,
        game_id: str,
        seat: str,
        raw: Any,
        *,
        version: int,
        request_id: str | None = None,
    ) -> int:
        """Play `raw` for `seat` (an AI's move) if the game is still at `version`; after
        the seat's flag, the timeout is stored instead and the move refused `game_over`."""

        def plan(record: GameRecord, state: GameState) -> Change:
            return plan_seat_move(record, state, seat, raw, epoch_ms(utc_now()))

        return await self._commit(Request(actor, game_id, request_id, plan, version))

    async def resign(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        return await self._commit(
            Request(actor, game_id, request_id, lambda r, s: plan_resign(r, s, actor))
        )

    async def abort(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        return await self._commit(
            Request(actor, game_id, request_id, lambda r, s: plan_abort(r, s, actor))
        )

    async def flag(self, game_id: str, version: int) -> int | None:
        """Store the timeout of the running seat if its flag has fallen at `version`.

        Called by the clock timers of every process that holds the game: the store's
        version check lets exactly one of them store it. The version stored, or None
        when there was nothing to store (the game moved on, or time remains).
        """

        def plan(record: GameRecord, state: GameState) -> Change | None:
            return plan_timeout(record, state, epoch_ms(utc_now()))

        request = Request(Actor.SERVER, game_id, None, plan, version)
        try:
            stored = await self._commit(request)
        except Refused as refusal:
            if refusal.code is ErrorCode.STALE_VERSION:
                return None
            raise
        return stored if stored > version else None

    async def claim_victory(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        """Win a game whose every opponent seat has been offline long enough."""
        record, _ = await self.view(game_id, actor)
        gone = await self._seats_gone(record)

        def plan(current: GameRecord, state: GameState) -> Change:
            return plan_claim(current, state, actor, gone)

        return await self._commit(Request(actor, game_id, request_id, plan))

    async def _seats_gone(self, record: GameRecord) -> set[str]:
        """Human seats with no socket on any process for `claim_after_seconds`."""
        presence = await self.broker.get_presence(record.game_id)
        left_at = await self.broker.seats_left_at(record.game_id)
        now = epoch_ms(utc_now())
        last_change = epoch_ms(record.updated_at)
        patience = self.settings.claim_after_seconds * 1000
        return {
            seat
            for seat in record.seats
            if presence.players.get(seat, 0) == 0
            and now - max(left_at.get(seat, 0), last_change) >= patience
        }

    async def draw(
        self, actor: Actor, game_id: str, action: str, request_id: str | None = None
    ) -> int:
        """`offer` and `decline` change nothing (no version); `accept` ends the game."""
        if action == "accept":

            def plan(record: GameRecord, state: GameState) -> Change:
                return plan_draw_accept(record, state, actor, self._draw_offers.get(game_id))

            return await self._commit(Request(actor, game_id, request_id, plan))
        async with self._lock(game_id):
            record, state = await self.load(game_id)
            check_viewer(record, actor)
            offered_by = self._draw_offers.get(game_id)
            if action == "offer":
                seat = plan_draw_offer(record, state, actor, offered_by)
                self._draw_offers[game_id] = seat
                message = protocol.draw_offer(game_id, seat)
            else:
                seat = plan_draw_decline(record, state, actor, offered_by)
                del self._draw_offers[game_id]
                message = protocol.draw_declined(game_id, seat)
            await self._publisher.send(game_id, message)
            return record.version

    # -- the commit path ------------------------------------------------------------
    async def _commit(self, request: Request) -> int:
        """Plan `request` on the current game, store it, publish it; its version."""
        # Changes under way are counted, so that a shutdown can wait for them.
        self._changes_in_flight += 1
        self._idle.clear()
        try:
            # The lock's acquire and release themselves, not `async with`: its
            # __aenter__ and __aexit__ are two coroutines more on every change.
            lock = self._lock(request.game_id)
            await lock.acquire()
            try:
                outcome = await self._store_or_landed(request)
                if isinstance(outcome, int):  # nothing was stored
                    return outcome
                await self._publish(outcome)
            finally:
                lock.release()
        finally:
            self._changes_in_flight -= 1
            if self._changes_in_flight == 0:
                self._idle.set()
        self._run_commit_hooks(outcome.record, outcome.state)
        if outcome.then_refuse is not None:
            raise outcome.then_refuse
        return outcome.record.version

    async def _store_or_landed(self, request: Request) -> Committed | int:
        """The stored change; for a refused retry of an earlier request, its version."""
        try:
            try:
                return await self._plan_and_store(request, fresh=False)
            except StaleVersion:
                return await self._store_again(request)
        except Refused:
            landed = await self._landed(request)
            if landed is None:
                raise
            return landed

    async def _store_again(self, request: Request) -> Committed | int:
        """Another process stored first: once more on a fresh read (unless the request
        named the version it was meant for), else `stale_version`."""
        if request.expected_version is None:
            try:
                return await self._plan_and_store(request, fresh=True)
            except StaleVersion:
                pass
        current, _ = await self.load(request.game_id, fresh=True)
        raise Refused(
            ErrorCode.STALE_VERSION, f"the game moved on to version {current.version}"
        ) from None

    async def _plan_and_store(self, request: Request, *, fresh: bool) -> Committed | int:
        """The stored change, or the version the request stands at when nothing changes."""
        record, change = await self._plan(request, fresh=fresh)
        if change is None:  # already satisfied: unless it is a retry of ours
            landed = await self._landed(request)
            return record.version if landed is None else landed
        # A timeout is the server's to store, also when a late move found it (under RLS a
        # player may not append one).
        actor = Actor.SERVER if change.kind == "timeout" else request.actor
        new_record, event = next_version(record, change, actor, request.request_id, utc_now())
        try:
            await self.store.commit_change(new_record, event, actor)
        except DuplicateRequest as duplicate:
            return duplicate.version
        except NotPermitted:
            raise Refused(ErrorCode.FORBIDDEN, "the store refused this change") from None
        except StoreUnavailable as error:
            raise _unavailable(error) from None
        except StoreError:  # a stale version: the store decided, nothing was stored
            raise
        except Exception as error:
            # The outcome is unknown (say, the connection died around the commit).
            if not await self._stored_anyway(event, error):
                raise
        return Committed(new_record, change.state, event, change.then_refuse)

    async def _plan(self, request: Request, *, fresh: bool) -> tuple[GameRecord, Change | None]:
        # The cached game read in place: `load` would be one coroutine more a change.
        cached = None if fresh else self._cache.get(request.game_id)
        record, state = cached or await self.load(request.game_id, fresh=fresh)
        try:
            return record, self._plan_on(record, state, request)
        except Refused:
            if fresh:
                raise
        # The cache may be behind a change made by another process: plan on the store's.
        record, state = await self.load(request.game_id, fresh=True)
        return record, self._plan_on(record, state, request)

    @staticmethod
    def _plan_on(record: GameRecord, state: GameState, request: Request) -> Change | None:
        # Visibility first: a stranger must not learn a private game's version (unless
        # invited: the code admits the caller to the join, and nothing else).
        if not invite_opens(record, request.invite):
            check_viewer(record, request.actor)
        expected = request.expected_version
        if expected is not None and expected != record.version:
            raise Refused(
                ErrorCode.STALE_VERSION, f"the game is at version {record.version}, not {expected}"
            )
        return request.plan(record, state)

    async def _landed(self, request: Request) -> int | None:
        """The version a retried request landed at, if it was stored before.

        Asked only when a request is refused or changes nothing: a request that does
        change the game meets the store's own check (`DuplicateRequest`), which saves a
        read per change on the hot path.
        """
        user_id = request.actor.user_id
        if request.request_id is None or user_id is None:
            return None
        return await self.store.find_request(
            request.game_id, user_id, request.request_id, request.actor
        )

    async def _stored_anyway(self, event: EventRecord, error: Exception) -> bool:
        """After an unexpected error from `commit_change`: is `event` stored all the same?

        The database may have committed before the error (an answer lost with its
        connection, a connection that broke as it went back to the pool). The store is
        asked again after each of LANDED_CHECK_DELAYS while it cannot answer; no answer
        at all counts as not stored (the caller gets the error and may resend).
        """
        for delay in LANDED_CHECK_DELAYS:
            await asyncio.sleep(delay)
            try:
                stored = await self._holds(event)
            except Exception as failed:
                log.warning(
                    "landed check failed game=%s version=%d error=%r",
                    event.game_id,
                    event.version,
                    failed,
                )
                continue
            log.warning(
                "commit error game=%s version=%d stored=%s error=%r",
                event.game_id,
                event.version,
                stored,
                error,
            )
            return stored
        return False

    async def _holds(self, event: EventRecord) -> bool:
        """True when the store holds `event` at its version (this change, not another)."""
        if event.user_id is not None and event.request_id is not None:
            found = await self.store.find_request(
                event.game_id, event.user_id, event.request_id, Actor.SERVER
            )
            return found == event.version
        events = await self.store.events_after(event.game_id, event.version - 1, Actor.SERVER)
        return bool(events) and _same_event(events[0], event)

    async def _publish(self, committed: Committed) -> None:
        record, state, event = committed.record, committed.state, committed.event
        self._remember(record, state)
        if event.kind == "move" or record.status != "active":
            self._draw_offers.pop(record.game_id, None)
        data = protocol.update(self.snapshot_of(record, state), event_of(event))
        self._updates.add(record.game_id, record.version, data)
        # A move is a DEBUG line (thousands a second); the changes around it (joins,
        # resignations, the end of a game) stay at INFO. No formatting when it is off.
        quiet = event.kind == "move" and record.status == "active"
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "change game=%s version=%d kind=%s seat=%s move=%s user=%s status=%s",
                record.game_id,
                record.version,
                event.kind,
                event.seat,
                event.move,
                event.user_id,
                record.status,
            )
        await self._publisher.send(record.game_id, data)
        if event.kind == "move":
            self.metrics.count_move(record.game_type)

    def _run_commit_hooks(self, record: GameRecord, state: GameState) -> None:
        for hook in self._commit_hooks:
            hook(record, state)

    async def shutdown(self, grace_seconds: float = 5.0) -> None:
        """Take no more AI turns and let the changes in flight finish."""
        self.closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            log.warning("shutdown: %d change(s) still in flight", self._changes_in_flight)
        await self._publisher.flush(grace_seconds)


def _same_event(stored: EventRecord, ours: EventRecord) -> bool:
    """The stored event is the one we tried to store (kind, seat, move and author)."""
    return (stored.version, stored.kind, stored.seat, stored.move, stored.user_id) == (
        ours.version,
        ours.kind,
        ours.seat,
        ours.move,
        ours.user_id,
    )


def _with_rated(options: Mapping[str, Any] | None, rated: bool, actor: Actor) -> dict[str, Any]:
    """A new game's options with `rated` (only the server writes `options["rated"]`)."""
    chosen = dict(options or {})
    if "rated" in chosen:
        raise Refused(ErrorCode.BAD_MESSAGE, 'say "rated" beside "options", not in them')
    if rated:
        check_rated_player(actor)
        chosen["rated"] = True
    return chosen


def _unavailable(error: StoreUnavailable) -> Refused:
    return Refused(ErrorCode.UNAVAILABLE, f"{error}: nothing was changed; try again in a while")


def is_game_id(text: str) -> bool:
    """True for a game id in the one spelling the server uses (see `GAME_ID`)."""
    return GAME_ID.fullmatch(text) is not None


class UpdateLog:
    """Encoded `update` messages of consecutive versions per game, for replays.

    Each game keeps one run of consecutive versions, at most `per_game` of them (the
    newest: a longer replay is never sent), and all games together at most `max_bytes`
    (the least recently used game goes first). Only the event loop touches it.
    """

    def __init__(self, max_bytes: int, per_game: int) -> None:
        self.max_bytes = max_bytes
        self.per_game = max(per_game, 1)
        self._runs: OrderedDict[str, tuple[int, list[bytes]]] = OrderedDict()  # first, texts
        self._bytes = 0

    def between(self, game_id: str, after: int, upto: int) -> list[tuple[int, bytes]] | None:
        """Versions after..upto in order, if the log holds every one of them."""
        first, texts = self._runs.get(game_id, (0, []))
        if not texts or after + 1 < first or upto > first + len(texts) - 1:
            return None
        self._runs.move_to_end(game_id)
        return [(first + i, texts[i]) for i in range(after + 1 - first, upto + 1 - first)]

    def add(self, game_id: str, version: int, data: bytes) -> None:
        """One update as published: extends the game's run, or starts a new one."""
        first, texts = self._runs.get(game_id, (0, []))
        if texts and first <= version < first + len(texts):
            return  # held already
        if texts and version == first + len(texts):
            self._extend(game_id, first, texts, data)
        elif not texts or version > first:
            self._store(game_id, version, [data])

    def _extend(self, game_id: str, first: int, texts: list[bytes], data: bytes) -> None:
        """The next version of a run, appended in place (one per move: no copy)."""
        texts.append(data)
        self._bytes += len(data)
        if len(texts) > self.per_game:
            self._bytes -= len(texts[0])
            del texts[0]
            self._runs[game_id] = (first + 1, texts)
        self._runs.move_to_end(game_id)
        self._evict()

    def put(self, game_id: str, updates: list[tuple[int, bytes]]) -> None:
        """Consecutive replayed updates: merged with the game's run where they meet it."""
        if not updates:
            return
        first, texts = self._runs.get(game_id, (0, []))
        new_first, new_last = updates[0][0], updates[-1][0]
        last = first + len(texts) - 1
        if texts and new_first <= last + 1 and first <= new_last + 1:
            merged = dict(updates) | {first + i: text for i, text in enumerate(texts)}
            low = min(first, new_first)
            self._store(game_id, low, [merged[v] for v in range(low, max(last, new_last) + 1)])
        elif not texts or new_last > last:
            self._store(game_id, new_first, [data for _, data in updates])

    def _store(self, game_id: str, first: int, texts: list[bytes]) -> None:
        if len(texts) > self.per_game:
            first, texts = first + len(texts) - self.per_game, texts[-self.per_game :]
        _, old = self._runs.pop(game_id, (0, []))
        self._bytes += sum(map(len, texts)) - sum(map(len, old))
        self._runs[game_id] = (first, texts)
        self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._runs:
            _, (_, evicted) = self._runs.popitem(last=False)
            self._bytes -= sum(map(len, evicted))


def _build_snapshots(
    game_types: GameTypes, batch: list[tuple[GameRecord, GameState | None]]
) -> list[Snapshot | Exception]:
    """On the reads thread: each record's snapshot (parsing its state if not given)."""
    built: list[Snapshot | Exception] = []
    for record, state in batch:
        try:
            if state is None:
                state = game_types.load_state(record.game_type, record.state)
            built.append(build_snapshot(record, state))
        except Exception as error:  # one bad record fails its own request only
            built.append(error)
    return built


def _replay_events(
    game_types: GameTypes, record: GameRecord, events: list[EventRecord], after: int
) -> list[tuple[int, bytes]]:
    """On the reads thread: the updates after `after`, replayed from the initial state."""
    seats = seats_before_joins(record, events)
    state = game_types.state_class(record.game_type).initial(record.options)
    updates = []
    for event in events:
        seats, state = replay_event(seats, state, event, record.seats)
        if event.version > after:
            status = derive_status(seats, state)
            step = replace(record, seats=dict(seats), version=event.version, status=status)
            data = protocol.update(build_snapshot(step, state), event_of(event))
            updates.append((event.version, data))
    return updates


def _move_entry(event: EventRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"version": event.version, "seat": event.seat, "move": event.move}
    if event.san is not None:
        entry["san"] = event.san
    entry["at"] = event.at.isoformat()
    return entry
