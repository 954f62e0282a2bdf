"""Clock timers: a flag falls by the server's own timer, with nobody connected.

One timer handle per running clock (the event loop's timer heap, no polling loop per
game), armed after every committed change (an after-commit hook of the service), on
start for every stored active timed game (time that passed while the server was down
counts: an overdue flag falls at once), and, with several processes, by a sweep that
also arms the games other processes committed. When it fires, the service stores the
timeout with the expected version: of every process that sees the flag, the store's
version check lets exactly one store it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from games import GameState
from socket_server.changes import Refused
from socket_server.protocol import ErrorCode
from socket_server.service import GameService
from socket_server.store.base import GameRecord
from socket_server.timecontrol import Clock

log = logging.getLogger("gamesocket.clocks")

SWEEP_INTERVAL = 5.0  # seconds, with several processes
RETRY_DELAY = 0.5  # seconds: a flag whose storing failed is tried again


class ClockTimers:
    def __init__(self, service: GameService) -> None:
        self.service = service
        self._timers: dict[str, tuple[int, asyncio.TimerHandle]] = {}  # game -> (version, handle)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        service.on_commit(self.on_committed)

    def on_committed(self, record: GameRecord, _state: GameState) -> None:
        self.arm(record)

    def arm(self, record: GameRecord) -> None:
        """Set the game's timer to its running clock's flag (or clear it)."""
        armed = self._timers.get(record.game_id)
        if armed is not None:
            if armed[0] > record.version:
                return  # a newer version's timer is set already
            self._cancel(record.game_id)
        flag_at = None
        if record.status == "active" and record.clock is not None:
            flag_at = Clock.from_json(record.clock).flag_at_ms()
        if flag_at is None or self.closing:
            return
        delay = max(0.0, flag_at / 1000 - time.time())
        handle = asyncio.get_running_loop().call_later(
            delay, self._fire, record.game_id, record.version
        )
        self._timers[record.game_id] = (record.version, handle)

    def _cancel(self, game_id: str) -> None:
        armed = self._timers.pop(game_id, None)
        if armed is not None:
            armed[1].cancel()

    def _fire(self, game_id: str, version: int) -> None:
        if self._timers.get(game_id, (None,))[0] == version:
            del self._timers[game_id]
        task = asyncio.create_task(self._flag(game_id, version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flag(self, game_id: str, version: int) -> None:
        """Store the flag; tried again every RETRY_DELAY while the store fails (the
        timer is gone: nothing else would store it on a lone process)."""
        while not self.closing:
            try:
                if await self.service.flag(game_id, version) is None:
                    # The game moved on, or time remained: arm from the store.
                    record, _ = await self.service.load(game_id, fresh=True)
                    self.arm(record)
                return
            except Refused as refusal:
                if refusal.code is ErrorCode.NOT_FOUND:
                    return
                error: Exception = refusal
            except Exception as failure:
                error = failure
            log.warning("flag failed game=%s version=%d error=%r", game_id, version, error)
            await asyncio.sleep(RETRY_DELAY)

    async def resume(self) -> int:
        """Arm the timers of every stored active timed game; how many."""
        games = await self.service.store.active_timed_games()
        for record in games:
            self.arm(record)
        return len(games)

    def start_sweep(self) -> None:
        """Arm the timed games of other processes too, every SWEEP_INTERVAL."""
        task = asyncio.create_task(self._sweep())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep(self) -> None:
        while not self.closing:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.resume()
            except Exception:
                log.exception("clock sweep failed")

    async def shutdown(self) -> None:
        self.closing = True
        for game_id in list(self._timers):
            self._cancel(game_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
