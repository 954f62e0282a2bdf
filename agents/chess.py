"""Chess players: Stockfish over UCI when it is installed, else the built-in engine.

Stockfish runs as long-lived processes, one per concurrent search slot, driven
through python-chess's native asyncio engine API; levels map to its `Skill Level`
and a time per move. The built-in engine (agents.chess_engine) is pure Python and
runs in the shared search pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import chess
import chess.engine

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from agents.chess_engine import MATE, Engine, Progress, SearchStopped
from agents.pool import PooledAgent, SearchJob, WorkerContext, effective_limit
from games import GameState
from games.chess import ChessState

log = logging.getLogger("gamesocket.ai.chess")
T = TypeVar("T")

# Seconds per move and (built-in engine) depth cap per level.
LEVEL_TIME = {1: 0.05, 2: 0.1, 3: 0.15, 4: 0.2, 5: 0.3, 6: 0.5, 7: 0.8, 8: 1.2, 9: 2.0, 10: 3.0}
LEVEL_DEPTH = {1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 64, 9: 64, 10: 64}
# Leaf noise (centipawns) of the built-in engine per level: a little randomness below 8.
LEVEL_NOISE = {1: 60, 2: 50, 3: 40, 4: 30, 5: 20, 6: 15, 7: 10, 8: 0, 9: 0, 10: 0}
PROGRESS_INTERVAL = 0.25
STOCKFISH_PATHS = ("/usr/games/stockfish", "/usr/bin/stockfish", "/usr/local/bin/stockfish")


def stockfish_path() -> str | None:
    """Stockfish from PATH or the Debian package's location; None when absent."""
    found = shutil.which("stockfish")
    if found:
        return found
    return next((path for path in STOCKFISH_PATHS if os.access(path, os.X_OK)), None)


def skill_level(level: int) -> int:
    """Our levels 1..10 onto Stockfish's Skill Level 0..20."""
    return round((level - 1) * 20 / 9)


def board_from(start_fen: str, history: list[str] | tuple[str, ...]) -> chess.Board:
    """The position with its move stack, so repetitions are judged correctly."""
    board = chess.Board(start_fen)
    for uci in history:
        board.push_uci(uci)
    return board


def _info(progress: Progress) -> SearchInfo:
    return SearchInfo(
        depth=progress.depth, score=progress.score, pv=list(progress.pv), nodes=progress.nodes
    )


# -- built-in engine --------------------------------------------------------------------


def builtin_job(
    ctx: WorkerContext,
    start_fen: str,
    history: list[str],
    limit: SearchLimit,
    noise: int,
) -> tuple[str, SearchInfo]:
    """Worker entry point: search with the built-in engine under `limit`."""

    def poll() -> None:
        if ctx.cancelled():
            raise SearchStopped

    engine = Engine(
        board_from(start_fen, history),
        deadline=None if limit.time is None else time.monotonic() + limit.time,
        max_depth=limit.depth or 64,
        max_nodes=limit.nodes,
        poll=poll,
        on_iteration=lambda progress: ctx.report(_info(progress)),
        noise=noise,
    )
    move, progress = engine.search()
    # A stop caused by cancellation must not pass for a finished search.
    ctx.check()
    return move.uci(), _info(progress)


def _builtin_best_move(board: chess.Board, time_limit: float) -> str:
    move, _ = Engine(board, deadline=time.monotonic() + time_limit).search()
    return move.uci()


# -- Stockfish --------------------------------------------------------------------------


