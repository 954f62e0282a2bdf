"""`gamesocket` as a user runs it: help, version, `serve --app`, JSON logs, no tokens in logs.

Every server here is a real `gamesocket serve` subprocess (the console script next to
this Python, as `make serve` runs it) with its stderr in a file, stopped with SIGTERM
so that the lines its log thread still holds are written too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
from prometheus_client import CONTENT_TYPE_LATEST

from socket_server.settings import ENVIRONMENT
from tests.server_harness import PROJECT_ROOT, Api, ServerThread, connect, free_port, ws_url

CONSOLE_SCRIPT = Path(sys.executable).with_name("gamesocket")
# Every variable the server reads: none may leak in from the environment of the run.
SERVER_VARIABLES = {name for name, _ in ENVIRONMENT}


def gamesocket_command() -> list[str]:
    """The installed `gamesocket` script; the module where the checkout is not installed."""
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "socket_server.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), **extra}


def gamesocket(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gamesocket_command(), *args],
        cwd=PROJECT_ROOT,
        env=environment(**extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class Served:
    """`gamesocket serve` on a free port, its stderr in `log_path`."""

    def __init__(self, tmp_path: Path, *flags: str, cwd: Path = PROJECT_ROOT, **env: str):
        self.port = free_port()
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.command = [*gamesocket_command(), "serve", "--host", "127.0.0.1"]
        self.command += ["--port", str(self.port), "--data-dir", str(tmp_path / "data"), *flags]
        self.cwd = cwd
        self.env = environment(**env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Served:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"no /health answer: {self.log_path.read_text()}")

    def stop(self) -> str:
        """SIGTERM, wait for the exit; the whole log."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.log_path.read_text()


# -- help and version -------------------------------------------------------------------


def test_help_is_plain_text_and_the_version_is_the_installed_one() -> None:
    top = gamesocket("--help")
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("usage: gamesocket ")
    assert "gamesocket, the multiplayer game-state server." in top.stdout
    assert "serve" in top.stdout and "migrate" in top.stdout
    assert "`" not in top.stdout  # no Markdown

    shown = gamesocket("--version")
    assert shown.returncode == 0
    assert shown.stdout == f"gamesocket {version('gamesocket')}\n"


