"""GAMESOCKET_CORS_ORIGINS against a real server: CORS headers for REST and static files,
and the `Origin` check of game sockets (close 4403 for a page the list does not allow).

The last test is the real thing: headless Chromium on a page of another origin imports
gamesocket.js, calls the REST API and opens a socket; from an origin not on the list
all three are refused by the browser or the server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from socket_server.settings import Settings
from tests.conftest import require
from tests.server_harness import Api, Client, ServerThread, free_port

ALLOWED = "https://play.example"
FOREIGN = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def cors_server(start_server: Callable[..., ServerThread]) -> ServerThread:
    return start_server(cors_origins=(ALLOWED, "http://localhost:3000"))


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESOCKET_CORS_ORIGINS", " https://a.example, ,http://b.example:8080 ")
    assert Settings.from_env().cors_origins == ("https://a.example", "http://b.example:8080")
    monkeypatch.delenv("GAMESOCKET_CORS_ORIGINS")
    assert Settings.from_env().cors_origins == ()


async def test_preflight_from_an_allowed_origin_gets_the_headers(cors_server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=cors_server.base_url) as http:
        reply = await http.options("/api/games", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert reply.status_code in (200, 204), reply.text
    assert reply.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in reply.headers["access-control-allow-methods"]
    allowed_headers = reply.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


async def test_preflight_from_a_foreign_origin_gets_no_headers(cors_server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=cors_server.base_url) as http:
        reply = await http.options("/api/games", headers={"Origin": FOREIGN, **PREFLIGHT})
    assert "access-control-allow-origin" not in reply.headers
    assert reply.status_code >= 400


async def test_simple_requests_carry_the_header_for_allowed_origins_only(
    cors_server: ServerThread,
) -> None:
    api = Api(cors_server.base_url)
    try:
        guest = await api.guest()
        game = await api.create(guest, "tictactoe", seats={"x": "me"})
        for path in ("/api/games", f"/api/games/{game['game_id']}", "/health"):
            allowed = await api.http.get(path, headers={"Origin": ALLOWED})
            assert allowed.status_code == 200, path
            assert allowed.headers["access-control-allow-origin"] == ALLOWED, path
            foreign = await api.http.get(path, headers={"Origin": FOREIGN})
            assert foreign.status_code == 200, path  # CORS is the browser's to enforce
            assert "access-control-allow-origin" not in foreign.headers, path
        # An error answer is readable by the allowed page too.
        missing = await api.http.get("/api/games/nope", headers={"Origin": ALLOWED})
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == ALLOWED
    finally:
        await api.close()


async def test_gamesocket_js_is_served_cross_origin(cors_server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=cors_server.base_url) as http:
        allowed = await http.get("/gamesocket.js", headers={"Origin": ALLOWED})
        foreign = await http.get("/gamesocket.js", headers={"Origin": FOREIGN})
    assert allowed.status_code == 200
    assert "javascript" in allowed.headers["content-type"]
    assert "export" in allowed.text
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-origin" not in foreign.headers


async def test_without_the_setting_there_are_no_cors_headers(server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        simple = await http.get("/api/games", headers={"Origin": ALLOWED})
        preflight = await http.options("/api/games", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_a_star_allows_every_origin(start_server: Callable[..., ServerThread]) -> None:
    running = start_server(cors_origins=("*",))
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        reply = await http.get("/api/games", headers={"Origin": FOREIGN})
        preflight = await http.options("/api/games", headers={"Origin": FOREIGN, **PREFLIGHT})
    assert reply.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-origin"] == "*"
    game_id = await _public_game(running)
    client = await _connect(running.ws_url("tictactoe", game_id), origin=FOREIGN)
    assert (await client.recv())["type"] == "hello"
    await client.connection.close()


async def _public_game(running: ServerThread) -> str:
    api = Api(running.base_url)
    try:
        guest = await api.guest()
        game = await api.create(guest, "tictactoe", seats={"x": "me"})
        return str(game["game_id"])
    finally:
        await api.close()


async def _connect(url: str, origin: str | None) -> Client:
    connection = await websockets.connect(
        url,
        origin=websockets.Origin(origin) if origin else None,
        max_size=None,
        compression=None,
    )
    return Client(connection)


async def test_a_socket_from_a_foreign_origin_is_refused(cors_server: ServerThread) -> None:
    game_id = await _public_game(cors_server)
    url = cors_server.ws_url("tictactoe", game_id)
    refused = await _connect(url, origin=FOREIGN)
    assert await refused.closed_with() == 4403
    assert refused.seen == []  # not even a hello
    # The listed origins, the server's own page, and a bot that sends no Origin: let in.
    own_page = f"http://127.0.0.1:{cors_server.settings.port}"
    for origin in (ALLOWED, "http://localhost:3000", own_page, None):
        client = await _connect(url, origin=origin)
        hello = await client.recv()
        assert hello["type"] == "hello", origin
        assert hello["you"]["role"] == "spectator"
        assert (await client.recv())["type"] == "state"
        await client.connection.close()


async def test_without_the_setting_sockets_are_not_checked(server: ServerThread) -> None:
    game_id = await _public_game(server)
    client = await _connect(server.ws_url("tictactoe", game_id), origin=FOREIGN)
    assert (await client.recv())["type"] == "hello"
    await client.connection.close()


# -- a real browser on a page of another origin ---------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
PAGE = b"<!doctype html><html><head><title>another origin</title></head><body></body></html>"
# Runs in the page: import the client module; sign in and create a game; watch a game.
SCRIPT = """async ([base, gameId]) => {
  const outcome = {};
  try {
    const module = await import(base + "/gamesocket.js");
    outcome.exports = Object.keys(module).length;
  } catch (error) { outcome.importError = String(error); }
  try {
    const guest = await (await fetch(base + "/api/auth/guest", {method: "POST"})).json();
    const reply = await fetch(base + "/api/games", {
      method: "POST",
      headers: {"Authorization": "Bearer " + guest.access_token,
                "Content-Type": "application/json"},
      body: JSON.stringify({game_type: "tictactoe", seats: {x: "me"}}),
    });
    outcome.created = reply.status;
  } catch (error) { outcome.fetchError = String(error); }
  outcome.socket = await new Promise((resolve) => {
    const socket = new WebSocket(base.replace("http", "ws") + "/ws/tictactoe/" + gameId);
    socket.onmessage = (event) => { resolve(JSON.parse(event.data).type); socket.close(); };
    socket.onclose = (event) => resolve("closed " + event.code);
  });
  return outcome;
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def page_origin() -> Iterator[str]:
    """A tiny web server of another origin (another port) serving an empty page."""
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.browser
def test_a_page_of_another_origin_in_chromium(start_server: Callable[..., ServerThread]) -> None:
    require(CHROMIUM.exists(), "chromium")
    from playwright.sync_api import sync_playwright

    with page_origin() as allowed, page_origin() as foreign:
        running = start_server(cors_origins=(allowed,))
        game_id = asyncio.run(_public_game(running))
        outcomes = _visit(sync_playwright, (allowed, foreign), running.base_url, game_id)
    assert outcomes[allowed]["exports"] > 0, outcomes[allowed]
    assert outcomes[allowed]["created"] == 201, outcomes[allowed]
    assert outcomes[allowed]["socket"] == "hello", outcomes[allowed]
    assert "importError" in outcomes[foreign], outcomes[foreign]
    assert "fetchError" in outcomes[foreign], outcomes[foreign]
    assert outcomes[foreign]["socket"] == "closed 4403", outcomes[foreign]


def _visit(
    playwright_api: Any, origins: tuple[str, ...], base: str, game_id: str
) -> dict[str, Any]:
    """What SCRIPT finds on a page of each origin."""
    outcomes = {}
    with playwright_api() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for origin in origins:
                page = browser.new_page()
                page.goto(origin + "/")
                outcomes[origin] = page.evaluate(SCRIPT, [base, game_id])
                page.close()
        finally:
            browser.close()
    return outcomes
