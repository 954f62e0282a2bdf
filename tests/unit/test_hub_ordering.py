"""`Connection`: one socket sees every version once, in order, or is closed.

No network: the socket is an in-memory recorder of the frames written to it and how it
closed, and the gap filler is a coroutine that serves versions from a table, so the
ordering logic is judged on its own (tests/system/test_transport.py writes to real
sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from socket_server.hub import Catchup, Connection
from socket_server.protocol import CloseCode
from socket_server.store.base import Actor
from socket_server.transport import text_frame

GAME_ID = "00000000-0000-4000-8000-0000000000dd"


def text(version: int) -> bytes:
    """An update's frame."""
    return text_frame(f'{{"type": "update", "version": {version}}}'.encode())


class RecordingSocket:
    """The socket and its transport: the frames written and the close code. While
    `stalled`, every frame written stays pending (its client reads nothing)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: list[int] = []
        self.stalled = False
        self.pending = 0

    def write_frame(self, frame: bytes) -> int:
        self.sent.append(frame)
        self.pending += self.stalled
        return self.pending

    def frames_pending(self) -> int:
        return self.pending

    async def close(self, code: int = 1000) -> None:
        self.closed.append(code)

    def versions(self) -> list[int]:
        # A short text frame: 0x81, its length, the JSON.
        return [int(frame[2:].decode().rsplit(" ", 1)[1].rstrip("}")) for frame in self.sent]


class Filler:
    """The gap filler: every version after..upto; `extra` more past upto; `hold` blocks it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.hold: asyncio.Event | None = None
        self.extra = 0
        self.fail = False

    async def __call__(self, game_id: str, after: int, upto: int) -> Catchup:
        self.calls.append((game_id, after, upto))
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise RuntimeError("the store is down")
        return Catchup([(v, text(v)) for v in range(after + 1, upto + 1 + self.extra)])


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"not reached within {seconds} s")


@pytest.fixture
def socket() -> RecordingSocket:
    return RecordingSocket()


@pytest.fixture
def filler() -> Filler:
    return Filler()


Factory = Callable[..., Connection]


@pytest.fixture
async def connect(socket: RecordingSocket, filler: Filler) -> AsyncIterator[Factory]:
    made: list[Connection] = []

    def make(max_backlog: int = 100) -> Connection:
        fake: Any = socket
        connection = Connection(
            fake, GAME_ID, "tictactoe", Actor(user_id="u1"), max_backlog, filler, fake
        )
        made.append(connection)
        return connection

    yield make
    for connection in made:
        await connection.stop()


