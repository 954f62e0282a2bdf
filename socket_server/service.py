"""The game service: the one path of every state change (socket, REST, AI).

A change is: load the game (cached) -> plan it (`changes`, pure) -> store it with the
expected version (the store's atomic check decides races between processes) ->
publish its `update`, serialised once -> the after-commit hooks (the AI turns react
there). Inside this process an asyncio lock per game serialises changes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from games import GameState
from socket_server import protocol
from socket_server.changes import (
    Change,
    Refused,
    check_ai_delay,
    check_viewer,
    derive_status,
    initial_seats,
    next_version,
    plan_abort,
    plan_draw_accept,
    plan_draw_decline,
    plan_draw_offer,
    plan_join,
    plan_move,
    plan_player_move,
    plan_resign,
    replay_event,
    seats_before_joins,
    turn_of,
)
from socket_server.fanout.base import Broker
from socket_server.metrics import Metrics
from socket_server.protocol import ErrorCode, Header, Snapshot
from socket_server.registry import GameTypes
from socket_server.settings import Settings
from socket_server.snapshot import build_snapshot, event_of
from socket_server.store.base import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStatus,
    GameStore,
    NotPermitted,
    StaleVersion,
    may_see,
    utc_now,
)

log = logging.getLogger("gamesocket.service")

CACHE_SIZE = 4096

# (record, state) -> the change to store, or None when there is nothing to store
Plan = Callable[[GameRecord, GameState], Change | None]
# Called after a game was created or a change stored (never with the lock held).
CommitHook = Callable[[GameRecord, GameState], None]
# Called with a game id when the service stops holding the game (cache eviction).
ForgetHook = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    actor: Actor
    game_id: str
    request_id: str | None
    plan: Plan
    expected_version: int | None = None


@dataclass(frozen=True)
class Committed:
    record: GameRecord
    state: GameState
    event: EventRecord


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
        self._cache: OrderedDict[str, tuple[GameRecord, GameState]] = OrderedDict()
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()  # newest per game
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # The seat that offered a draw, per game; other processes' offers arrive through
        # `note_published`.
        self._draw_offers: dict[str, str] = {}
        self._commit_hooks: list[CommitHook] = []
        self._forget_hooks: list[ForgetHook] = []
        self._changes_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False

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

    def note_published(self, game_id: str, header: Header) -> None:
        """A message of `game_id` went through the broker (from any process)."""
        if header.type == "update" and header.version is not None:
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
        try:
            uuid.UUID(game_id)
        except ValueError:
            raise Refused(ErrorCode.NOT_FOUND, "no such game") from None
        record = await self.store.get_game(game_id, Actor.SERVER)
        if record is None or record.game_type not in self.game_types:
            raise Refused(ErrorCode.NOT_FOUND, "no such game")
        state = self.game_types.load_state(record.game_type, record.state)
        self._remember(record, state)
        return record, state

    async def view(self, game_id: str, actor: Actor) -> tuple[GameRecord, GameState]:
        """The game as stored now, if `actor` may see it (strangers to private games not)."""
        record, state = await self.load(game_id, fresh=True)
        check_viewer(record, actor)
        return record, state

    async def snapshot(self, game_id: str, actor: Actor) -> Snapshot:
        return self.snapshot_of(*await self.view(game_id, actor))

    def snapshot_of(self, record: GameRecord, state: GameState) -> Snapshot:
        """The snapshot of a stored version, built once per version and reused."""
        built = self._snapshots.get(record.game_id)
        if built is not None and built.version == record.version:
            return built
        snapshot = build_snapshot(record, state)
        self._snapshots[record.game_id] = snapshot
        self._snapshots.move_to_end(record.game_id)
        while len(self._snapshots) > CACHE_SIZE:
            self._snapshots.popitem(last=False)
        return snapshot

    async def list_games(
        self, actor: Actor, *, game_type: str | None, status: GameStatus | None, limit: int
    ) -> list[Snapshot]:
        records = await self.store.list_games(
            actor, game_type=game_type, status=status, limit=limit
        )
        return [
            self.snapshot_of(r, self.game_types.load_state(r.game_type, r.state))
            for r in records
            if r.game_type in self.game_types and may_see(r, actor)
        ]

    async def move_log(self, game_id: str, actor: Actor) -> list[dict[str, Any]]:
        """`[{"version", "seat", "move", "san"?, "at"}]` of the game's moves."""
        await self.view(game_id, actor)
        events = await self.store.events_after(game_id, 0, Actor.SERVER)
        return [_move_entry(event) for event in events if event.kind == "move"]

    async def replay_updates(self, game_id: str, after: int) -> list[tuple[int, bytes]]:
        """The `update` messages after version `after`, rebuilt from the stored events."""
        record, _ = await self.load(game_id)
        events = await self.store.events_after(game_id, 0, Actor.SERVER)
        seats = seats_before_joins(record, events)
        state = self.game_types.state_class(record.game_type).initial(record.options)
        updates = []
        for event in events:
            seats, state = replay_event(seats, state, event)
            if event.version > after:
                status = derive_status(seats, state)
                step = replace(record, seats=dict(seats), version=event.version, status=status)
                data = protocol.update(build_snapshot(step, state), event_of(event))
                updates.append((event.version, data))
        return updates

    # -- changing -------------------------------------------------------------------
    async def create_game(
        self,
        actor: Actor,
        game_type: str,
        seats: Mapping[str, Any] | None,
        public: bool,
        options: Mapping[str, Any] | None,
    ) -> Snapshot:
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to create a game")
        entry = self.game_types.get(game_type)
        if entry is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {game_type!r}")
        options = dict(options or {})
        check_ai_delay(options, self.settings.default_ai_delay_ms)
        try:
            state = entry.state_class.initial(options)
        except ValueError as error:
            raise Refused(ErrorCode.BAD_MESSAGE, str(error)) from None
        chosen = initial_seats(
            entry.state_class, seats or {}, actor, entry.agent_builder is not None
        )
        status = derive_status(chosen, state)
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
        )
        try:
            await self.store.create_game(record, actor)
        except NotPermitted:
            raise Refused(ErrorCode.FORBIDDEN, "the store refused to create this game") from None
        self._remember(record, state)
        log.info("game created game=%s type=%s user=%s", record.game_id, game_type, actor.user_id)
        self._run_commit_hooks(record, state)
        return self.snapshot_of(record, state)

    async def join(
        self, actor: Actor, game_id: str, seat: str | None, request_id: str | None = None
    ) -> int:
        if actor.user_id is None:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to take a seat")
        return await self._commit(
            Request(actor, game_id, request_id, lambda r, s: plan_join(r, s, actor, seat))
        )

    async def move(
        self,
        actor: Actor,
        game_id: str,
        raw: Any,
        *,
        version: int | None = None,
        request_id: str | None = None,
    ) -> int:
        def plan(record: GameRecord, state: GameState) -> Change:
            return plan_player_move(record, state, actor, raw)

        return await self._commit(Request(actor, game_id, request_id, plan, version))

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
        """Play `raw` for `seat` (an AI's move) if the game is still at `version`."""

        def plan(record: GameRecord, state: GameState) -> Change:
            return plan_move(record, state, seat, raw)

        return await self._commit(Request(actor, game_id, request_id, plan, version))

    async def resign(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        return await self._commit(
            Request(actor, game_id, request_id, lambda r, s: plan_resign(r, s, actor))
        )

    async def abort(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        return await self._commit(
            Request(actor, game_id, request_id, lambda r, s: plan_abort(r, s, actor))
        )

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
            await self.broker.publish(game_id, message)
            return record.version

    # -- the commit path ------------------------------------------------------------
    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Counts changes under way, so that a shutdown can wait for them."""
        self._changes_in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._changes_in_flight -= 1
            if self._changes_in_flight == 0:
                self._idle.set()

    async def _commit(self, request: Request) -> int:
        """Plan `request` on the current game, store it, publish it; its version."""
        with self._in_flight():
            async with self._lock(request.game_id):
                try:
                    outcome = await self._store_with_retry(request)
                except Refused:
                    landed = await self._landed(request)
                    if landed is None:
                        raise
                    return landed
                if isinstance(outcome, int):  # nothing was stored
                    return outcome
                await self._publish(outcome)
        self._run_commit_hooks(outcome.record, outcome.state)
        return outcome.record.version

    async def _store_with_retry(self, request: Request) -> Committed | int:
        """Store the planned change; once more on a fresh read if another process won."""
        try:
            return await self._plan_and_store(request, fresh=False)
        except StaleVersion:
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
        new_record, event = next_version(
            record, change, request.actor, request.request_id, utc_now()
        )
        try:
            await self.store.commit_change(new_record, event, request.actor)
        except DuplicateRequest as duplicate:
            return duplicate.version
        except NotPermitted:
            raise Refused(ErrorCode.FORBIDDEN, "the store refused this change") from None
        return Committed(new_record, change.state, event)

    async def _plan(self, request: Request, *, fresh: bool) -> tuple[GameRecord, Change | None]:
        record, state = await self.load(request.game_id, fresh=fresh)
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
        # Visibility first: a stranger must not learn a private game's version.
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

    async def _publish(self, committed: Committed) -> None:
        record, state, event = committed.record, committed.state, committed.event
        self._remember(record, state)
        if event.kind == "move" or record.status != "active":
            self._draw_offers.pop(record.game_id, None)
        data = protocol.update(self.snapshot_of(record, state), event_of(event))
        log.info(
            "change game=%s version=%d kind=%s seat=%s move=%s user=%s",
            record.game_id,
            record.version,
            event.kind,
            event.seat,
            event.move,
            event.user_id,
        )
        await self.broker.publish(record.game_id, data)
        if event.kind == "move":
            self.metrics.moves.labels(record.game_type).inc()

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


def _move_entry(event: EventRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"version": event.version, "seat": event.seat, "move": event.move}
    if event.san is not None:
        entry["san"] = event.san
    entry["at"] = event.at.isoformat()
    return entry
