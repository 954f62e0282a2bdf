"""The bench's Node peers: Colyseus 0.18 and boardgame.io 0.50 serving connect4.

Each peer lives in `bench/peers/<peer>/`: `server.mjs` (the game server, written for
the bench on the peer's own server library), `clients.mjs` (players and spectators on
the peer's official client library) and a pinned `package.json`/`package-lock.json`.
Their `node_modules` are installed here on demand (`npm ci`, once per lock file), only
when a run asks for a peer target; nothing else in the project needs them.

The load runs in Node worker processes (`bench/peers/worker.mjs`), one JSON command a
line on stdin and one JSON reply a line on stdout, the same commands and replies as
`bench/workers.py` gives the Python targets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.targets import HOST, ServerProcess, free_port

PEERS = ("colyseus", "boardgameio")
PEERS_DIR = Path(__file__).resolve().parent / "peers"
STAMP = ".gamesocket-lock-sha256"
COMMAND_TIMEOUT = 300.0


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is not on PATH: the Node peers need Node 20+ and npm")
    return found


def install(peer: str) -> Path:
    """`npm ci` in the peer's folder unless its node_modules already matches the lock."""
    folder = PEERS_DIR / peer
    stamp = folder / "node_modules" / STAMP
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: cannot install the Node peers")
    print(f"[bench] npm ci for the {peer} peer ...", flush=True)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder, check=True,
        timeout=600,
    )  # fmt: skip
    stamp.write_text(digest)
    return folder


@contextlib.contextmanager
def peer_server(peer: str) -> Iterator[ServerProcess]:
    folder = install(peer)
    port = free_port()
    argv = [node(), str(folder / "server.mjs"), "--host", HOST, "--port", str(port)]
    with ServerProcess(peer, argv, port) as server:
        yield server


def read_reply(line: bytes) -> dict[str, Any]:
    """One worker reply; a worker's own failure (`{"error": ...}`) is raised here."""
    reply: dict[str, Any] = json.loads(line)
    if "error" in reply:
        raise RuntimeError(f"peer worker failed: {reply['error']}")
    return reply


class NodeWorker:
    """One `worker.mjs` process driving a peer through its client library."""

    def __init__(self, peer: str, base_url: str) -> None:
        adapter = PEERS_DIR / peer / "clients.mjs"
        self.process = subprocess.Popen(
            [node(), str(PEERS_DIR / "worker.mjs"), str(adapter), base_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            code = self.process.poll()
            raise TimeoutError(f"peer worker {self.process.pid} gave no reply (exit {code})")
        return read_reply(line)

    def call(self, command: dict[str, Any], timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        self.send(command)
        return self.reply(timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call({"cmd": "close"}, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def merge_collects(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' `collect` replies as one, shaped like `SpectatorPool.collect`'s."""
    arrivals: dict[int, list[int]] = {}
    for reply in replies:
        for version, times in reply["arrivals"].items():
            arrivals.setdefault(int(version), []).extend(times)
    counts = ("sockets", "complete", "gaps", "resyncs", "closed")
    totals = {key: sum(r[key] for r in replies) for key in counts}
    cpu = [r["cpu_seconds"] for r in replies]
    return {**totals, "worker_cpu_seconds": cpu, "arrivals": arrivals}


class NodePool:
    """k spectator workers plus one player worker for a peer (`SpectatorPool`'s part)."""

    def __init__(self, peer: str, base_url: str, spectator_workers: int) -> None:
        self.players = NodeWorker(peer, base_url)
        self.workers: list[NodeWorker] = []
        try:
            for _ in range(spectator_workers):
                self.workers.append(NodeWorker(peer, base_url))
        except BaseException:
            self.close()
            raise

    def _all(self, commands: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        for worker, command in zip(self.workers, commands, strict=True):
            worker.send(command)
        return [worker.reply(timeout) for worker in self.workers]

    def games(self, n: int, seats: int) -> list[str]:
        return list(self.players.call({"cmd": "games", "n": n, "seats": seats})["ids"])

    def connect(self, game_ids: list[str]) -> dict[str, Any]:
        k = len(self.workers)
        replies = self._all(
            [{"cmd": "spectate", "games": game_ids[i::k]} for i in range(k)], COMMAND_TIMEOUT
        )
        errors = [e for reply in replies for e in reply["errors"]]
        return {"open": sum(r["open"] for r in replies),
                "failed": sum(r["failed"] for r in replies), "errors": errors[:5]}  # fmt: skip

    def collect(self, last_version: int, timeout: float) -> dict[str, Any]:
        command = {"cmd": "collect", "last": last_version, "wait": timeout}
        return merge_collects(self._all([command] * len(self.workers), timeout + 60))

    def close(self) -> None:
        for worker in [*self.workers, self.players]:
            worker.stop()

    def __enter__(self) -> NodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_games(players: list[NodeWorker], games_each: list[int]) -> None:
    """Each worker opens its share of two-player games."""
    for worker, n in zip(players, games_each, strict=True):
        worker.send({"cmd": "games", "n": n, "seats": 2})
    for worker in players:
        worker.reply()


def race(players: list[NodeWorker], line: list[int]) -> dict[str, Any]:
    """All workers play `line` on all their games at once, each move sent as soon as
    the previous one is acknowledged."""
    for worker in players:
        worker.send({"cmd": "race", "line": line})
    replies = [worker.reply() for worker in players]
    return {
        "seconds": max(r["seconds"] for r in replies),
        "latencies": [ns for r in replies for ns in r["latencies"]],
        "finished": sum(r["finished"] for r in replies),
        "client_cpu_seconds": max(r["cpu_seconds"] for r in replies),
    }


def split(total: int, parts: int) -> list[int]:
    """`total` dealt over `parts` as evenly as possible (the first ones get the rest)."""
    base, rest = divmod(total, parts)
    return [base + (i < rest) for i in range(parts)]
