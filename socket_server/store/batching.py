"""Group commit: the calls that arrive together are handled together, each with its outcome.

A `Batcher` hands `handle` every item submitted while `concurrency` earlier batches were
under way (or in the same turn of the event loop), at most `max_size` at a time. An idle
batcher starts a batch at once, so a lone call waits for nothing; under load the calls
pile up behind the running batches and go in bigger ones. `handle` returns one outcome
per item, in order: a value for its caller, or an exception raised to that caller alone.
If `handle` raises, every caller of that batch gets the error. No caller hears back
before its whole batch is handled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Handler = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class Batcher(Generic[T, R]):
    def __init__(self, handle: Handler[T, R], *, concurrency: int = 1, max_size: int = 64):
        if concurrency < 1 or max_size < 1:
            raise ValueError("concurrency and max_size must be at least 1")
        self._handle = handle
        self._concurrency = concurrency
        self._max_size = max_size
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._running = 0  # batches under way (or about to start)
        self._tasks: set[asyncio.Task[None]] = set()
        # The loop of the last call: Python 3.11's `get_running_loop` makes a getpid
        # system call, once per change otherwise.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """`item`'s outcome, once the batch it went in was handled."""
        loop = self._loop
        if loop is None or not loop.is_running():  # first call, or a new loop
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._running < self._concurrency:
            self._running += 1
            task = loop.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                size = min(self._max_size, len(self._waiting))
                await self._settle([self._waiting.popleft() for _ in range(size)])
        except BaseException:
            # Cancelled (the loop is closing): with no other batch under way to take
            # them, the calls queued behind this one would wait forever.
            if self._running == 1:
                while self._waiting:
                    self._waiting.popleft()[1].cancel()
            raise
        finally:  # no await between the empty queue and this: no call is left behind
            self._running -= 1

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._handle([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as error:  # the batch failed as a whole: so does every call
            for _, future in batch:
                _settle_future(future, error)
            return
        except BaseException:  # cancelled (the loop is closing): so is every call
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle_future(future, outcome)

    async def drain(self) -> None:
        """Returns once every batch under way (and everything queued) is handled."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def _settle_future(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # its caller was cancelled: the outcome reaches nobody
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
