"""The game service: every state change (WebSocket, REST, AI) passes through here.

Per game: an asyncio lock serialises changes inside this process, and the store's
version check (`commit_change`) decides races between processes. A change is stored
first, then its `update` is serialised once and published to the broker. When the
side to move is an AI, exactly one search runs for the game (a task here, plus the
broker's `ai:{game_id}` lock across processes).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agents.base import Agent, SearchInfo
from games import GameState, IllegalMove, Move
from socket_server.fanout.base import Broker
from socket_server.metrics import Metrics
from socket_server.protocol import encode
from socket_server.settings import Settings
from socket_server.snapshot import build_snapshot, derive_status, update_body
from socket_server.store.base import (
    Actor,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStatus,
    GameStore,
    NotPermitted,
    Seat,
    StaleVersion,
    is_ai_seat,
    may_see,
    seats_held_by,
    utc_now,
)

log = logging.getLogger("gamesocket.service")

# A process waiting for another's AI lock looks again this often (seconds).
AI_LOCK_POLL = 0.5
# With several processes: how often each looks for AI turns nobody takes (seconds).
AI_SWEEP_INTERVAL = 2.0
THINKING_INTERVAL = 0.25  # at most four `thinking` messages a second per game
# A failed AI turn is tried again after this many seconds, doubled per failure up to the cap.
AI_RETRY_FIRST = 0.5
AI_RETRY_MAX = 30.0
DEFAULT_AI_MOVE_LEVEL = 5
CACHE_SIZE = 4096

# (game_id, level) -> an agent for that game type
AgentProvider = Callable[[str, int], Agent]


class ServiceError(Exception):
    """A refused request: `code` is a protocol error code; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class GameType:
    state_class: type[GameState]
    agent_provider: AgentProvider | None = None
    # Called with a game id when that game ends, to free its agents.
    release: Callable[[str], None] | None = None


def check_viewer(record: GameRecord, actor: Actor) -> None:
    if may_see(record, actor):
        return
    if actor.user_id is None:
        raise ServiceError("unauthorized", "this game is private: sign in as one of its players")
    raise ServiceError("forbidden", "this game is private")


# A change computed from the current record and state: the new seats and state and the
# event, or None when the request is already satisfied (nothing to store).
Change = tuple[dict[str, Seat], GameState, EventRecord] | None


