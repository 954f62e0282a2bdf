"""gamesocket_client against real servers: the bot example, streams, resume, resend, errors.

Drops are real: a TCP relay between the client and the server (`Relay`) cuts the
connection, bars reconnects or throws away what the server sends, and a
`ServerProcess` is restarted with SIGTERM (close code 1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gamesocket_client import (
    Change,
    GameClient,
    GameSession,
    GameSocketError,
    Presence,
    Reconnect,
    ServerEvent,
    SnapshotEvent,
    Thinking,
    Update,
)
from gamesocket_client.rest import IDLE_CONNECTION_SECONDS
from socket_server.runner import KEEP_ALIVE_SECONDS
from tests.server_harness import PROJECT_ROOT, ServerProcess, ServerThread

# Reconnect quickly and for long enough to outlast a server restart.
PATIENT = Reconnect(attempts=400, initial_delay=0.02, max_delay=0.15)
WAIT = 20.0


class Relay:
    """A TCP relay in front of a server that a test can cut, bar or blind.

    `requests` keeps the first line of every relayed connection: for a socket, the
    handshake's request line, so a test sees the `since` of each (re)connect. With
    `refuse`, new connections are dropped at once; with `blackhole`, everything the
    server sends is read and thrown away (the client hears nothing).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[str] = []
        self.refused = 0
        self.refuse = False
        self.blackhole = False
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        """Abort every relayed connection, both sides, without a close frame."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            self.refused += 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer, from_client=True),
            self._pump(up_reader, writer, from_client=False),
            return_exceptions=True,
        )

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool
    ) -> None:
        first = from_client
        try:
            while data := await reader.read(65536):
                if first:
                    self.requests.append(data.split(b"\r\n", 1)[0].decode())
                    first = False
                if not from_client and self.blackhole:
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()  # one direction ended: so does the other


@pytest.fixture
async def relay(server: ServerThread) -> AsyncIterator[Relay]:
    running = await Relay(server.settings.port).start()
    yield running
    await running.stop()


@pytest.fixture
async def clients(server: ServerThread) -> AsyncIterator[Callable[[], Awaitable[GameClient]]]:
    """Signed-in guests' REST clients on `server`, closed after the test."""
    made: list[GameClient] = []

    async def guest() -> GameClient:
        client = GameClient(server.base_url)
        await client.guest()
        made.append(client)
        return client

    yield guest
    for client in made:
        await client.aclose()


class Recorder:
    """Collects a session's update stream in the background until the game is over."""

    def __init__(self, session: GameSession) -> None:
        self.changes: list[Change] = []
        self._task = asyncio.create_task(self._collect(session))

    async def _collect(self, session: GameSession) -> None:
        async for change in session.updates():
            self.changes.append(change)

    @property
    def versions(self) -> list[int]:
        return [change.version for change in self.changes]

    async def until(self, version: int) -> list[int]:
        """The versions seen, once `version` has been seen."""
        deadline = time.monotonic() + WAIT
        while version not in self.versions:
            assert not self._task.done(), self._task
            assert time.monotonic() < deadline, f"no version {version}: {self.versions}"
            await asyncio.sleep(0.01)
        return self.versions

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def human_game(alice: GameClient, bob: GameClient) -> str:
    """A tic-tac-toe game: alice is x, bob has joined as o (version 1)."""
    game = await alice.create_game("tictactoe", seats={"x": "me"})
    joined = await bob.join(game.game_id)
    assert joined.version == 1 and joined.status == "active"
    return game.game_id


