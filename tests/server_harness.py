"""Real servers for the server tests: uvicorn on a free 127.0.0.1 port, real clients.

`ServerThread` runs the app in a thread of the test process (fast to start);
`ServerProcess` runs `gamesocket serve` in a subprocess (for kill -9 and signals).
The store is chosen by ONE fixture, `database_url` (default: a SQLite file per test);
a Postgres run overrides that fixture and every server test follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from litestar import Litestar
from websockets.asyncio.client import ClientConnection

from gamesocket_client.rest import IDLE_CONNECTION_SECONDS
from socket_server.runner import GracefulServer, make_server
from socket_server.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RECV_TIMEOUT = 10.0
# The suite's servers serve many guests and polls from 127.0.0.1: the REST and guest
# rate limits are off for them (tests/system/test_hardening_limits.py turns them on).
# Nor do they start the AI's search workers with the server (hundreds of servers start
# in one run; a test of AIs on a clock warms them itself).
SUITE_SETTINGS: dict[str, Any] = {"rest_rate_limit": 0, "guest_rate_limit": 0, "ai_warm_up": False}
SUITE_ENV = {
    "GAMESOCKET_REST_RATE_LIMIT": "0",
    "GAMESOCKET_GUEST_RATE_LIMIT": "0",
    "GAMESOCKET_AI_WARM_UP": "0",
}
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerThread:
    """The app under uvicorn in a background thread, on its own event loop."""

    def __init__(self, settings: Settings, app: Litestar | None = None) -> None:
        self.settings = replace(settings, host="127.0.0.1", port=free_port())
        self.server: GracefulServer = make_server(self.settings, app, log_level="warning")
        self.context = self.server.context
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    async def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's event loop (its objects live there)."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return await asyncio.wrap_future(future)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=20)

    def ws_url(self, game_type: str, game_id: str, **query: Any) -> str:
        return ws_url(self.settings.port, game_type, game_id, **query)


class ServerProcess:
    """`gamesocket serve` in a subprocess, so it can be killed with any signal."""

    def __init__(self, data_dir: Path, database_url: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
        self.env.update(SUITE_ENV)
        self.env.pop("REDIS_URL", None)
        self.process: subprocess.Popen[bytes] | None = None
        # Run in the child before the server starts (say, to lower its descriptor limit).
        self.preexec_fn: Callable[[], None] | None = None
        # Where the server's stderr (its log) goes; None: this process's stderr.
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "socket_server.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        command += ["--log-level", "warning"]
        with contextlib.ExitStack() as files:
            log = files.enter_context(self.log_path.open("ab")) if self.log_path else None
            self.process = subprocess.Popen(
                command, env=self.env, cwd=PROJECT_ROOT, stderr=log, preexec_fn=self.preexec_fn
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not answer /health")

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    def ws_url(self, game_type: str, game_id: str, **query: Any) -> str:
        return ws_url(self.port, game_type, game_id, **query)


def ws_url(port: int, game_type: str, game_id: str, **query: Any) -> str:
    params = {k: v for k, v in query.items() if v is not None}
    suffix = f"?{urlencode(params)}" if params else ""
    return f"ws://127.0.0.1:{port}/ws/{game_type}/{game_id}{suffix}"


class Client:
    """A websocket client that speaks JSON and waits for given message types."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.seen: list[dict[str, Any]] = []  # every message received, in order
        self._unread: deque[dict[str, Any]] = deque()  # passed over by `request`

    async def send(self, **message: Any) -> None:
        await self.connection.send(json.dumps(message))

    async def recv(self, wait: float = RECV_TIMEOUT) -> dict[str, Any]:
        if self._unread:
            return self._unread.popleft()
        frame = await asyncio.wait_for(self.connection.recv(), wait)
        assert isinstance(frame, str), "the server must send text frames"
        message: dict[str, Any] = json.loads(frame)
        self.seen.append(message)
        return message

    async def expect(self, *types: str, wait: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next message of one of `types`, passing over others (but not errors)."""
        while True:
            message = await self.recv(wait)
            if message["type"] in types:
                return message
            assert message["type"] != "error", message

    async def request(self, wait: float = RECV_TIMEOUT, **message: Any) -> dict[str, Any]:
        """Send a message with an `id`; the matching `ack` or `error`.

        Messages that arrive before it stay unread for `recv` and `expect`.
        """
        await self.send(**message)
        passed: list[dict[str, Any]] = []
        while True:
            reply = await self.recv(wait)
            if reply["type"] in ("ack", "error") and reply.get("ref") == message.get("id"):
                self._unread.extend(passed)
                return reply
            passed.append(reply)

    async def closed_with(self, wait: float = RECV_TIMEOUT) -> int | None:
        """Read until the server closes; its close code."""
        try:
            while True:
                await self.recv(wait)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def connect(url: str) -> Client:
    return Client(await websockets.connect(url, max_size=None, compression=None))


class Api:
    """httpx against one server, with guest sign-in."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=15,
            limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS),
        )

    async def guest(self) -> dict[str, Any]:
        reply = await self.http.post("/api/auth/guest")
        assert reply.status_code == 201, reply.text
        guest: dict[str, Any] = reply.json()
        guest["headers"] = {"Authorization": f"Bearer {guest['access_token']}"}
        return guest

    async def create(self, user: dict[str, Any], game_type: str, **body: Any) -> dict[str, Any]:
        reply = await self.http.post(
            "/api/games", json={"game_type": game_type, **body}, headers=user["headers"]
        )
        assert reply.status_code == 201, reply.text
        snapshot: dict[str, Any] = reply.json()
        return snapshot

    async def snapshot(self, game_id: str, user: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = user["headers"] if user else {}
        reply = await self.http.get(f"/api/games/{game_id}", headers=headers)
        assert reply.status_code == 200, reply.text
        snapshot: dict[str, Any] = reply.json()
        return snapshot

    async def wait_for(
        self,
        game_id: str,
        done: Callable[[dict[str, Any]], bool],
        wait: float = 60,
    ) -> dict[str, Any]:
        """Poll the snapshot until `done(snapshot)`."""
        deadline = time.monotonic() + wait
        while True:
            snapshot = await self.snapshot(game_id)
            if done(snapshot):
                return snapshot
            assert time.monotonic() < deadline, f"timed out; last snapshot {snapshot}"
            await asyncio.sleep(0.05)

    async def wait_for_connections(
        self, game_id: str, *, players: int, spectators: int, wait: float = 10
    ) -> dict[str, int]:
        """Poll /api/connections until the game shows these counts; its last counts."""
        deadline = time.monotonic() + wait
        while True:
            counts = (await self.http.get("/api/connections")).json()["games"].get(game_id)
            if counts == {"players": players, "spectators": spectators}:
                return dict(counts)
            if time.monotonic() > deadline:
                return dict(counts or {})
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.http.aclose()


# -- fixtures (loaded for every test through tests/conftest.py's pytest_plugins) ----------
@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The store of the server under test; override to run the suite on another store."""
    return f"sqlite:///{tmp_path / 'games.sqlite3'}"


@pytest.fixture
def server_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        default_ai_delay_ms=0,
        **SUITE_SETTINGS,
    )


@pytest.fixture
def start_server(server_settings: Settings) -> Iterator[Callable[..., ServerThread]]:
    """Start servers with settings overrides; all are stopped after the test."""
    started: list[ServerThread] = []

    def start(app: Litestar | None = None, **overrides: Any) -> ServerThread:
        running = ServerThread(replace(server_settings, **overrides), app).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerThread]) -> ServerThread:
    return start_server()


@pytest.fixture
async def api(server: ServerThread) -> AsyncIterator[Api]:
    client = Api(server.base_url)
    yield client
    await client.close()
