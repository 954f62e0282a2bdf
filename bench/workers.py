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
from multiprocessing.connection import Connection
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from bench.client import CONNECT_TIMEOUT, decode

# Handshakes in flight at once per worker: enough to fill the server's accept
# backlog without a thundering herd of timeouts.
CONNECT_CONCURRENCY = 64
COMMAND_TIMEOUT = 300.0


class Spectator(asyncio.Protocol):
    """One spectator socket on websockets' sans-I/O protocol over a bare asyncio
    transport: a few microseconds per frame, against tens for a task reading a
    high-level connection, so thousands of them per process keep up with the server.
    The arrival time is taken once per read, before any parsing."""

    def __init__(self, url: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=2**22)
        self.transport: asyncio.Transport | None = None
        self.base: int | None = None  # version of the first `state`
        self.last: int | None = None  # version of the latest `state` or `update`
        self.gaps = 0  # updates that did not follow the previous version by exactly 1
        self.resyncs = 0  # later `state`s: the server replaced missed updates by a snapshot
        self.arrivals: list[tuple[int, int]] = []  # (version, monotonic ns)
        self.ready = asyncio.Event()  # first `state` seen, or the socket ended
        self.goal: int | None = None  # the version `collect` waits for
        self.reached = asyncio.Event()  # goal seen, or the socket ended
        self.lost = asyncio.Event()
        self.close_code: int | None = None
        self._fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic_ns()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.CONT):
                self._fragments.append(bytes(event.data))
                if event.fin:
                    self._on_message(b"".join(self._fragments), arrived)
                    self._fragments.clear()
        self._flush()  # pongs and the closing handshake are queued by the protocol
        if self.ws.handshake_exc is not None and self.transport is not None:
            self.transport.close()

    def _on_message(self, raw: bytes, arrived: int) -> None:
        message = decode(raw)
        if message.type == "update" and message.version is not None:
            if self.last is not None and message.version != self.last + 1:
                self.gaps += 1
            self.last = message.version
            self.arrivals.append((message.version, arrived))
            if self.goal is not None and message.version >= self.goal:
                self.reached.set()
        elif message.type == "state" and message.version is not None:
            if self.base is None:
                self.base = message.version
            else:
                self.resyncs += 1
            self.last = message.version
            self.ready.set()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_code = self.ws.close_code or 1006
        for event in (self.ready, self.reached, self.lost):
            event.set()

    async def close(self) -> None:
        """The closing handshake, bounded; then the socket is dropped regardless."""
        if self.transport is None or self.lost.is_set():
            return
        with contextlib.suppress(Exception):
            self.ws.send_close(1000)
            self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lost.wait(), 5)
        self.transport.abort()


class Worker:
    def __init__(self) -> None:
        self.spectators: list[Spectator] = []

    async def connect(self, urls: list[str]) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        errors: list[str] = []
        loop = asyncio.get_running_loop()

        async def one(url: str) -> None:
            uri = parse_uri(url)
            spectator = Spectator(url)
            async with gate:
                try:
                    await asyncio.wait_for(
                        loop.create_connection(lambda: spectator, uri.host, uri.port),
                        CONNECT_TIMEOUT,
                    )
                    await asyncio.wait_for(spectator.ready.wait(), CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as error:
                    errors.append(f"{type(error).__name__}: {error}")
                    return
            if spectator.close_code is not None:
                errors.append(f"closed {spectator.close_code}: {spectator.ws.handshake_exc}")
                return
            self.spectators.append(spectator)

        await asyncio.gather(*(one(url) for url in urls))
        live = [s for s in self.spectators if s.close_code is None and s.base is not None]
        return {"open": len(live), "failed": len(errors), "errors": errors[:5]}

    async def collect(self, last_version: int, wait_seconds: float) -> dict[str, Any]:
        """Wait (bounded) until every socket saw `last_version`; report what arrived."""
        waits = []
        for spectator in self.spectators:
            spectator.goal = last_version
            spectator.reached.clear()  # an earlier collect may have set it
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
            "cpu_seconds": time.process_time(),
            "sockets": len(self.spectators),
            "complete": complete,
            "gaps": sum(s.gaps for s in self.spectators),
            "resyncs": sum(s.resyncs for s in self.spectators),
            "closed": closed,
            "arrivals": arrivals,
        }

    async def close(self) -> dict[str, Any]:
        await asyncio.gather(*(s.close() for s in self.spectators))
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
        counts = ("sockets", "complete", "gaps", "resyncs", "closed")
        totals = {key: sum(r[key] for r in replies) for key in counts}
        # CPU each worker has used since it started: the busiest one shows whether the
        # load generator itself was near saturation.
        cpu = [r["cpu_seconds"] for r in replies]
        return {**totals, "worker_cpu_seconds": cpu, "arrivals": arrivals}

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
