"""The JavaScript client package (clients/js) against a real server, from the Python suite.

`npm ci` installs the package's dev dependencies (the `ws` package and TypeScript) into
clients/js/node_modules once per lock file; then Node's own test runner runs
clients/js/test/ with the server's URL in GAMESOCKET_URL. Also here: the committed
gamesocket.d.ts equals the generator's output, and the web page serves the very same
module file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from types import ModuleType

from tests.conftest import PROJECT_ROOT, npm_ci, require
from tests.server_harness import ServerThread

PACKAGE = PROJECT_ROOT / "clients" / "js"
STATIC_COPY = PROJECT_ROOT / "socket_server" / "static" / "gamesocket.js"
# Node tests that must pass (not skip) against today's server.
REQUIRED_TESTS = (
    "REST helpers: sign in, create, list, get, join, moves, PGN; errors are GameSocketErrors",
    "connect as a player: hello, state, then a move resolves on its ack and arrives as an update",
    "a spectator: role spectator, presence of the player, no moves allowed",
    "errors reject the call with that ref; the socket stays open; unclaimed errors go to onError",
    "resume with since after a forced disconnect: the missed updates are replayed in order",
    "reconnects by itself after a drop, with a back-off that grows while the server is away",
    "a request whose answer was lost is resent with the same id after reconnecting, "
    "and applied once",
    "draw offers pass through as extension messages; accepting ends the game",
    "AI thinking and every update of an AI-vs-AI game, in version order, each once",
    "close codes: 4404 ends the connection for good and rejects what was waiting",
    "close codes: a refused token (4401) is replaced once through refreshToken",
    "the global WebSocket, or a clear error where there is none",
    "every export of gamesocket.js is declared in gamesocket.d.ts, and nothing else at run time",
    "package.json points at the module and its declarations",
    "a strict TypeScript compile of a typical use passes",
    "the lobby lists public waiting games and follows them as they come and go",
)
# Features of PROTOCOL.md the server may not serve yet: these tests skip until it does.
MAY_SKIP = ("chat, when the server has it, arrives as a chat message",)


def node_major() -> int:
    node = shutil.which("node")
    if node is None:
        return 0
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_types", PACKAGE / "scripts" / "gen-types.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tap_summary(output: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r"^# (\w+) (\d+)$", output, re.M)}


def tap_results(output: str) -> dict[str, str]:
    """Top-level test name -> "ok", "skip" or "not ok"."""
    results = {}
    for status, name, directive in re.findall(
        r"^(ok|not ok) \d+ - (.+?)(?: # (SKIP|TODO)\b.*)?$", output, re.M
    ):
        results[name] = "skip" if directive == "SKIP" else status
    return results


def test_node_tests_against_a_real_server(server: ServerThread) -> None:
    require(node_major() >= 20 and shutil.which("npm") is not None, "node 20+ and npm")
    npm_ci(PACKAGE)
    env = {**os.environ, "GAMESOCKET_URL": server.base_url}
    env.pop("NODE_OPTIONS", None)
    run = subprocess.run(
        ["node", "--test", "--test-reporter=tap", "test/"],
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = run.stdout + run.stderr
    summary = tap_summary(run.stdout)
    results = tap_results(run.stdout)
    assert run.returncode == 0, output[-6000:]
    assert summary["fail"] == 0, output[-6000:]
    assert summary.get("cancelled", 0) == 0, output[-6000:]
    for name in REQUIRED_TESTS:
        assert results.get(name) == "ok", f"{name!r}: {results.get(name)}\n{output[-4000:]}"
    unexpected = {
        name for name, status in results.items() if status == "skip" and name not in MAY_SKIP
    }
    assert unexpected == set(), unexpected
    assert summary["pass"] + summary["skipped"] == summary["tests"] == len(results)
    assert summary["pass"] >= len(REQUIRED_TESTS)


def test_type_declarations_are_the_generators_output() -> None:
    generator = load_generator()
    committed = (PACKAGE / "gamesocket.d.ts").read_text(encoding="utf-8")
    assert committed == generator.generate(), (
        "clients/js/gamesocket.d.ts is stale: run .venv/bin/python clients/js/scripts/gen-types.py"
    )


def test_type_declarations_cover_every_server_message() -> None:
    from socket_server import protocol

    generated = load_generator().generate()
    schemas = protocol.message_schemas()
    maps = {"client": "ClientMessages", "server": "ServerMessages"}
    for side, map_name in maps.items():
        block = re.search(rf"export interface {map_name} \{{\n(.*?)\n\}}", generated, re.S)
        assert block is not None
        tags = set(re.findall(r'^  "(\w+)":', block.group(1), re.M))
        assert set(schemas[side]) <= tags, set(schemas[side]) - tags


def test_the_web_page_serves_the_same_module() -> None:
    # One source: clients/js/gamesocket.js; the page's file is a link to it (a built
    # wheel holds the linked file's content).
    assert STATIC_COPY.is_symlink()
    assert STATIC_COPY.resolve() == (PACKAGE / "gamesocket.js").resolve()


def test_the_package_lock_is_committed_and_matches() -> None:
    lock = PACKAGE / "package-lock.json"
    assert lock.exists()
    text = lock.read_text()
    assert '"name": "gamesocket-client"' in text
    for dependency in ('"node_modules/ws"', '"node_modules/typescript"'):
        assert dependency in text


def test_the_generators_fallback_finds_the_same_messages() -> None:
    # Without `message_schemas()` the generator reads the tagged Structs of the module.
    from socket_server import protocol

    fallback = load_generator().schemas_from_structs(protocol)
    schemas = protocol.message_schemas()
    for side in ("client", "server"):
        assert sorted(fallback[side]) == sorted(schemas[side])
    assert set(schemas["$defs"]) <= set(fallback["$defs"])
