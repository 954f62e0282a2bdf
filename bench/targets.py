"""Servers under test as subprocesses: start, wait for health, measure memory, stop.

Every server runs in its own session (process group) and is registered for cleanup,
so an exception or Ctrl-C in the harness still ends it and anything it started.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the harness never talks to any other address
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The bench measures the hot path, not the abuse limits: raise them so the load
# generator's deliberate floods are not throttled or timed out as idle.
BENCH_SERVER_ENV = {
    "GAMESOCKET_RATE_LIMIT": "100000",
    "GAMESOCKET_RATE_BURST": "100000",
    "GAMESOCKET_IDLE_TIMEOUT": "3600",
    "GAMESOCKET_MAX_SOCKETS": "0",
    "GAMESOCKET_MAX_SOCKETS_PER_IP": "0",
    "GAMESOCKET_HANDSHAKE_TIMEOUT": "60",
    "GAMESOCKET_REST_RATE_LIMIT": "0",
    "GAMESOCKET_GUEST_RATE_LIMIT": "0",
    "GAMESOCKET_MAX_AI_GAMES_PER_USER": "0",
}
# Variables that would switch the server out of its embedded, single-process mode.
FOREIGN_ENV = ("DATABASE_URL", "REDIS_URL", "SUPABASE_URL", "SUPABASE_JWT_SECRET")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; servers and workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def gamesocket_command() -> list[str] | None:
    """The `gamesocket` command, run from this checkout (cwd first on sys.path), so the
    bench measures the tree it sits in whatever the virtualenv's install looks like."""
    if not (PROJECT_ROOT / "socket_server" / "cli.py").exists():
        return None
    return [sys.executable, "-m", "socket_server.cli"]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    return []


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants, in KiB (0 for a vanished one)."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total = int(line.split()[1])
    return total + sum(rss_kib(child) for child in _children(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far."""
    total = 0.0
    with contextlib.suppress(OSError, IndexError, ValueError):
        # Fields after the command name (which may hold spaces): utime is 14th, stime 15th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total + sum(cpu_seconds(child) for child in _children(pid))


_LIVE: set[ServerProcess] = set()


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


@dataclass(eq=False)
class ServerProcess:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready_timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env.update(self.env)
        log = tempfile.NamedTemporaryFile(prefix=f"bench-{self.name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(log.name)
        self.process = subprocess.Popen(
            self.argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        _LIVE.add(self)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http_url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy; log tail:\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        """SIGTERM to the server's process group, then SIGKILL after a bounded wait."""
        _LIVE.discard(self)
        if self.process is None or self.process.poll() is not None:
            self._drop_log()
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)
                break
        self._drop_log()

    def _drop_log(self) -> None:
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reference_server(update_bytes: int = 900, busy_workers: int = 0) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "bench.reference_server", "--host", HOST, "--port", str(port),
            "--update-bytes", str(update_bytes), "--busy-workers", str(busy_workers)]  # fmt: skip
    return ServerProcess("reference", argv, port)


@contextlib.contextmanager
def gamesocket_server(database_url: str | None = None) -> Iterator[ServerProcess]:
    """`gamesocket serve` on a free port with a throwaway data dir (SQLite by default)."""
    command = gamesocket_command()
    if command is None:
        raise RuntimeError("the `gamesocket` command is not installed in this virtualenv")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-gamesocket-"))
    port = free_port()
    argv = [*command, "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
    env = dict(BENCH_SERVER_ENV)
    if database_url:
        env["DATABASE_URL"] = database_url
    try:
        with ServerProcess("gamesocket", argv, port, env) as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def migrate_command_available() -> bool:
    command = gamesocket_command()
    if command is None:
        return False
    probe = subprocess.run(
        [*command, "migrate", "--help"], cwd=PROJECT_ROOT, capture_output=True, timeout=60,
        check=False,
    )  # fmt: skip
    return probe.returncode == 0 and b"--bootstrap-local" in probe.stdout


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new database, migrated with `gamesocket migrate`; dropped afterwards."""
    name = f"gamesocket_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        command = gamesocket_command()
        assert command is not None
        migrate = await asyncio.to_thread(
            subprocess.run,
            [*command, "migrate", "--bootstrap-local", "--database-url", url],
            cwd=PROJECT_ROOT, capture_output=True, timeout=120, check=False, text=True,
        )  # fmt: skip
        if migrate.returncode != 0:
            raise RuntimeError(f"gamesocket migrate failed: {migrate.stderr[-2000:]}")
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def postgres_available() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True