class GameService:
    def __init__(
        self, store: GameStore, broker: Broker, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.game_types: dict[str, GameType] = {}
        self._cache: OrderedDict[str, tuple[GameRecord, GameState]] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # seat that offered a draw, per game; kept in sync across processes by the hub
        self.draw_offers: dict[str, str] = {}
        self._ai_tasks: dict[str, asyncio.Task[bool]] = {}
        self._ai_failures: dict[str, int] = {}  # game_id -> failed AI turns in a row
        self._background: set[asyncio.Task[Any]] = set()
        self._changes_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False

    # -- registry -------------------------------------------------------------------
    def register_game_type(
        self,
        state_class: type[GameState],
        agent_provider: AgentProvider | None,
        release: Callable[[str], None] | None = None,
    ) -> None:
        self.game_types[state_class.game_type] = GameType(state_class, agent_provider, release)

    def state_class(self, game_type: str) -> type[GameState]:
        entry = self.game_types.get(game_type)
        if entry is None:
            raise ServiceError("bad_message", f"unknown game type {game_type!r}")
        return entry.state_class

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
        # back: the AI is scheduled from the cache, and an old turn there stalls the game.
        if cached is not None and cached[0].version > record.version:
            return
        self._cache[record.game_id] = (record, state)
        self._cache.move_to_end(record.game_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def forget_if_older(self, game_id: str, version: int) -> None:
        """Another process stored `version`: drop a cached state that is older."""
        entry = self._cache.get(game_id)
        if entry is not None and entry[0].version < version:
            del self._cache[game_id]

    async def load(self, game_id: str, *, fresh: bool = False) -> tuple[GameRecord, GameState]:
        """The game (read as the server) and its state; `not_found` if there is none."""
        if not fresh:
            entry = self._cache.get(game_id)
            if entry is not None:
                return entry
        try:
            uuid.UUID(game_id)
        except ValueError:
            raise ServiceError("not_found", "no such game") from None
        record = await self.store.get_game(game_id, Actor.SERVER)
        if record is None or record.game_type not in self.game_types:
            raise ServiceError("not_found", "no such game")
        state = self.game_types[record.game_type].state_class.from_json(record.state)
        self._remember(record, state)
        return record, state

    async def view(self, game_id: str, actor: Actor) -> tuple[GameRecord, GameState]:
        """The game as stored now, if `actor` may see it (strangers to private games not)."""
        record, state = await self.load(game_id, fresh=True)
        check_viewer(record, actor)
        return record, state

    async def snapshot(self, game_id: str, actor: Actor) -> dict[str, Any]:
        return build_snapshot(*await self.view(game_id, actor))

    async def list_games(
        self, actor: Actor, *, game_type: str | None, status: GameStatus | None, limit: int
    ) -> list[dict[str, Any]]:
        records = await self.store.list_games(
            actor, game_type=game_type, status=status, limit=limit
        )
        return [
            build_snapshot(r, self.game_types[r.game_type].state_class.from_json(r.state))
            for r in records
            if r.game_type in self.game_types and may_see(r, actor)
        ]

    async def move_log(self, game_id: str, actor: Actor) -> list[dict[str, Any]]:
        await self.view(game_id, actor)
        events = await self.store.events_after(game_id, 0, Actor.SERVER)
        log_entries = []
        for event in events:
            if event.kind != "move":
                continue
            entry: dict[str, Any] = {"version": event.version, "seat": event.seat}
            entry["move"] = event.move
            if event.san is not None:
                entry["san"] = event.san
            entry["at"] = event.at.isoformat()
            log_entries.append(entry)
        return log_entries

    async def replay_updates(self, game_id: str, after: int) -> list[tuple[int, bytes]]:
        """The `update` messages after version `after`, rebuilt from the stored events.

        The rules are replayed from the initial state; seats start as stored minus
        those a `join` event filled later.
        """
        record, _ = await self.load(game_id)
        events = await self.store.events_after(game_id, 0, Actor.SERVER)
        state_class = self.game_types[record.game_type].state_class
        state = state_class.initial(record.options)
        joined = {e.seat for e in events if e.kind == "join"}
        seats: dict[str, Seat] = {
            name: (None if name in joined else seat) for name, seat in record.seats.items()
        }
        updates = []
        for event in events:
            seats, state = _replay_event(seats, state, event)
            if event.version > after:
                step = replace(
                    record,
                    seats=dict(seats),
                    version=event.version,
                    status=derive_status(seats, state),
                )
                updates.append((event.version, encode(update_body(step, state, event))))
        return updates

    # -- changing -------------------------------------------------------------------
    async def create_game(
        self,
        actor: Actor,
        game_type: str,
        seats: Mapping[str, Any] | None,
        public: bool,
        options: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if actor.user_id is None:
            raise ServiceError("unauthorized", "sign in to create a game")
        entry = self.game_types.get(game_type)
        if entry is None:
            raise ServiceError("bad_message", f"unknown game type {game_type!r}")
        state_class = entry.state_class
        options = dict(options or {})
        delay = options.get("ai_delay_ms", self.settings.default_ai_delay_ms)
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60_000:
            raise ServiceError("bad_message", "options.ai_delay_ms must be an integer 0..60000")
        try:
            state = state_class.initial(options)
        except ValueError as error:
            raise ServiceError("bad_message", str(error)) from None
        record = GameRecord(
            game_id=str(uuid.uuid4()),
            game_type=game_type,
            status="waiting",
            seats=self._initial_seats(entry, seats or {}, actor),
            state=state.to_json(),
            version=0,
            public=public,
            options=options,
            created_by=actor.user_id,
        )
        record.status = derive_status(record.seats, state)
        try:
            await self.store.create_game(record, actor)
        except NotPermitted:
            raise ServiceError("forbidden", "the store refused to create this game") from None
        self._remember(record, state)
        log.info("game created game=%s type=%s user=%s", record.game_id, game_type, actor.user_id)
        self.schedule_ai(record.game_id)
        return build_snapshot(record, state)

    def _initial_seats(
        self, entry: GameType, requested: Mapping[str, Any], actor: Actor
    ) -> dict[str, Seat]:
        names = entry.state_class.seats
        unknown = sorted(set(requested) - set(names))
        if unknown:
            raise ServiceError("bad_message", f"unknown seat(s) {unknown}; seats are {names}")
        seats: dict[str, Seat] = {}
        for name in names:
            wanted = requested.get(name)
            if wanted is None:
                seats[name] = None
            elif wanted == "me":
                seats[name] = {"kind": "human", "user_id": actor.user_id}
            elif isinstance(wanted, Mapping) and wanted.get("kind") == "ai":
                level = wanted.get("level", DEFAULT_AI_MOVE_LEVEL)
                if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
                    raise ServiceError("bad_message", "an AI level is an integer 1..10")
                if entry.agent_provider is None:
                    raise ServiceError("bad_message", f"{entry.state_class.game_type} has no AI")
                seats[name] = {"kind": "ai", "level": level}
            else:
                raise ServiceError(
                    "bad_message", f'seat {name}: use "me" or {{"kind": "ai", "level": 1..10}}'
                )
        return seats

    async def _landed(self, actor: Actor, game_id: str, request_id: str | None) -> int | None:
        """The version a retried request landed at, if it was stored before.

        Asked only when a request is refused or changes nothing: a request that does
        change the game meets the store's own check (`DuplicateRequest`), which saves a
        read per change on the hot path.
        """
        if request_id is None or actor.user_id is None:
            return None
        return await self.store.find_request(game_id, actor.user_id, request_id, actor)

    async def _change(
        self,
        actor: Actor,
        game_id: str,
        request_id: str | None,
        compute: Callable[[GameRecord, GameState], Change],
        *,
        expected_version: int | None = None,
    ) -> int:
        """Compute a change on the current state, store it, publish it; its version."""
        user_id = actor.user_id
        self._changes_in_flight += 1
        self._idle.clear()
        try:
            async with self._lock(game_id):
                try:
                    record, state = await self.load(game_id)
                    fresh = False  # the cache may be behind a change made by another process
                    stale_retries = 0
                    while True:
                        if expected_version is not None and expected_version != record.version:
                            if not fresh:
                                record, state, fresh = *await self.load(game_id, fresh=True), True
                                continue
                            raise ServiceError(
                                "stale_version",
                                f"the game is at version {record.version}, not {expected_version}",
                            )
                        check_viewer(record, actor)
                        try:
                            change = compute(record, state)
                        except ServiceError:
                            if fresh:
                                raise
                            record, state, fresh = *await self.load(game_id, fresh=True), True
                            continue
                        if change is None:  # nothing to do: unless it is a retry of ours
                            done = await self._landed(actor, game_id, request_id)
                            return record.version if done is None else done
                        seats, new_state, event = change
                        new_record = replace(
                            record,
                            seats=seats,
                            state=new_state.to_json(),
                            version=record.version + 1,
                            status=derive_status(seats, new_state),
                            updated_at=utc_now(),
                        )
                        event.game_id = game_id
                        event.version = new_record.version
                        event.user_id = user_id
                        event.request_id = request_id if user_id is not None else None
                        try:
                            await self.store.commit_change(new_record, event, actor)
                        except StaleVersion:
                            record, state, fresh = *await self.load(game_id, fresh=True), True
                            stale_retries += 1
                            if stale_retries == 1 and expected_version is None:
                                continue
                            raise ServiceError(
                                "stale_version", f"the game moved on to version {record.version}"
                            ) from None
                        except DuplicateRequest as duplicate:
                            return duplicate.version
                        except NotPermitted:
                            raise ServiceError(
                                "forbidden", "the store refused this change"
                            ) from None
                        break
                except ServiceError:
                    done = await self._landed(actor, game_id, request_id)
                    if done is not None:
                        return done
                    raise
                self._remember(new_record, new_state)
                if event.kind == "move" or new_record.status != "active":
                    self.draw_offers.pop(game_id, None)
                release = self.game_types[new_record.game_type].release
                if new_record.status in ("finished", "aborted") and release is not None:
                    release(game_id)
                data = encode(update_body(new_record, new_state, event))
                log.info(
                    "change game=%s version=%d kind=%s seat=%s move=%s user=%s",
                    game_id,
                    new_record.version,
                    event.kind,
                    event.seat,
                    event.move,
                    user_id,
                )
                await self.broker.publish(game_id, data)
                if event.kind == "move":
                    self.metrics.moves.labels(new_record.game_type).inc()
        finally:
            self._changes_in_flight -= 1
            if self._changes_in_flight == 0:
                self._idle.set()
        self.schedule_ai(game_id)
        return new_record.version

    async def join(
        self, actor: Actor, game_id: str, seat: str | None, request_id: str | None = None
    ) -> int:
        if actor.user_id is None:
            raise ServiceError("unauthorized", "sign in to take a seat")
        user_id = actor.user_id

        def compute(record: GameRecord, state: GameState) -> Change:
            if record.status in ("finished", "aborted"):
                raise ServiceError("game_over", "the game is over")
            mine = seats_held_by(record.seats, user_id)
            if seat is not None and seat not in record.seats:
                raise ServiceError(
                    "bad_message", f"no seat {seat!r}; seats are {list(record.seats)}"
                )
            if mine and (seat is None or seat in mine):
                return None  # already seated there: nothing changes
            free = [name for name, value in record.seats.items() if value is None]
            chosen = seat if seat is not None else (free[0] if free else None)
            if chosen is None or record.seats[chosen] is not None:
                raise ServiceError("seat_taken", "that seat is taken" if seat else "no free seat")
            seats = {**record.seats, chosen: {"kind": "human", "user_id": user_id}}
            return seats, state, EventRecord(game_id, 0, "join", seat=chosen)

        return await self._change(actor, game_id, request_id, compute)

    def _player_seat(self, record: GameRecord, state: GameState, actor: Actor) -> str:
        """The seat `actor` plays now: the one to move if it holds it."""
        mine = seats_held_by(record.seats, actor.user_id)
        if not mine:
            if actor.user_id is None:
                raise ServiceError("unauthorized", "sign in and take a seat to play")
            raise ServiceError("forbidden", "you have no seat in this game")
        if record.status in ("finished", "aborted"):
            raise ServiceError("game_over", "the game is over")
        if record.status == "waiting":
            raise ServiceError("not_your_turn", "the game is waiting for players")
        return state.turn if state.turn in mine else mine[0]

    def _move_change(
        self, record: GameRecord, state: GameState, seat: str, raw: Any
    ) -> tuple[dict[str, Seat], GameState, EventRecord]:
        if state.turn != seat:
            raise ServiceError("not_your_turn", f"it is {state.turn}'s turn")
        try:
            move = state.parse_move(raw)
            new_state = state.apply(move)
        except IllegalMove as error:
            raise ServiceError("illegal_move", str(error)) from None
        event = EventRecord(record.game_id, 0, "move", seat=seat, move=move)
        event.san = state.move_san(move)
        return record.seats, new_state, event

    async def move(
        self,
        actor: Actor,
        game_id: str,
        raw: Any,
        *,
        version: int | None = None,
        request_id: str | None = None,
    ) -> int:
        def compute(record: GameRecord, state: GameState) -> Change:
            seat = self._player_seat(record, state, actor)
            return self._move_change(record, state, seat, raw)

        return await self._change(actor, game_id, request_id, compute, expected_version=version)

    async def resign(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        def compute(record: GameRecord, state: GameState) -> Change:
            seat = self._player_seat(record, state, actor)
            new_state = state.finish(state.other_seat(seat), "resignation")
            return record.seats, new_state, EventRecord(game_id, 0, "resign", seat=seat)

        return await self._change(actor, game_id, request_id, compute)

    async def abort(self, actor: Actor, game_id: str, request_id: str | None = None) -> int:
        """The creator (or a seated player) may abort a game before its first move."""

        def compute(record: GameRecord, state: GameState) -> Change:
            if record.status in ("finished", "aborted"):
                raise ServiceError("game_over", "the game is over")
            seated = seats_held_by(record.seats, actor.user_id)
            if actor.user_id is None:
                raise ServiceError("unauthorized", "sign in to abort a game")
            if actor.user_id != record.created_by and not seated:
                raise ServiceError("forbidden", "only the creator or a player may abort")
            if state.history:
                raise ServiceError("forbidden", "a game with moves cannot be aborted: resign")
            new_state = state.finish(None, "aborted")
            seat = seated[0] if seated else None
            return record.seats, new_state, EventRecord(game_id, 0, "abort", seat=seat)

        return await self._change(actor, game_id, request_id, compute)

    async def draw(
        self, actor: Actor, game_id: str, action: str, request_id: str | None = None
    ) -> int:
        """`offer` and `decline` change nothing (no version); `accept` ends the game."""
        if action == "accept":

            def compute(record: GameRecord, state: GameState) -> Change:
                seat = self._player_seat(record, state, actor)
                offered_by = self.draw_offers.get(game_id)
                if offered_by is None or offered_by == seat:
                    raise ServiceError("illegal_move", "there is no draw offer to accept")
                new_state = state.finish(None, "draw_agreed")
                return record.seats, new_state, EventRecord(game_id, 0, "draw", seat=seat)

            return await self._change(actor, game_id, request_id, compute)
        async with self._lock(game_id):
            record, state = await self.load(game_id)
            check_viewer(record, actor)
            seat = self._player_seat(record, state, actor)
            offered_by = self.draw_offers.get(game_id)
            if action == "offer":
                if offered_by == state.other_seat(seat):
                    raise ServiceError("illegal_move", "your opponent offered a draw: accept it")
                kind = "draw_offer"
                self.draw_offers[game_id] = seat
            else:
                if offered_by is None or offered_by == seat:
                    raise ServiceError("illegal_move", "there is no draw offer to decline")
                kind = "draw_declined"
                del self.draw_offers[game_id]
            message = {"type": kind, "game_id": game_id, "seat": seat}
            await self.broker.publish(game_id, encode(message))
            return record.version

    # -- AI -------------------------------------------------------------------------
    def schedule_ai(self, game_id: str) -> None:
        """Start the AI's search if an AI seat is to move and none runs yet."""
        entry = self._cache.get(game_id)
        if self.closing or entry is None or game_id in self._ai_tasks:
            return
        record, state = entry
        turn = _ai_turn_of(record, state)
        if turn is not None:
            self._start_ai(game_id, self._ai_turn(game_id, *turn, None))

    def _start_ai(self, game_id: str, turn: Coroutine[Any, Any, bool]) -> asyncio.Task[bool]:
        task = asyncio.create_task(turn)
        self._ai_tasks[game_id] = task
        task.add_done_callback(lambda done: self._ai_done(game_id, done))
        return task

    def _ai_done(self, game_id: str, task: asyncio.Task[bool]) -> None:
        if self._ai_tasks.get(game_id) is task:
            del self._ai_tasks[game_id]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # Never leave the game stuck: the turn is tried again, later each time.
            failures = self._ai_failures.get(game_id, 0) + 1
            self._ai_failures[game_id] = failures
            delay = min(AI_RETRY_FIRST * 2 ** (failures - 1), AI_RETRY_MAX)
            log.error(
                "ai failed game=%s attempt=%d retry_in=%.1fs error=%r",
                game_id,
                failures,
                delay,
                error,
                exc_info=error,
            )
            if not self.closing and game_id not in self._ai_tasks:
                self._start_ai(game_id, self._retry_ai(game_id, delay))
            return
        self._ai_failures.pop(game_id, None)
        # Only after a move of its own: a turn taken by another process stays there.
        if task.result():
            self.schedule_ai(game_id)  # the next AI turn (AI vs AI), if any

    async def _retry_ai(self, game_id: str, delay: float) -> bool:
        """The game's AI turn again, `delay` seconds after one failed (if still due)."""
        await asyncio.sleep(delay)
        record, state = await self.load(game_id, fresh=True)
        turn = _ai_turn_of(record, state)
        return turn is not None and await self._ai_turn(game_id, *turn, None)

    async def ai_move(
        self, actor: Actor, game_id: str, level: int | None, request_id: str | None = None
    ) -> int:
        """The AI plays the caller's seat for one move; answers once it has moved."""
        if request_id is not None and actor.user_id is not None:
            done = await self.store.find_request(game_id, actor.user_id, request_id, actor)
            if done is not None:
                return done
        record, state = await self.view(game_id, actor)
        seat = self._player_seat(record, state, actor)
        if state.turn != seat:
            raise ServiceError("not_your_turn", f"it is {state.turn}'s turn")
        if self.game_types[record.game_type].agent_provider is None:
            raise ServiceError("bad_message", f"{record.game_type} has no AI")
        if game_id in self._ai_tasks:
            raise ServiceError("not_your_turn", "the AI is already thinking for this game")
        turn = self._ai_turn(game_id, seat, level or DEFAULT_AI_MOVE_LEVEL, (actor, request_id))
        await asyncio.shield(self._start_ai(game_id, turn))
        return (await self.load(game_id))[0].version

    async def _ai_turn(
        self,
        game_id: str,
        seat: str,
        level: int,
        player: tuple[Actor, str | None] | None,
        *,
        wait: bool = True,
    ) -> bool:
        """One AI move for `seat`; True once it is stored.

        `player` is set when a player asked for it (`ai_move`). The broker's lock keeps
        it to one search per game across processes; it is refreshed through the delay
        and the search, and the store's version check drops a move that comes too late
        (a holder that stalled past its lock). Without `wait`, a lock held elsewhere
        means the turn is taken and this gives up at once.
        """
        key = f"ai:{game_id}"
        ttl = self.settings.ai_lock_ttl_seconds
        while not await self.broker.try_lock(key, ttl):
            if not wait:
                return False
            # Another process holds the turn; take over if its lock lapses.
            await asyncio.sleep(AI_LOCK_POLL)
            record, state = await self.load(game_id, fresh=True)
            if state.turn != seat or record.status != "active":
                return False
        refresher = asyncio.create_task(self._keep_lock(key, ttl))
        try:
            record, state = await self.load(game_id, fresh=True)
            if state.turn != seat or record.status != "active":
                return False
            if player is None and all(is_ai_seat(s) for s in record.seats.values()):
                delay = record.options.get("ai_delay_ms", self.settings.default_ai_delay_ms)
                await asyncio.sleep(delay / 1000)
            move = await self._search(record, state, seat, level)
            actor, request_id = player if player is not None else (Actor.SERVER, None)

            def compute(current: GameRecord, current_state: GameState) -> Change:
                return self._move_change(current, current_state, seat, move)

            try:
                await self._change(
                    actor, game_id, request_id, compute, expected_version=record.version
                )
            except ServiceError as refused:
                if player is not None:
                    raise
                # The game changed during the search (a resignation, an abort, another
                # process's move after this one's lock lapsed): drop the move.
                log.info("ai move dropped game=%s reason=%s", game_id, refused.message)
                return False
            return True
        finally:
            refresher.cancel()
            await self.broker.unlock(key)

    async def _keep_lock(self, key: str, ttl: float) -> None:
        """Refresh the lock `key` every third of its TTL until cancelled."""
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.broker.try_lock(key, ttl):
                    log.warning("ai lock lost key=%s: another process took the turn", key)
            except Exception as error:  # the broker is down: retried next time
                log.warning("ai lock refresh failed key=%s error=%r", key, error)

    async def _search(self, record: GameRecord, state: GameState, seat: str, level: int) -> Move:
        provider = self.game_types[record.game_type].agent_provider
        assert provider is not None
        agent = provider(record.game_id, level)
        game_id = record.game_id
        last_sent = 0.0

        def thinking(info: SearchInfo) -> bytes:
            return encode(
                {
                    "type": "thinking",
                    "game_id": game_id,
                    "seat": seat,
                    "depth": info.depth,
                    "score": info.score,
                    "pv": info.pv,
                    "nodes": info.nodes,
                }
            )

        def on_progress(info: SearchInfo) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= THINKING_INTERVAL:
                last_sent = now
                self._spawn(self.broker.publish(game_id, thinking(info)))

        started = time.perf_counter()
        bound = self.settings.ai_search_timeout_seconds
        try:
            async with asyncio.timeout(bound) as deadline:
                result = await agent.search(state, on_progress=on_progress)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TimeoutError(f"the AI gave no move within {bound:g} s: cancelled") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # Not asked for by this task (an engine or worker gone under the search):
            # a failure to retry, not a silent end of the turn.
            raise RuntimeError("the AI search was cancelled by its agent") from None
        self.metrics.ai_search.labels(record.game_type).observe(time.perf_counter() - started)
        await self.broker.publish(game_id, thinking(result.info))  # the final line
        return result.move

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def resume_ai_games(self) -> int:
        """Start the AI turns of stored active games that no process is taking.

        Called once at start (after a restart), and by `sweep_ai_games` every few
        seconds when several processes share the broker: a turn whose lock is free is
        one whose process died. Returns how many turns it started here.
        """
        started = 0
        for record in await self.store.active_ai_games():
            entry = self.game_types.get(record.game_type)
            if self.closing or entry is None or record.game_id in self._ai_tasks:
                continue
            turn = _ai_turn_of(record, entry.state_class.from_json(record.state))
            if turn is not None:
                self._start_ai(
                    record.game_id, self._ai_turn(record.game_id, *turn, None, wait=False)
                )
                started += 1
        return started

    def start_ai_sweep(self) -> None:
        """Adopt orphaned AI turns every AI_SWEEP_INTERVAL (several processes)."""
        self._spawn(self._sweep_ai_games())

    async def _sweep_ai_games(self) -> None:
        while not self.closing:
            await asyncio.sleep(AI_SWEEP_INTERVAL)
            try:
                adopted = await self.resume_ai_games()
            except Exception:
                log.exception("ai sweep failed")
                continue
            if adopted:
                log.info("ai sweep started %d turn(s)", adopted)

    async def shutdown(self, grace_seconds: float = 5.0) -> None:
        """Stop taking AI turns, let in-flight changes finish, cancel searches."""
        self.closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            log.warning("shutdown: %d change(s) still in flight", self._changes_in_flight)
        tasks = [*self._ai_tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _ai_turn_of(record: GameRecord, state: GameState) -> tuple[str, int] | None:
    """(seat, level) when an AI seat is to move in an active game."""
    if record.status != "active" or state.turn is None:
        return None
    seat = record.seats.get(state.turn)
    if seat is None or not is_ai_seat(seat):
        return None
    return state.turn, seat["level"]


def _replay_event(
    seats: dict[str, Seat], state: GameState, event: EventRecord
) -> tuple[dict[str, Seat], GameState]:
    """One stored event applied to (seats, state) while rebuilding old updates."""
    kind = event.kind
    if kind == "join" and event.seat is not None:
        return {**seats, event.seat: {"kind": "human", "user_id": event.user_id}}, state
    if kind == "move":
        return seats, state.apply(event.move)
    if kind == "resign" and event.seat is not None:
        return seats, state.finish(state.other_seat(event.seat), "resignation")
    if kind == "draw":
        return seats, state.finish(None, "draw_agreed")
    if kind == "abort":
        return seats, state.finish(None, "aborted")
    result = event.data.get("result") or {}  # "finish": an end decided outside the rules
    return seats, state.finish(result.get("winner"), result.get("reason", "aborted"))