# -- the bot example ------------------------------------------------------------------------
@pytest.mark.parametrize("game_type", ["tictactoe", "connect4"])
async def test_bot_example_plays_a_whole_game_against_the_ai(
    server: ServerThread, game_type: str
) -> None:
    command = [sys.executable, str(PROJECT_ROOT / "examples" / "bot.py")]
    command += ["--url", server.base_url, "--game", game_type, "--level", "2"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    finished = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    found = re.search(r"^game (\S+) ", out, re.MULTILINE)
    assert found is not None, out
    printed = re.findall(r"^v(\d+) (\w+) plays (\d+)$", out, re.MULTILINE)
    moves = [(int(version), seat, int(move)) for version, seat, move in printed]

    async with GameClient(server.base_url) as client:
        final = await client.get_game(found.group(1))
        log = await client.moves(final.game_id)
    assert final.status == "finished" and final.result is not None
    assert f"({final.result.reason})" in out.splitlines()[-1]
    # Every move of the game was printed once, in order, as the server logged it.
    assert moves == [(entry.version, entry.seat, entry.move) for entry in log]
    assert [version for version, _, _ in moves] == list(range(1, final.version + 1))
    bot_seat, ai_seat = list(final.seats)
    assert {seat for _, seat, _ in moves} == {bot_seat, ai_seat}


# -- the update stream ----------------------------------------------------------------------
async def test_update_stream_has_every_version_in_order(
    server: ServerThread, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice, bob = await clients(), await clients()
    game = await alice.create_game("tictactoe", seats={"x": "me"})
    x = await alice.connect("tictactoe", game.game_id)
    o = await bob.connect("tictactoe", game.game_id)
    watcher = await GameSession(server.base_url, "tictactoe", game.game_id).connect()
    streams = [Recorder(session) for session in (x, o, watcher)]
    try:
        assert o.hello is not None and o.hello.you.role == "spectator"
        assert await o.join() == 1
        assert o.my_seats == ["o"] and o.hello.you.user_id == bob.user_id
        acked = []
        for player, cell in [(x, 4), (o, 0), (x, 1), (o, 2), (x, 7)]:  # x wins down the middle
            version = await player.move(cell)
            # An awaited request returns with the snapshot already showing it.
            assert player.version == version and player.snapshot.board["cells"][cell]
            acked.append(version)
        assert acked == [2, 3, 4, 5, 6]
        assert x.snapshot.status == "finished" and x.snapshot.result is not None
        assert x.snapshot.result.winner == "x"
        for stream in streams:
            assert await stream.until(6) == [0, 1, 2, 3, 4, 5, 6]
            first, *rest = stream.changes
            assert isinstance(first, SnapshotEvent) and first.reason == "start"
            assert all(isinstance(change, Update) for change in rest)
            kinds = [change.event.kind for change in rest if isinstance(change, Update)]
            assert kinds == ["join"] + ["move"] * 5
        cells = [c.event.move for c in streams[2].changes if isinstance(c, Update)][1:]
        assert cells == [4, 0, 1, 2, 7]
    finally:
        for stream in streams:
            await stream.stop()
        for session in (x, o, watcher):
            await session.close()


# -- resume after a drop --------------------------------------------------------------------
async def test_reconnect_after_a_drop_resumes_with_since_and_resends(
    relay: Relay, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice, bob = await clients(), await clients()
    game_id = await human_game(alice, bob)
    session = await GameSession(
        relay.base_url, "tictactoe", game_id, token=alice.token, reconnect=PATIENT
    ).connect()
    stream = Recorder(session)
    try:
        assert await session.move(4) == 2
        relay.refuse = True
        relay.cut()  # no close frame: 1006
        await wait_until(lambda: not session.connected, "the drop to be noticed")
        assert await bob.move(game_id, 0) == 3  # while alice is away
        pending = asyncio.create_task(session.move(8))  # sent once she is back
        await wait_until(lambda: relay.refused >= 2, "refused reconnect attempts")
        assert not pending.done()
        relay.refuse = False

        assert await asyncio.wait_for(pending, WAIT) == 4
        assert await stream.until(4) == [1, 2, 3, 4]  # v3 came with the resume
        assert all(isinstance(change, Update) for change in stream.changes[1:])
        assert session.reconnects == 1 and session.last_close_code == 1006
        first, *later = [line for line in relay.requests if "/ws/" in line]
        assert "since=" not in first
        assert later and all("since=2" in line for line in later)
        assert (await alice.get_game(game_id)).version == 4
    finally:
        await stream.stop()
        await session.close()


async def test_a_resent_move_is_applied_once_and_answers_the_original_ack(
    relay: Relay, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice, bob = await clients(), await clients()
    game_id = await human_game(alice, bob)
    session = await GameSession(
        relay.base_url, "tictactoe", game_id, token=alice.token, reconnect=PATIENT
    ).connect()
    stream = Recorder(session)
    try:
        await stream.until(1)
        relay.blackhole = True  # the server's ack (and update) never reach the client
        move = asyncio.create_task(session.move(4, version=1, id="x-centre"))
        deadline = time.monotonic() + WAIT
        while (await alice.get_game(game_id)).version < 2:
            assert time.monotonic() < deadline, "the move never landed"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert not move.done(), "the ack must not have arrived through the blackhole"
        relay.blackhole = False
        relay.cut()

        # The resend carries the same id and version=1: a new request would be refused
        # (stale_version); the same one is answered with the original ack.
        assert await asyncio.wait_for(move, WAIT) == 2
        assert session.reconnects == 1
        assert any("since=1" in line for line in relay.requests)
        snapshot = await alice.get_game(game_id)
        assert snapshot.version == 2 and snapshot.turn == "o"
        assert [(m.version, m.seat, m.move) for m in await alice.moves(game_id)] == [(2, "x", 4)]
        assert await bob.move(game_id, 0) == 3
        assert await stream.until(3) == [1, 2, 3]
    finally:
        await stream.stop()
        await session.close()


@pytest.fixture
def process(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "process-data", database_url)
    yield running
    running.stop()


async def test_server_restart_1001_resumes_and_resends_a_move_made_while_down(
    process: ServerProcess,
) -> None:
    process.start()
    async with GameClient(process.base_url) as alice, GameClient(process.base_url) as bob:
        await alice.guest()
        await bob.guest()
        game_id = await human_game(alice, bob)
        session = await alice.connect("tictactoe", game_id, reconnect=PATIENT)
        stream = Recorder(session)
        try:
            assert await session.move(4) == 2
            assert await bob.move(game_id, 0) == 3
            await stream.until(3)
            stopped = await asyncio.to_thread(process.signal, signal.SIGTERM)
            assert stopped in (0, -signal.SIGTERM)
            await wait_until(lambda: not session.connected, "the 1001 close")
            assert session.last_close_code == 1001
            pending = asyncio.create_task(session.move(8))
            await asyncio.sleep(0.3)
            assert not pending.done()
            await asyncio.to_thread(process.start)  # same port, database and token secret

            assert await asyncio.wait_for(pending, WAIT) == 4
            assert await stream.until(4) == [1, 2, 3, 4]
            assert session.reconnects == 1
            assert session.hello is not None and session.hello.you.seat == "x"
            assert await bob.move(game_id, 3) == 5
            assert await stream.until(5) == [1, 2, 3, 4, 5]
        finally:
            await stream.stop()
            await session.close()


# -- errors ---------------------------------------------------------------------------------
async def test_an_illegal_move_raises_a_typed_error_and_changes_nothing(
    server: ServerThread, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice, bob = await clients(), await clients()
    game_id = await human_game(alice, bob)
    async with alice.session("tictactoe", game_id) as x, bob.session("tictactoe", game_id) as o:
        assert await x.move(4) == 2
        with pytest.raises(GameSocketError) as taken:
            await o.move(4, id="on-top")
        assert (taken.value.code, taken.value.ref) == ("illegal_move", "on-top")
        with pytest.raises(GameSocketError) as early:
            await x.move(0)
        assert early.value.code == "not_your_turn"
        # The session is still usable, and nothing changed.
        assert o.version == 2 and (await alice.get_game(game_id)).version == 2
        assert await o.move(0) == 3
        # The same refusal over REST, with its HTTP status.
        with pytest.raises(GameSocketError) as rest:
            await alice.move(game_id, 0)
        assert (rest.value.code, rest.value.status) == ("illegal_move", 422)
    with pytest.raises(GameSocketError) as missing:
        await alice.get_game(str(uuid.uuid4()))
    assert (missing.value.code, missing.value.status) == ("not_found", 404)


async def test_refused_sockets_raise_instead_of_reconnecting(
    server: ServerThread, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice, stranger = await clients(), await clients()
    private = await alice.create_game("tictactoe", seats={"x": "me"}, public=False)
    cases: list[tuple[GameSession, str, int]] = [
        (stranger.session("tictactoe", str(uuid.uuid4())), "not_found", 4404),
        (stranger.session("connect4", private.game_id), "not_found", 4404),
        (stranger.session("tictactoe", private.game_id), "forbidden", 4403),
        (alice.session("tictactoe", private.game_id, token="not-a-token"), "unauthorized", 4401),
    ]
    for session, code, close_code in cases:
        started = time.monotonic()
        with pytest.raises(GameSocketError) as refused:
            await session.connect()
        assert (refused.value.code, refused.value.close_code) == (code, close_code)
        assert time.monotonic() - started < 5  # at once, not after a backoff
    async with alice.session("tictactoe", private.game_id) as mine:
        assert mine.hello is not None and mine.hello.you.seat == "x"


# -- events ---------------------------------------------------------------------------------
async def test_presence_thinking_and_ping(
    server: ServerThread, clients: Callable[[], Awaitable[GameClient]]
) -> None:
    alice = await clients()
    game = await alice.create_game(
        "connect4", seats={"red": "me", "yellow": {"kind": "ai", "level": 2}}
    )
    heard: list[ServerEvent] = []
    async with alice.session("connect4", game.game_id, on_event=heard.append) as session:
        streamed: list[ServerEvent] = []

        async def listen() -> None:
            async for event in session.events():
                streamed.append(event)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0)  # subscribed from here on
        async with GameSession(server.base_url, "connect4", game.game_id):
            await wait_until(
                lambda: session.presence is not None and session.presence.spectators == 1,
                "presence with one spectator",
            )
        await session.move(3)
        await wait_until(lambda: session.version == 2, "the AI's answer")
        thinking = [event for event in heard if isinstance(event, Thinking)]
        assert thinking and all(event.seat == "yellow" for event in thinking)
        assert any(isinstance(event, Presence) and event.online.get("red") for event in heard)
        assert 0 <= await session.ping() < 5
        # The stream has what the callback had since it subscribed, in the same order.
        await wait_until(lambda: any(isinstance(e, Thinking) for e in streamed), "a stream")
        assert streamed and heard[len(heard) - len(streamed) :] == streamed
        listener.cancel()


async def test_a_request_sent_as_the_server_drops_an_idle_connection_still_succeeds(
    server: ServerThread,
) -> None:
    # The client drops an idle connection before the server closes it. With httpx's
    # default (5 s, the server's own keep-alive) a request sent at that moment failed
    # with ReadError: 3 of 40 sent around the 5 s mark did.
    assert server.server.config.timeout_keep_alive == KEEP_ALIVE_SECONDS
    assert IDLE_CONNECTION_SECONDS < KEEP_ALIVE_SECONDS

    async def around_the_close(offset: float) -> None:
        async with GameClient(server.base_url) as client:
            await client.guest()
            await asyncio.sleep(KEEP_ALIVE_SECONDS + offset)
            await client.guest()  # raises GameSocketError if the request failed

    await asyncio.gather(*(around_the_close(-0.03 + i * 0.0015) for i in range(40)))
