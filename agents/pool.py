"""Run CPU-bound searches in worker processes, off the event loop.

Each worker is a spawned process with a duplex pipe and a shared cancel flag. The
loop watches the pipe with `add_reader`, so progress costs nothing until a message
arrives; a cancelled search raises at once on the loop while the worker notices the
flag within a few thousand nodes and then takes the next job.

A job is a module-level function `fn(ctx, *args)` returning `(move, SearchInfo)`;
`ctx` gives it the cancel check and a throttled progress report.

Workers are spawned, not forked (forking a process that runs threads, as the server
does, can copy a held lock). Spawning re-imports the main module, so a script that
searches must keep its top-level code under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import time
from abc import abstractmethod
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from games import GameState

# Intermediate progress goes out at most this often (the protocol says a few per second).
PROGRESS_INTERVAL = 0.25


# A worker job: `fn(ctx, *args) -> (move, final SearchInfo)`.
SearchJob = Callable[..., tuple[Any, SearchInfo]]


class SearchCancelled(Exception):
    """Raised inside a worker when the loop asked the search to stop."""


class WorkerContext:
    """What a search function sees of its worker: cancellation and progress."""

    def __init__(self, conn: Connection, cancel_flag: Synchronized[int]) -> None:
        self._conn = conn
        self._flag = cancel_flag
        self._last_report = 0.0

    def begin(self) -> None:
        """A new job starts: its first report waits a full interval."""
        self._last_report = time.monotonic()

    def cancelled(self) -> bool:
        return bool(self._flag.value)

    def check(self) -> None:
        if self._flag.value:
            raise SearchCancelled

    def report(self, info: SearchInfo) -> None:
        """Send progress to the loop, unless some went out less than an interval ago."""
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            self._conn.send(("progress", info))


def _worker_main(conn: Connection, cancel_flag: Synchronized[int]) -> None:
    # The loop's process decides priority; a worker never outranks the server.
    with contextlib.suppress(OSError):
        os.nice(10)
    ctx = WorkerContext(conn, cancel_flag)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        ctx.begin()
        try:
            conn.send(("done", fn(ctx, *args)))
        except SearchCancelled:
            conn.send(("cancelled", None))
        except Exception as error:  # the loop re-raises it for the caller
            conn.send(("error", error))


class _Worker:
    def __init__(self, mp: Any) -> None:
        # The loop whose reader watches this worker's pipe while it runs a job.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cancel_flag: Synchronized[int] = mp.Value("b", 0, lock=False)
        self.conn, child_conn = mp.Pipe(duplex=True)
        self.process = mp.Process(
            target=_worker_main, args=(child_conn, self.cancel_flag), daemon=True
        )
        self.process.start()
        child_conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=1.0)
        self.conn.close()


class SearchPool:
    """A fixed number of worker processes, started lazily, shared by every agent."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or os.cpu_count() or 1
        self._mp = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._starting = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def started(self) -> int:
        """Worker processes running now (at most `size`)."""
        return len(self._all)

    async def _acquire(self) -> _Worker:
        self._reclaim_orphans()
        while not self._idle:
            if len(self._all) + self._starting < self.size:
                # Spawning imports the search modules: do it off the loop.
                self._starting += 1
                try:
                    worker = await asyncio.to_thread(_Worker, self._mp)
                finally:
                    self._starting -= 1
                self._all.append(worker)
                return worker
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # A wake-up meant for this caller goes to the next one instead.
                self._wake()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return self._idle.pop()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def _reclaim_orphans(self) -> None:
        """Take back workers whose job was cancelled on a loop that has since closed."""
        for worker in list(self._all):
            if worker.loop is None or not worker.loop.is_closed():
                continue
            worker.loop = None
            worker.cancel_flag.value = 1
            try:
                # A cancelled job answers within a few thousand nodes; drain to its end.
                while True:
                    if not worker.conn.poll(1.0):
                        raise TimeoutError
                    if worker.conn.recv()[0] != "progress":
                        break
            except (EOFError, OSError):  # TimeoutError included: a stuck worker goes
                self._discard(worker)
                continue
            worker.cancel_flag.value = 0
            self._release(worker)

    def _release(self, worker: _Worker) -> None:
        worker.loop = None
        if not worker.process.is_alive():
            self._discard(worker)
        else:
            self._idle.append(worker)
        self._wake()

    def _discard(self, worker: _Worker) -> None:
        with contextlib.suppress(ValueError):
            self._all.remove(worker)
        worker.stop()
        self._wake()  # a waiter may start a replacement

    async def run(
        self,
        fn: SearchJob,
        *args: Any,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        """Run `fn(ctx, *args)` in a worker; progress reaches `on_progress` on the loop."""
        worker = await self._acquire()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[SearchResult] = loop.create_future()
        fd = worker.conn.fileno()

        def readable() -> None:
            # Drain every complete message; the worker writes small ones whole.
            try:
                while worker.conn.poll():
                    kind, payload = worker.conn.recv()
                    if kind == "progress":
                        if on_progress is not None and not finished.done():
                            on_progress(payload)
                        continue
                    loop.remove_reader(fd)
                    worker.cancel_flag.value = 0
                    self._settle(finished, kind, payload, on_progress)
                    self._release(worker)
                    return
            except (EOFError, OSError) as error:
                loop.remove_reader(fd)
                self._discard(worker)
                if not finished.done():
                    finished.set_exception(RuntimeError(f"search worker died: {error!r}"))

        worker.cancel_flag.value = 0
        try:
            worker.conn.send((fn, args))
        except OSError as error:
            self._discard(worker)
            raise RuntimeError(f"search worker died: {error!r}") from error
        worker.loop = loop
        loop.add_reader(fd, readable)
        try:
            return await asyncio.shield(finished)
        except asyncio.CancelledError:
            # The worker finishes its job (reporting "cancelled") and then rejoins the
            # pool; whatever it answers is dropped, as nobody waits for it any more.
            worker.cancel_flag.value = 1
            finished.cancel()
            raise

    @staticmethod
    def _settle(
        finished: asyncio.Future[SearchResult],
        kind: str,
        payload: Any,
        on_progress: ProgressCallback | None,
    ) -> None:
        if finished.done():
            return
        if kind == "done":
            move, info = payload
            if on_progress is not None:
                on_progress(info)
            finished.set_result(SearchResult(move=move, info=info))
        elif kind == "error":
            finished.set_exception(payload)
        else:
            # Stopped by `shutdown` (a caller's own cancel settled `finished` first): an
            # error, so the caller is not left taking it for a cancel it never asked for.
            finished.set_exception(RuntimeError("the search pool shut down during the search"))

    async def warm_up(self) -> None:
        """Start every worker now and let each import the searches: a first move on a
        clock then costs no process start (1-2 s here)."""
        missing = self.size - len(self._all) - self._starting
        await asyncio.gather(*(self.run(_warm_job) for _ in range(max(0, missing))))

    def shutdown(self) -> None:
        for worker in self._all:
            worker.cancel_flag.value = 1
            worker.stop()
        self._all.clear()
        self._idle.clear()


def _warm_job(ctx: WorkerContext) -> tuple[Any, SearchInfo]:
    """A worker's first job: import every built-in search, so no search pays for it."""
    for module in ("agents.chess", "agents.connect4", "agents.tictactoe"):
        importlib.import_module(module)
    return None, SearchInfo(depth=0, score=0)


_pool: SearchPool | None = None


def get_pool() -> SearchPool:
    global _pool
    if _pool is None:
        _pool = SearchPool()
    return _pool


def shutdown_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown()
        _pool = None


def effective_limit(limit: SearchLimit | None, default: SearchLimit) -> SearchLimit:
    """The caller's limit, or the level's when the caller sets none (no endless searches)."""
    if limit is None or limit == SearchLimit():
        return default
    return limit


class PooledAgent(Agent):
    """An agent whose search is a pure-Python function run in the shared pool."""

    @abstractmethod
    def job(self, state: GameState, limit: SearchLimit) -> tuple[SearchJob, tuple[Any, ...]]:
        """The worker function and its (picklable, plain) arguments for this search."""

    @abstractmethod
    def default_limit(self) -> SearchLimit:
        """The limit this agent's level implies when the caller gives none."""

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        if state.result is not None or not state.legal_moves():
            raise ValueError("the game is over: there is no move to search for")
        fn, args = self.job(state, effective_limit(limit, self.default_limit()))
        return await get_pool().run(fn, *args, on_progress=on_progress)
