"""The embedded store's writer in a process of its own: every write runs there.

Why a process and not a thread: the writer's Python work (binding each row, encoding
its JSON) needs the GIL the event loop needs too. As a thread it took the loop's turn
for every change and the loop stood still a fifth of the time (docs/benchmarks.md);
across a pipe the loop only frames a batch and goes on.

The pipe, both ways: frames of a 4-byte little-endian length and a pickle. A call is
`(fn, args)`, `fn` a module-level function that takes the writer connection first; the
process answers each call, in the order they came, with `(True, result)` or
`(False, exception)`. The first call opens the connection (`opener(path)`, which
migrates the file too); every later one is given it.

The process ignores SIGINT and SIGTERM: it ends when its parent closes the pipe (a
clean close, or the parent's death, `kill -9` included), after the call it is
running, so a commit under way is never cut. If it dies anyway, the calls it had not
answered fail with `WriterLost` (their outcome is unknown: the service looks in the
store for a change it sent) and the next call starts a new process.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import signal
import sqlite3
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

log = logging.getLogger("gamesocket.store")

_LENGTH = struct.Struct("<I")
# How long a closed writer may take to finish its last call before it is killed.
CLOSE_SECONDS = 10.0


class WriterLost(RuntimeError):
    """The writer process ended before it answered: the call's outcome is unknown."""


def _frame(value: Any) -> bytes:
    data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class _Answers(asyncio.SubprocessProtocol):
    """Reads the process's answers and resolves the waiting calls, oldest first."""

    def __init__(self) -> None:
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self.ended = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._buffer += data
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + size
            if len(buffer) < end:
                break
            ok, value = pickle.loads(buffer[start + _LENGTH.size : end])
            start = end
            waiter = self.waiting.popleft()
            if not waiter.done():  # its caller may have been cancelled
                waiter.set_result(value) if ok else waiter.set_exception(value)
        del buffer[:start]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd != 1:
            return
        # Its answers pipe is at its end: every answer sent has been read.
        self.ended = True
        lost = WriterLost("the SQLite writer process ended before it answered")
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(lost)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class WriterProcess:
    """The parent's handle on the writer process of one SQLite file."""

    def __init__(self, path: Path, opener: Callable[[Path], sqlite3.Connection]) -> None:
        self.path = path
        self.opener = opener  # module-level: the process is sent it by reference
        self._transport: asyncio.SubprocessTransport | None = None
        self._answers: _Answers | None = None
        self._restarting = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running process's id (None while none runs)."""
        return None if self._transport is None else self._transport.get_pid()

    async def start(self) -> None:
        """Start the process; raises what opening the file raised there."""
        loop = asyncio.get_running_loop()
        command = [sys.executable, "-m", __name__, str(self.path)]  # the path names it in ps
        transport, answers = await loop.subprocess_exec(
            _Answers, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None,
        )  # fmt: skip
        self._transport, self._answers = transport, answers
        try:
            await self._send(self.opener, (self.path,))
        except BaseException:
            await self._stop()
            raise

    async def call(self, fn: Any, *args: Any) -> Any:
        """`fn(connection, *args)` in the process (started again if it had ended)."""
        if self._answers is None or self._answers.ended:
            await self._restart()
        return await self._send(fn, args)

    async def _send(self, fn: Any, args: tuple[Any, ...]) -> Any:
        assert self._transport is not None and self._answers is not None
        # A write transport (not always an asyncio class: uvloop has its own).
        pipe = cast(asyncio.WriteTransport, self._transport.get_pipe_transport(0))
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        frame = _frame((fn, args))
        self._answers.waiting.append(answer)
        pipe.write(frame)
        return await answer

    async def _restart(self) -> None:
        async with self._restarting:  # one new process, however many calls found it gone
            if self._closed:
                raise RuntimeError("the SQLite writer is closed")
            if self._answers is not None and not self._answers.ended:
                return
            log.error("the SQLite writer process of %s had ended: starting another", self.path)
            await self._stop()
            await self.start()

    async def close(self) -> None:
        """Let the process finish what it was sent and end; no call is taken after."""
        self._closed = True
        await self._stop()

    async def _stop(self) -> None:
        transport, answers = self._transport, self._answers
        self._transport = self._answers = None
        if transport is None or answers is None:
            return
        pipe = transport.get_pipe_transport(0)
        if pipe is not None:
            pipe.close()  # the process reads the end of its calls and ends
        try:
            await asyncio.wait_for(asyncio.shield(answers.exited), CLOSE_SECONDS)
        except TimeoutError:
            log.error("the SQLite writer process of %s did not end: killed", self.path)
            transport.kill()
            await answers.exited
        finally:
            transport.close()


# -- the process -------------------------------------------------------------------------
def _read_exactly(source: IO[bytes], size: int) -> bytes | None:
    data = source.read(size)
    return data if data is not None and len(data) == size else None


def _calls(source: IO[bytes]) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """The calls sent, until the parent closes the pipe."""
    while (header := _read_exactly(source, _LENGTH.size)) is not None:
        body = _read_exactly(source, _LENGTH.unpack(header)[0])
        if body is None:
            return
        call: tuple[Any, tuple[Any, ...]] = pickle.loads(body)
        yield call


def _serve(calls: IO[bytes], answers: IO[bytes]) -> None:
    def answer(value: tuple[bool, Any]) -> None:
        try:
            frame = _frame(value)
        except Exception as error:  # an answer pickle cannot carry
            frame = _frame((False, RuntimeError(f"unpicklable answer: {error!r}")))
        answers.write(frame)
        answers.flush()

    received = _calls(calls)
    opener, opener_args = next(received, (None, ()))
    if opener is None:
        return
    try:  # the first call opens the connection the others are given
        conn = opener(*opener_args)
    except Exception as error:
        answer((False, error))
        return
    answer((True, None))
    try:
        for fn, args in received:
            try:
                answer((True, fn(conn, *args)))
            except Exception as error:
                answer((False, error))
    finally:
        conn.close()


def main() -> None:
    # Ended by the parent closing the pipe, not by the signals sent to its process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers leave on a private copy of stdout; fd 1 goes to stderr, so a stray print
    # can never corrupt the pipe.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