class StockfishHost:
    """A private event loop thread that owns the Stockfish processes.

    Engines talk asyncio (python-chess's native API), but an engine process is bound
    to the loop that started it; keeping them on one loop of our own lets every caller
    (the server's loop, a test's loop, a synchronous script) share the same
    long-lived processes, one per concurrent search slot.
    """

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self._idle: list[tuple[asyncio.SubprocessTransport, chess.engine.UciProtocol]] = []
        self._all: list[tuple[asyncio.SubprocessTransport, chess.engine.UciProtocol]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stockfish", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        # A search handed to a host that is closing would never run: its caller would wait
        # forever (servers of one process share the host, and each closes it on exit).
        with self._closing:
            if self._closed:
                coro.close()
                raise RuntimeError("the Stockfish host is closed")
            return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @contextlib.asynccontextmanager
    async def engine(self) -> AsyncIterator[chess.engine.UciProtocol]:
        async with self._slots:
            if self._idle:
                entry = self._idle.pop()
            else:
                # Like the search pool's workers, an engine never outranks the server's
                # event loop for a core (nice 10; `nice` execs, so the pid is the engine's).
                nice = ["nice", "-n", "10"] if shutil.which("nice") else []
                entry = await chess.engine.popen_uci([*nice, self.path])
                await entry[1].configure({"Threads": 1, "Hash": 16})
                self._all.append(entry)
            healthy = False
            try:
                yield entry[1]
                healthy = True
            finally:
                if healthy and entry[0].get_returncode() is None:
                    self._idle.append(entry)
                else:
                    # Interrupted mid-command (cancelled): its state is unknown, so it goes.
                    self._all.remove(entry)
                    entry[0].close()

    def pids(self) -> list[int]:
        """Process ids of the running engines (idle or busy)."""
        return [transport.get_pid() for transport, _ in self._all]

    async def _quit_all(self) -> None:
        # Searches still running or waiting for a slot end first, so none starts an engine
        # after the others quit.
        searches = asyncio.all_tasks() - {asyncio.current_task()}
        for search in searches:
            search.cancel()
        await asyncio.gather(*searches, return_exceptions=True)
        for transport, protocol in self._all:
            try:
                await asyncio.wait_for(protocol.quit(), 2.0)
            except (TimeoutError, chess.engine.EngineError):
                transport.close()
        self._all.clear()
        self._idle.clear()

    def close(self) -> None:
        with self._closing:
            self._closed = True
            quitting = asyncio.run_coroutine_threadsafe(self._quit_all(), self.loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            quitting.result(timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.loop.close()


_host: StockfishHost | None = None
_host_lock = threading.Lock()


def stockfish_host(path: str) -> StockfishHost:
    global _host
    with _host_lock:
        if _host is None:
            _host = StockfishHost(path, os.cpu_count() or 1)
        return _host


def _engine_info(board: chess.Board, info: chess.engine.InfoDict) -> SearchInfo | None:
    score = info.get("score")
    if score is None or "depth" not in info:
        return None
    pv: list[Any] = [move.uci() for move in info.get("pv", [])]
    return SearchInfo(
        depth=info["depth"],
        score=score.pov(board.turn).score(mate_score=MATE) or 0,
        pv=pv,
        nodes=info.get("nodes", 0),
    )


async def _analyse(
    host: StockfishHost,
    board: chess.Board,
    level: int,
    limit: SearchLimit,
    report: Callable[[SearchInfo], None] | None,
) -> SearchResult:
    """On the host's loop: one search, with progress `report`ed at most 4 times a second."""
    engine_limit = chess.engine.Limit(time=limit.time, depth=limit.depth, nodes=limit.nodes)
    stopped = False
    async with host.engine() as engine:
        await engine.configure({"Skill Level": skill_level(level)})
        last: SearchInfo | None = None
        sent_at = time.monotonic()
        # A fresh `game` makes python-chess send `ucinewgame`: no search sees another's hash.
        with await engine.analysis(board, engine_limit, game=object()) as analysis:
            try:
                async for info in analysis:
                    current = _engine_info(board, info)
                    if current is None:
                        continue
                    last = current
                    now = time.monotonic()
                    if report is not None and now - sent_at >= PROGRESS_INTERVAL:
                        sent_at = now
                        report(current)
                best = await analysis.wait()
            except asyncio.CancelledError:
                # Stop and let the engine answer `bestmove`: then it can serve the next
                # search. One that does not answer is in an unknown state and goes.
                analysis.stop()
                try:
                    await asyncio.wait_for(analysis.wait(), 1.0)
                except (TimeoutError, chess.engine.EngineError):
                    raise asyncio.CancelledError from None
                stopped = True
    if stopped:
        raise asyncio.CancelledError
    if best.move is None:
        raise RuntimeError("Stockfish returned no move")
    move = best.move.uci()
    if last is None:
        last = SearchInfo(depth=0, score=0, pv=[move], nodes=0)
    elif not last.pv or last.pv[0] != move:
        # Below full skill Stockfish may play another move than its main line.
        last = SearchInfo(depth=last.depth, score=last.score, pv=[move], nodes=last.nodes)
    return SearchResult(move=move, info=last)


async def stockfish_search(
    path: str,
    board: chess.Board,
    *,
    level: int,
    limit: SearchLimit,
    on_progress: ProgressCallback | None,
) -> SearchResult:
    """Search on the engine thread; progress and the result come back to this loop."""
    loop = asyncio.get_running_loop()
    report = None
    if on_progress is not None:
        callback = on_progress

        def report(info: SearchInfo) -> None:
            loop.call_soon_threadsafe(callback, info)

    host = stockfish_host(path)
    # Cancelling this await cancels the search task on the engine thread.
    try:
        result = await asyncio.wrap_future(host.submit(_analyse(host, board, level, limit, report)))
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        raise RuntimeError("the Stockfish host closed during the search") from None
    if on_progress is not None:
        on_progress(result.info)
    return result


def best_move(fen: str, *, time_limit: float, engine: str = "builtin") -> str:
    """The engine's move (UCI) for `fen` after `time_limit` seconds; for scripts."""
    board = chess.Board(fen)
    if engine == "builtin":
        return _builtin_best_move(board, time_limit)
    if engine != "stockfish":
        raise ValueError(f"unknown engine {engine!r}: use 'builtin' or 'stockfish'")
    path = stockfish_path()
    if path is None:
        raise RuntimeError("Stockfish is not installed")
    host = stockfish_host(path)
    limit = SearchLimit(time=time_limit)
    return str(host.submit(_analyse(host, board, 10, limit, None)).result().move)


def close_engines() -> None:
    """Stop every Stockfish process this module started."""
    global _host
    with _host_lock:
        host, _host = _host, None
    if host is not None:
        host.close()


# -- agents -----------------------------------------------------------------------------


class BuiltinChessAgent(PooledAgent):
    """The pure-Python engine only (what ChessAgent falls back to)."""

    game_type: ClassVar[str] = "chess"

    def default_limit(self) -> SearchLimit:
        return SearchLimit(time=LEVEL_TIME[self.level], depth=LEVEL_DEPTH[self.level])

    def job(self, state: GameState, limit: SearchLimit) -> tuple[SearchJob, tuple[Any, ...]]:
        assert isinstance(state, ChessState)
        noise = LEVEL_NOISE[self.level]
        return builtin_job, (state.start_fen, list(state.history), limit, noise)


_fallback_logged = False


class ChessAgent(Agent):
    """Stockfish when present, else the built-in engine (said once in the log)."""

    game_type: ClassVar[str] = "chess"

    def __init__(self, level: int = 5, *, engine: str | None = None) -> None:
        super().__init__(level)
        if engine not in (None, "stockfish", "builtin"):
            raise ValueError(f"unknown engine {engine!r}")
        self.stockfish = stockfish_path() if engine != "builtin" else None
        if engine == "stockfish" and self.stockfish is None:
            raise RuntimeError("Stockfish is not installed")
        if self.stockfish is None and engine is None:
            global _fallback_logged
            if not _fallback_logged:
                _fallback_logged = True
                log.info("Stockfish not found; chess AI uses the built-in engine")
        self._builtin = BuiltinChessAgent(level)

    @property
    def engine(self) -> str:
        return "stockfish" if self.stockfish else "builtin"

    def default_limit(self) -> SearchLimit:
        if self.stockfish is None:
            return self._builtin.default_limit()
        return SearchLimit(time=LEVEL_TIME[self.level])

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        if self.stockfish is None:
            return await self._builtin.search(state, limit=limit, on_progress=on_progress)
        assert isinstance(state, ChessState)
        if state.result is not None:
            raise ValueError("the game is over: there is no move to search for")
        return await stockfish_search(
            self.stockfish,
            board_from(state.start_fen, state.history),
            level=self.level,
            limit=effective_limit(limit, self.default_limit()),
            on_progress=on_progress,
        )