def test_serve_help_explains_its_flags_and_lists_the_environment() -> None:
    done = gamesocket("serve", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "`" not in text
    assert "--app MODULE:ATTR" in text and "GameSocketFactory().create_socket" in text
    # --log-level has its own help now, not just its choices.
    level = text[text.index("\n  --log-level {debug,info,warning}") + 1 :].split("\n  --")[0]
    assert "uvicorn" in level and "default info" in level
    environment_part = text[text.index("environment variables") :]
    for name, _ in ENVIRONMENT:
        assert f"\n  {name} " in environment_part, name
    assert "GAMESOCKET_LOG_FORMAT" in environment_part


def test_serve_refuses_what_it_cannot_use_before_it_starts() -> None:
    missing = gamesocket("serve", "--app", "gamesocket_test_no_such_module:mount")
    assert missing.returncode == 2
    assert "there is no module 'gamesocket_test_no_such_module'" in missing.stderr
    assert "Traceback" not in missing.stderr

    shapeless = gamesocket("serve", "--app", "json")
    assert shapeless.returncode == 2 and "MODULE:ATTR" in shapeless.stderr

    not_a_function = gamesocket("serve", "--app", "json:decoder")
    assert not_a_function.returncode == 2 and "must be a function" in not_a_function.stderr

    log_format = gamesocket("serve", GAMESOCKET_LOG_FORMAT="xml")
    assert log_format.returncode == 2
    assert "GAMESOCKET_LOG_FORMAT" in log_format.stderr and "'xml'" in log_format.stderr


# -- serve --app ------------------------------------------------------------------------

# A user's game in a folder of their own: the rules, an AI whose search runs in the
# search pool's (spawned) worker processes, and the function `--app` names. No launcher
# script and no `if __name__ == "__main__":` anywhere.
NIM_GAME = '''
import logging
import os
from typing import Any, ClassVar

from agents.base import SearchInfo, SearchLimit
from agents.pool import PooledAgent
from games import GameResult, GameState, IllegalMove
from socket_server.factory import GameSocketFactory


class NimState(GameState):
    game_type: ClassVar[str] = "nim"
    seats: ClassVar[tuple[str, ...]] = ("first", "second")
    stones: int = 7

    @classmethod
    def initial(cls, options=None):
        rules = cls._check_option_keys(options, known={"stones"})
        return cls(stones=int(rules.get("stones", 7)))

    def legal_moves(self):
        return [] if self.result else [n for n in (1, 2, 3) if n <= self.stones]

    def parse_move(self, raw: Any) -> int:
        self._require_active()
        if not isinstance(raw, int) or raw not in self.legal_moves():
            raise IllegalMove(f"take 1..{min(3, self.stones)} stones, not {raw!r}")
        return raw

    def board(self):
        return {"stones": self.stones}

    def apply(self, move):
        taken = self.parse_move(move)
        left = self.stones - taken
        result = GameResult(winner=self.turn, reason="board_full") if left == 0 else None
        return self.model_copy(
            update={"stones": left, "history": (*self.history, taken), "result": result}
        )


def search(ctx, stones):
    """Runs in a worker process: leaves a multiple of four when it can."""
    with open(os.environ["NIM_SEARCH_PIDS"], "a") as pids:
        pids.write(f"{os.getpid()}\\n")
    take = stones % 4 or 1
    return take, SearchInfo(depth=1, score=1 if stones % 4 else -1, pv=[take], nodes=1)


class NimAgent(PooledAgent):
    game_type: ClassVar[str] = "nim"

    def default_limit(self):
        return SearchLimit(depth=1)

    def job(self, state, limit):
        return search, (state.stones,)


def mount(app):
    GameSocketFactory().create_socket(app, NimAgent, NimState, "/ws/nim")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("nim_game").exception("nim mounted; here is a traceback")
'''


async def test_serve_app_mounts_a_game_whose_ai_searches_in_worker_processes(
    tmp_path: Path,
) -> None:
    games = tmp_path / "my-games"
    games.mkdir()
    (games / "nim_game.py").write_text(NIM_GAME)
    pids = tmp_path / "search-pids"
    served = Served(
        tmp_path,
        "--app",
        "nim_game:mount",
        cwd=games,  # found in the current directory, as a user would run it
        NIM_SEARCH_PIDS=str(pids),
        GAMESOCKET_LOG_FORMAT="json",
    )
    await asyncio.to_thread(served.start)
    api = Api(served.base_url)
    try:
        user = await api.guest()
        ai = {"kind": "ai", "level": 1}
        game = await api.create(user, "nim", seats={"first": "me", "second": ai})
        assert game["board"] == {"stones": 7}
        url = ws_url(served.port, "nim", game["game_id"], token=user["access_token"])
        player = await connect(url)
        await player.expect("state")
        assert (await player.request(type="move", move=3, id="m1"))["version"] == 1
        update = await player.expect("update")
        while update["event"]["seat"] != "second":
            update = await player.expect("update")
        assert update["board"] == {"stones": 3}  # from 4 the AI can only take 1
        await player.connection.close()
    finally:
        await api.close()
        log = await asyncio.to_thread(served.stop)
    # Ended by the SIGTERM it got, after a graceful shutdown.
    assert served.process is not None and served.process.returncode == -signal.SIGTERM, log
    # The search ran in a worker process that imported nim_game from the user's folder.
    searched_in = {int(pid) for pid in pids.read_text().split()}
    assert searched_in and served.process.pid not in searched_in

    # GAMESOCKET_LOG_FORMAT=json: every line one JSON object, the last ones too.
    lines = [json.loads(line) for line in log.splitlines()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines), log
    mounted = next(line for line in lines if line["logger"] == "nim_game")
    assert mounted["level"] == "ERROR" and mounted["message"] == "nim mounted; here is a traceback"
    assert mounted["exception"].startswith("Traceback (most recent call last):")
    assert mounted["exception"].endswith("RuntimeError: boom")
    assert all("exception" not in line for line in lines if line is not mounted)
    assert any(line["message"] == "server stopped" for line in lines), log


# -- no token in any log line -----------------------------------------------------------


async def _use_a_token_everywhere(served: Served) -> tuple[str, str]:
    """Sign in, then send the token in a query string, a header and a socket URL."""
    api = Api(served.base_url)
    try:
        user = await api.guest()
        token: str = user["access_token"]
        listed = await api.http.get(f"/api/games?token={token}&limit=5", headers=user["headers"])
        assert listed.status_code == 200
        game = await api.create(user, "tictactoe", seats={"x": "me"})
        player = await connect(ws_url(served.port, "tictactoe", game["game_id"], token=token))
        await player.expect("state")
        await player.connection.close()
        refused = await api.http.get("/api/games/not-a-game", headers={"Authorization": "Bearer x"})
        assert refused.status_code in (401, 404)
        return token, game["game_id"]
    finally:
        await api.close()


async def test_access_tokens_never_reach_the_log(tmp_path: Path) -> None:
    # --log-level info: uvicorn writes its access and handshake lines, with the queries.
    text = Served(tmp_path / "text", "--log-level", "info")
    as_json = Served(tmp_path / "json", "--log-level", "info", GAMESOCKET_LOG_FORMAT="json")
    for served in (text, as_json):
        served.log_path.parent.mkdir()
        await asyncio.to_thread(served.start)
        try:
            token, game_id = await _use_a_token_everywhere(served)
        finally:
            log = await asyncio.to_thread(served.stop)
        assert token not in log
        assert token.split(".")[2] not in log  # not even the signature alone
        # The lines were written, with the token's place marked.
        assert "GET /api/games?token=[redacted]&limit=5 HTTP/1.1" in log, log
        assert f"WebSocket /ws/tictactoe/{game_id}?token=[redacted]" in log, log
        assert sum("token=[redacted]" in line for line in log.splitlines()) >= 2, log
    assert all(json.loads(line) for line in as_json.log_path.read_text().splitlines())


# -- /metrics ---------------------------------------------------------------------------


async def test_metrics_has_prometheus_content_type_and_answers_head(server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        got = await http.get("/metrics")
        head = await http.head("/metrics")
    assert got.status_code == 200 and got.text.startswith("# HELP")
    assert got.headers.get_list("content-type") == [CONTENT_TYPE_LATEST]
    assert head.status_code == 200 and head.content == b""
    assert head.headers.get_list("content-type") == [CONTENT_TYPE_LATEST]
    assert int(head.headers["content-length"]) > 0