async def test_updates_before_the_first_snapshot_are_held_then_released_in_order(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    connection = connect()
    for version in (3, 1, 2, 5, 4):
        connection.deliver_update(version, text(version))
    await settle()
    assert socket.sent == []  # nothing before the client holds a snapshot
    connection.start_updates(1)
    await wait_until(lambda: len(socket.sent) == 4)
    assert socket.versions() == [2, 3, 4, 5]  # 1 was in the snapshot
    assert connection.last_version == 5
    assert filler.calls == []


async def test_held_updates_newer_than_the_snapshot_with_a_hole_are_filled(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    connection = connect()
    connection.deliver_update(4, text(4))
    connection.deliver_update(5, text(5))
    connection.start_updates(2)
    await wait_until(lambda: len(socket.sent) == 3)
    assert socket.versions() == [3, 4, 5]
    assert filler.calls == [(GAME_ID, 2, 3)]


async def test_duplicates_and_old_versions_are_dropped(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    connection = connect()
    connection.start_updates(2)
    for version in (1, 2, 3, 3, 2, 4, 4, 1):
        connection.deliver_update(version, text(version))
    await wait_until(lambda: len(socket.sent) >= 2)
    await settle()
    assert socket.versions() == [3, 4]
    assert filler.calls == []


async def test_a_gap_is_filled_with_exactly_the_missing_versions(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    connection = connect()
    connection.start_updates(0)
    connection.deliver_update(1, text(1))
    connection.deliver_update(4, text(4))
    await wait_until(lambda: len(socket.sent) == 4)
    assert socket.versions() == [1, 2, 3, 4]
    assert filler.calls == [(GAME_ID, 1, 3)]
    assert connection.last_version == 4


async def test_updates_arriving_during_a_fill_wait_for_it_and_need_no_second_fill(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    filler.hold = asyncio.Event()
    connection = connect()
    connection.start_updates(0)
    connection.deliver_update(1, text(1))
    connection.deliver_update(4, text(4))  # starts the fill of 2..3
    for version in (6, 5, 4, 3):
        connection.deliver_update(version, text(version))
    await settle()
    assert socket.versions() == [1]  # 4, 5, 6 wait behind the gap
    filler.hold.set()
    await wait_until(lambda: len(socket.sent) == 6)
    await settle()
    assert socket.versions() == [1, 2, 3, 4, 5, 6]
    assert filler.calls == [(GAME_ID, 1, 3)]


async def test_a_fill_that_returns_more_than_asked_sends_each_version_once(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    filler.extra = 2  # also returns 4 and 5, which were delivered too
    connection = connect()
    connection.start_updates(1)
    connection.deliver_update(4, text(4))
    connection.deliver_update(5, text(5))
    await wait_until(lambda: len(socket.sent) >= 4)
    await settle()
    assert socket.versions() == [2, 3, 4, 5]
    assert filler.calls == [(GAME_ID, 1, 3)]


async def test_catch_up_fills_up_to_the_stored_version(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    connection = connect()
    connection.catch_up(3)  # no snapshot yet: nothing to catch up from
    await settle()
    assert filler.calls == []
    connection.start_updates(1)
    connection.catch_up(1)  # already there
    await settle()
    assert filler.calls == []
    connection.catch_up(3)
    await wait_until(lambda: len(socket.sent) == 2)
    assert socket.versions() == [2, 3]
    assert filler.calls == [(GAME_ID, 1, 3)]
    connection.deliver_update(3, text(3))  # the broker's late copy
    connection.deliver_update(4, text(4))
    await wait_until(lambda: len(socket.sent) == 3)
    assert socket.versions() == [2, 3, 4]


async def test_start_updates_never_moves_a_socket_backwards(
    connect: Factory, socket: RecordingSocket
) -> None:
    connection = connect()
    connection.start_updates(3)
    connection.deliver_update(4, text(4))
    connection.start_updates(2)  # e.g. a `sync` answered from an older read
    assert connection.last_version == 4
    connection.deliver_update(4, text(4))
    connection.deliver_update(5, text(5))
    await wait_until(lambda: len(socket.sent) == 2)
    await settle()
    assert socket.versions() == [4, 5]


async def test_a_failed_fill_closes_the_socket_as_an_internal_error(
    connect: Factory, socket: RecordingSocket, filler: Filler
) -> None:
    filler.fail = True
    connection = connect()
    connection.start_updates(0)
    connection.deliver_update(2, text(2))
    await wait_until(lambda: socket.closed != [])
    assert socket.closed == [CloseCode.INTERNAL_ERROR]
    assert socket.sent == []


async def test_close_follows_what_was_sent(connect: Factory, socket: RecordingSocket) -> None:
    connection = connect()
    connection.start_updates(0)
    connection.deliver_update(1, text(1))
    connection.deliver_update(2, text(2))
    connection.close(CloseCode.GOING_AWAY)
    connection.deliver_update(3, text(3))  # after the close: never sent
    await wait_until(lambda: socket.closed != [])
    assert socket.versions() == [1, 2]
    assert socket.closed == [CloseCode.GOING_AWAY]


async def test_a_backlog_beyond_max_closes_the_socket_as_a_slow_consumer(
    connect: Factory, socket: RecordingSocket
) -> None:
    socket.stalled = True  # the client reads nothing
    connection = connect(max_backlog=3)
    reader = asyncio.create_task(asyncio.Event().wait())
    connection.waiting_reader = reader
    connection.start_updates(0)
    for version in (1, 2, 3):  # exactly max_backlog pending: still open
        connection.deliver_update(version, text(version))
    await settle()
    assert connection.close_code is None and socket.closed == []
    assert connection.room() == 0
    connection.deliver_update(4, text(4))  # one too many: closed at once
    assert connection.close_code == CloseCode.SLOW_CONSUMER
    assert connection.cut_off is True
    await wait_until(lambda: socket.closed != [])
    assert socket.closed == [CloseCode.SLOW_CONSUMER]
    assert reader.cancelled()  # the reader stops waiting for the client
    socket.stalled = False
    connection.deliver_update(5, text(5))
    await settle()
    assert socket.versions() == [1, 2, 3, 4]  # nothing written after the cut-off
    assert socket.closed == [CloseCode.SLOW_CONSUMER]  # closed once
