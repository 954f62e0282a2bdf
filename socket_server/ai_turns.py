"""AI turns: when an AI seat is to move, exactly one search runs for the game.

Reacts to committed changes (`on_committed`, an after-commit hook of the service) and
plays the AI's move through the service like any other move. Inside this process one
task per game; across processes the broker's `ai:{game_id}` lock. A failed turn is
retried with backoff, a sweep adopts the turns of a process that died, and the agents
of a game are dropped when it ends or the service forgets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import agents
from agents.base import Agent, SearchInfo
from games import GameState, Move
from socket_server import protocol
from socket_server.changes import DEFAULT_AI_LEVEL, Refused, check_turn, player_seat
from socket_server.fanout.base import Broker
from socket_server.metrics import Metrics
from socket_server.protocol import ErrorCode
from socket_server.registry import GameTypes
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store.base import Actor, GameRecord, is_ai_seat
from socket_server.timecontrol import Clock, ai_think_ms

log = logging.getLogger("gamesocket.ai")

# A process waiting for another's AI lock looks again this often (seconds).
AI_LOCK_POLL = 0.5
# With several processes: how often each looks for AI turns nobody takes (seconds).
AI_SWEEP_INTERVAL = 2.0
THINKING_INTERVAL = 0.25  # at most four `thinking` messages a second per game
# A failed AI turn is tried again after this many seconds, doubled per failure up to the cap.
AI_RETRY_FIRST = 0.5
AI_RETRY_MAX = 30.0

# Who asked for an AI move: a player (`ai_move`) with their request id, or None: the
# server, for an AI seat.
Asker = tuple[Actor, str | None] | None


def _think_ms(record: GameRecord, seat: str) -> int | None:
    """What the AI may spend on this move by its clock (None: untimed game)."""
    if record.clock is None:
        return None
    return ai_think_ms(Clock.from_json(record.clock), seat, int(time.time() * 1000))


def ai_turn_of(record: GameRecord, state: GameState) -> tuple[str, int] | None:
    """(seat, level) when an AI seat is to move in an active game."""
    turn = state.turn if record.status == "active" else None  # worked out once: every change asks
    if turn is None:
        return None
    seat = record.seats.get(turn)
    if seat is None or not is_ai_seat(seat):
        return None
    return turn, seat["level"]


class AiTurns:
    def __init__(
        self,
        service: GameService,
        broker: Broker,
        settings: Settings,
        game_types: GameTypes,
        metrics: Metrics,
    ) -> None:
        self.service = service
        self.broker = broker
        self.settings = settings
        self.game_types = game_types
        self.metrics = metrics
        self.agents: dict[str, dict[int, Agent]] = {}  # game_id -> level -> agent
        self._tasks: dict[str, asyncio.Task[bool]] = {}
        self._failures: dict[str, int] = {}  # game_id -> failed AI turns in a row
        self._background: set[asyncio.Task[Any]] = set()
        self.closing = False
        service.on_commit(self.on_committed)
        service.on_forget(self.release)

    # -- agents -----------------------------------------------------------------------
    def agent_for(self, game_id: str, game_type: str, level: int) -> Agent:
        """The game's agent at `level` (one per game and level, built on first use)."""
        entry = self.game_types.get(game_type)
        if entry is None or entry.agent_builder is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"{game_type} has no AI")
        per_level = self.agents.setdefault(game_id, {})
        agent = per_level.get(level)
        if agent is None:
            agent = per_level[level] = entry.agent_builder(level)
        return agent

    def release(self, game_id: str | None = None) -> None:
        """Drop the agents of one game (it ended, or was forgotten) or of every game."""
        if game_id is None:
            self.agents.clear()
        else:
            self.agents.pop(game_id, None)

    # -- scheduling -------------------------------------------------------------------
    def on_committed(self, record: GameRecord, state: GameState) -> None:
        """After a change: start the AI's search if an AI seat is to move now."""
        if record.status in ("finished", "aborted"):
            self.release(record.game_id)
            return
        if self.closing or record.game_id in self._tasks:
            return
        turn = ai_turn_of(record, state)
        if turn is not None:
            self._start(record.game_id, self._turn(record.game_id, *turn, None))

    def _start(self, game_id: str, turn: Coroutine[Any, Any, bool]) -> asyncio.Task[bool]:
        task = asyncio.create_task(turn)
        self._tasks[game_id] = task
        task.add_done_callback(lambda done: self._done(game_id, done))
        return task

    def _done(self, game_id: str, task: asyncio.Task[bool]) -> None:
        if self._tasks.get(game_id) is task:
            del self._tasks[game_id]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._retry_later(game_id, error)
            return
        self._failures.pop(game_id, None)
        # Only after a move of its own: a turn taken by another process stays there.
        # Its own move's hook ran while this task was registered; look again now.
        if task.result():
            self._schedule_from_cache(game_id)

    def _schedule_from_cache(self, game_id: str) -> None:
        cached = self.service.cached(game_id)
        if cached is not None:
            self.on_committed(*cached)

    def _retry_later(self, game_id: str, error: BaseException) -> None:
        """Never leave the game stuck: the turn is tried again, later each time."""
        failures = self._failures.get(game_id, 0) + 1
        self._failures[game_id] = failures
        delay = min(AI_RETRY_FIRST * 2 ** (failures - 1), AI_RETRY_MAX)
        log.error(
            "ai failed game=%s attempt=%d retry_in=%.1fs error=%r",
            game_id,
            failures,
            delay,
            error,
            exc_info=error,
        )
        if not self.closing and game_id not in self._tasks:
            self._start(game_id, self._retry(game_id, delay))

    async def _retry(self, game_id: str, delay: float) -> bool:
        """The game's AI turn again, `delay` seconds after one failed (if still due)."""
        await asyncio.sleep(delay)
        record, state = await self.service.load(game_id, fresh=True)
        turn = ai_turn_of(record, state)
        return turn is not None and await self._turn(game_id, *turn, None)

    async def ai_move(
        self, actor: Actor, game_id: str, level: int | None, request_id: str | None = None
    ) -> int:
        """The AI plays the caller's seat for one move; answers once it has moved."""
        if request_id is not None and actor.user_id is not None:
            done = await self.service.store.find_request(game_id, actor.user_id, request_id, actor)
            if done is not None:
                return done
        record, state = await self.service.view(game_id, actor)
        seat = player_seat(record, state, actor)
        check_turn(state, seat)
        entry = self.game_types.get(record.game_type)
        if entry is None or entry.agent_builder is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"{record.game_type} has no AI")
        if game_id in self._tasks:
            raise Refused(ErrorCode.NOT_YOUR_TURN, "the AI is already thinking for this game")
        turn = self._turn(game_id, seat, level or DEFAULT_AI_LEVEL, (actor, request_id))
        await asyncio.shield(self._start(game_id, turn))
        return (await self.service.load(game_id))[0].version

    # -- one turn ---------------------------------------------------------------------
    async def _turn(
        self, game_id: str, seat: str, level: int, asker: Asker, *, wait: bool = True
    ) -> bool:
        """One AI move for `seat`; True once it is stored.

        The broker's lock keeps it to one search per game across processes; it is
        refreshed through the delay and the search, and the store's version check
        drops a move that comes too late (a holder that stalled past its lock). Without
        `wait`, a lock held elsewhere means the turn is taken and this gives up at once.
        """
        key = f"ai:{game_id}"
        ttl = self.settings.ai_lock_ttl_seconds
        if not await self._take_lock(key, ttl, game_id, seat, wait):
            return False
        refresher = asyncio.create_task(self._keep_lock(key, ttl))
        try:
            record, state = await self.service.load(game_id, fresh=True)
            if state.turn != seat or record.status != "active":
                return False
            think_ms = _think_ms(record, seat)
            paced = await self._pace(record, asker, think_ms)
            left = None if think_ms is None else think_ms - paced
            move = await self._search(record, state, seat, level, left)
            return await self._play(record, seat, move, asker)
        finally:
            refresher.cancel()
            await self._unlock(key)

    async def _unlock(self, key: str) -> None:
        """Release the AI lock; one the broker cannot release lapses after its TTL.

        Never an error of the turn: its move is stored (and published) already, and a
        failed turn would be retried and logged as a failure.
        """
        try:
            await self.broker.unlock(key)
        except Exception as error:
            log.warning("ai lock release failed key=%s error=%r", key, error)

    async def _take_lock(self, key: str, ttl: float, game_id: str, seat: str, wait: bool) -> bool:
        while not await self.broker.try_lock(key, ttl):
            if not wait:
                return False
            # Another process holds the turn; take over if its lock lapses.
            await asyncio.sleep(AI_LOCK_POLL)
            record, state = await self.service.load(game_id, fresh=True)
            if state.turn != seat or record.status != "active":
                return False
        return True

    async def _pace(self, record: GameRecord, asker: Asker, think_ms: int | None) -> int:
        """AI-vs-AI games wait `ai_delay_ms` before each move, so people can watch; on a
        clock at most a third of the move's time. How long it waited (ms)."""
        if asker is not None or not all(is_ai_seat(s) for s in record.seats.values()):
            return 0
        delay = int(record.options.get("ai_delay_ms", self.settings.default_ai_delay_ms))
        if think_ms is not None:
            delay = min(delay, think_ms // 3)
        await asyncio.sleep(delay / 1000)
        return delay

    async def _play(self, record: GameRecord, seat: str, move: Move, asker: Asker) -> bool:
        actor, request_id = asker if asker is not None else (Actor.SERVER, None)
        try:
            await self.service.move_for_seat(
                actor, record.game_id, seat, move, version=record.version, request_id=request_id
            )
        except Refused as refused:
            # A store that cannot write now (a full disk): the turn is retried later.
            if asker is not None or refused.code == ErrorCode.UNAVAILABLE:
                raise
            # The game changed during the search (a resignation, an abort, another
            # process's move after this one's lock lapsed): drop the move.
            log.info("ai move dropped game=%s reason=%s", record.game_id, refused.message)
            return False
        return True

    async def _keep_lock(self, key: str, ttl: float) -> None:
        """Refresh the lock `key` every third of its TTL until cancelled."""
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.broker.try_lock(key, ttl):
                    log.warning("ai lock lost key=%s: another process took the turn", key)
            except Exception as error:  # the broker is down: retried next time
                log.warning("ai lock refresh failed key=%s error=%r", key, error)

    async def _search(
        self, record: GameRecord, state: GameState, seat: str, level: int, think_ms: int | None
    ) -> Move:
        """The agent's move; on a clock its search ends within `think_ms`."""
        agent = self.agent_for(record.game_id, record.game_type, level)
        limit = None if think_ms is None else agent.limit_within(think_ms / 1000)
        game_id = record.game_id
        last_sent = 0.0

        def thinking(info: SearchInfo) -> bytes:
            return protocol.thinking(game_id, seat, info.depth, info.score, info.pv, info.nodes)

        def on_progress(info: SearchInfo) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= THINKING_INTERVAL:
                last_sent = now
                self._spawn(self._send_thinking(game_id, thinking(info)))

        started = time.perf_counter()
        result = await self._bounded(agent.search(state, limit=limit, on_progress=on_progress))
        self.metrics.ai_search.labels(record.game_type).observe(time.perf_counter() - started)
        await self._send_thinking(game_id, thinking(result.info))  # the final line
        return result.move

    async def _send_thinking(self, game_id: str, data: bytes) -> None:
        """`thinking` is progress only: one the broker refuses is dropped, not the move."""
        try:
            await self.broker.publish(game_id, data)
        except Exception as error:
            log.warning("thinking not published game=%s error=%r", game_id, error)

    async def _bounded(self, search: Coroutine[Any, Any, Any]) -> Any:
        """The search's result within `ai_search_timeout_seconds`, else an error."""
        bound = self.settings.ai_search_timeout_seconds
        try:
            async with asyncio.timeout(bound) as deadline:
                return await search
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

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- after a restart, and across processes ------------------------------------------
    async def resume(self) -> int:
        """Start the AI turns of stored active games that no process is taking.

        Called once at start (after a restart), and every AI_SWEEP_INTERVAL when
        several processes share the broker: a turn whose lock is free is one whose
        process died. Returns how many turns it started here.
        """
        started = 0
        for record in await self.service.store.active_ai_games():
            if self.closing or record.game_id in self._tasks:
                continue
            if record.game_type not in self.game_types:
                continue
            turn = ai_turn_of(record, self.game_types.load_state(record.game_type, record.state))
            if turn is not None:
                self._start(record.game_id, self._turn(record.game_id, *turn, None, wait=False))
                started += 1
        return started

    def warm_up(self) -> None:
        """Start the search workers now, in the background: on a clock, an AI's first
        move must not pay for their start."""
        if any(entry.agent_builder is not None for entry in self.game_types):
            self._spawn(self._warm_up())

    async def _warm_up(self) -> None:
        try:
            await agents.warm_up()
        except Exception as error:  # a search starts its workers itself all the same
            log.warning("search workers did not start ahead: %r", error)

    def start_sweep(self) -> None:
        """Adopt orphaned AI turns every AI_SWEEP_INTERVAL (several processes)."""
        self._spawn(self._sweep())

    async def _sweep(self) -> None:
        while not self.closing:
            await asyncio.sleep(AI_SWEEP_INTERVAL)
            try:
                adopted = await self.resume()
            except Exception:
                log.exception("ai sweep failed")
                continue
            if adopted:
                log.info("ai sweep started %d turn(s)", adopted)

    def stop_taking_turns(self) -> None:
        self.closing = True

    async def shutdown(self) -> None:
        """Cancel the searches and background sends; drop every agent."""
        self.closing = True
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.release()
