"""Spectator sockets spread over several client processes.

One Python process cannot read thousands of sockets fast enough to measure a server
without becoming the bottleneck, so a `SpectatorPool` runs k worker processes, each
holding its share of the sockets on its own event loop. Arrival times come from
`time.monotonic_ns()`: CLOCK_MONOTONIC is system-wide on Linux, so they compare
directly with the send times taken in the main process.

Workers take commands over a pipe: `connect` more sockets, `collect` what arrived once
every socket reached a version, `close`. Each reply is a plain picklable dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.client import decode, open_socket

# Handshakes in flight at once per worker: enough to fill the server's accept
# backlog without a thundering herd of timeouts.
CONNECT_CONCURRENCY = 64
COMMAND_TIMEOUT = 300.0


@dataclass
class Spectator:
    ws: ClientConnection
    base: int | None = None  # version of the first `state`
    last: int | None = None  # version of the latest `state` or `update`
    gaps: int = 0  # updates that did not follow the previous version by exactly 1
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (version, monotonic ns)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # first `state`, or closed
    goal: int | None = None  # the version `collect` waits for
    reached: asyncio.Event = field(default_factory=asyncio.Event)  # goal seen, or closed
    close_code: int | None = None


async def _read(spectator: Spectator) -> None:
    try:
        async for raw in spectator.ws:
            arrived = time.monotonic_ns()
            message = decode(raw)
            if message.type == "update" and message.version is not None:
                if spectator.last is not None and message.version != spectator.last + 1:
                    spectator.gaps += 1
                spectator.last = message.version
                spectator.arrivals.append((message.version, arrived))
                if spectator.goal is not None and message.version >= spectator.goal:
                    spectator.reached.set()
            elif message.type == "state" and message.version is not None:
                if spectator.base is None:
                    spectator.base = message.version
                spectator.last = message.version
                spectator.ready.set()
    except ConnectionClosed as closed:
        spectator.close_code = closed.rcvd.code if closed.rcvd else 1006
    finally:
        spectator.ready.set()
        spectator.reached.set()


class Worker:
    def __init__(self) -> None:
        self.spectators: list[Spectator] = []
        self.readers: list[asyncio.Task[None]] = []

    async def connect(self, urls: list[str]) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        errors: list[str] = []

        async def one(url: str) -> None:
            async with gate:
                try:
                    ws = await open_socket(url)
                except (OSError, TimeoutError, ConnectionClosed, ValueError) as error:
                    errors.append(f"{type(error).__name__}: {error}")
                    return
                spectator = Spectator(ws)
                self.spectators.append(spectator)
                self.readers.append(asyncio.create_task(_read(spectator)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(spectator.ready.wait(), COMMAND_TIMEOUT)

        await asyncio.gather(*(one(url) for url in urls))
        live = [s for s in self.spectators if s.close_code is None and s.base is not None]
        return {"open": len(live), "failed": len(errors), "errors": errors[:5]}

    async def collect(self, last_version: int, wait_seconds: float) -> dict[str, Any]:
        """Wait (bounded) until every socket saw `last_version`; report what arrived."""
        waits = []
        for spectator in self.spectators:
            spectator.goal = last_version
            if (spectator.last or 0) >= last_version or spectator.close_code is not None:
                spectator.reached.set()
            waits.append(asyncio.create_task(spectator.reached.wait()))
        if waits:
            _, pending = await asyncio.wait(waits, timeout=wait_seconds)
            for task in pending:
                task.cancel()
        arrivals: dict[int, list[int]] = {}
        complete = 0
        for spectator in self.spectators:
            versions = [version for version, _ in spectator.arrivals]
            start = (spectator.base or 0) + 1
            if spectator.gaps == 0 and versions == list(range(start, last_version + 1)):
                complete += 1
            for version, arrived in spectator.arrivals:
                arrivals.setdefault(version, []).append(arrived)
            spectator.arrivals.clear()
        closed = sum(1 for s in self.spectators if s.close_code is not None)
        return {
            "sockets": len(self.spectators),
            "complete": complete,
            "gaps": sum(s.gaps for s in self.spectators),
            "closed": closed,
            "arrivals": arrivals,
        }

    async def close(self) -> dict[str, Any]:
        async def one(spectator: Spectator) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(spectator.ws.close(), 5)

        await asyncio.gather(*(one(s) for s in self.spectators))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        return {"closed": len(self.spectators)}


async def _serve(pipe: Connection) -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    try:
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "connect":
                pipe.send(await worker.connect(*args))
            elif command == "collect":
                pipe.send(await worker.collect(*args))
            else:
                pipe.send(await worker.close())
                return
    finally:
        await worker.close()


def _worker_main(pipe: Connection) -> None:
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(pipe))


class SpectatorPool:
    """k worker processes; sockets are dealt round-robin so each holds about N/k."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child,), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def _call(
        self, command: str, per_worker: list[tuple[Any, ...]], timeout: float = COMMAND_TIMEOUT
    ) -> list[dict[str, Any]]:
        for pipe, args in zip(self.pipes, per_worker, strict=True):
            pipe.send((command, args))
        replies = []
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if not pipe.poll(timeout):
                raise TimeoutError(f"spectator worker {process.pid} did not answer {command}")
            replies.append(pipe.recv())
        return replies

    def connect(self, urls: list[str]) -> dict[str, Any]:
        k = len(self.pipes)
        replies = self._call("connect", [(urls[i::k],) for i in range(k)])
        errors = [e for reply in replies for e in reply["errors"]]
        return {
            "open": sum(r["open"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "errors": errors[:5],
        }

    def collect(self, last_version: int, timeout: float) -> dict[str, Any]:
        replies = self._call("collect", [(last_version, timeout)] * len(self.pipes))
        arrivals: dict[int, list[int]] = {}
        for reply in replies:
            for version, times in reply["arrivals"].items():
                arrivals.setdefault(version, []).extend(times)
        totals = {key: sum(r[key] for r in replies) for key in ("sockets", "complete", "gaps")}
        return {**totals, "closed": sum(r["closed"] for r in replies), "arrivals": arrivals}

    def close(self) -> None:
        """Close every socket and stop the workers (also after an error: bounded)."""
        with contextlib.suppress(Exception):
            self._call("close", [()] * len(self.pipes), timeout=30)
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()

    def __enter__(self) -> SpectatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
