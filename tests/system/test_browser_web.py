"""The web page in headless Chromium against a real `gamesocket serve` on a free port.

Every scenario clicks and drags like a person would, then checks what the page shows
against what the server says over REST. Screenshots of each board go to
test-artifacts/; with GAMESOCKET_DOC_SCREENSHOTS=1 the README's images in docs/img/
are refreshed from the same runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, require
from tests.server_harness import ServerProcess, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
DOC_IMAGES = PROJECT_ROOT / "docs" / "img"
VIEWPORT = {"width": 1180, "height": 820}
# Environment variables that would move the server off embedded mode (the harness sets
# DATABASE_URL itself).
NON_EMBEDDED_ENV = (
    "REDIS_URL",
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWT_SECRET",
)


class WebServer(ServerProcess):
    """The harness's `gamesocket serve` subprocess: embedded mode unless `env` says else."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        super().__init__(data_dir, f"sqlite:///{data_dir / 'gamesocket.sqlite3'}")
        for name in NON_EMBEDDED_ENV:
            self.env.pop(name, None)
        self.env.update(env)

    def shut_down(self) -> None:
        """SIGTERM: the server closes every socket with 1001, as in a deploy."""
        self.signal(signal.SIGTERM)

    def get(self, path: str, token: str) -> Any:
        reply = httpx.get(self.base_url + path, headers={"Authorization": f"Bearer {token}"})
        reply.raise_for_status()
        return reply.json()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    require(CHROMIUM.exists(), "chromium")
    process = WebServer(tmp_path_factory.mktemp("gamesocket-browser"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(web_server: WebServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, web_server: WebServer) -> Iterator[Any]:
    """Open the lobby in a fresh browser context (its own guest account) per call."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(path: str = "/") -> Any:
        context = browser.new_context(viewport=VIEWPORT, base_url=web_server.base_url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: dialog.accept())
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path)
        page.wait_for_selector("body[data-ready='true']")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def screenshot(page: Any, name: str, *, doc: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if doc and os.environ.get("GAMESOCKET_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{name}.png")


def token_of(page: Any) -> str:
    return str(page.evaluate("JSON.parse(localStorage.getItem('gamesocket.guest')).access_token"))


def create_game(page: Any, game_type: str, opponent: str, **fields: str) -> str:
    """Fill the lobby's form and create; returns the new game's id from the route."""
    page.select_option("#new-game-type", game_type)
    page.select_option("#new-opponent", opponent)
    if "side" in fields:
        page.select_option("#new-side", fields["side"])
    if "level" in fields:
        page.fill("#new-level", fields["level"])
    if "level2" in fields:
        page.fill("#new-level-2", fields["level2"])
    if "speed" in fields:
        page.select_option("#new-speed", fields["speed"])
    if "fen" in fields:
        page.click("#new-advanced summary")
        page.fill("#new-fen", fields["fen"])
    page.click("#create-game")
    page.wait_for_url(re.compile(rf"#/game/{game_type}/"))
    page.wait_for_selector("#connection[data-state='open']")
    return str(page.url.rsplit("/", 1)[1])


def version_of(page: Any) -> int:
    return int(page.get_attribute("#board", "data-version"))


def wait_version_above(page: Any, version: int) -> None:
    page.wait_for_function(
        "v => Number(document.querySelector('#board').dataset.version) > v", arg=version
    )


def record_versions(page: Any) -> None:
    """Collect every snapshot version the page's client hands to the page."""
    page.evaluate(
        "() => { window.seenVersions = [];"
        " window.gamesocketApp.client.onState(s => window.seenVersions.push(s.version)); }"
    )


def connect4_cells(page: Any) -> list[list[str | None]]:
    """The colours the page shows, rows top first, like the protocol's `cells`."""
    return page.evaluate(
        """() => [...Array(6).keys()].map(r => [...Array(7).keys()].map(c => {
            const cls = document.querySelector(`[data-row="${r}"][data-col="${c}"]`).classList;
            return cls.contains("red") ? "red" : cls.contains("yellow") ? "yellow" : null;
        }))"""
    )


def test_tictactoe_against_the_ai_to_the_end(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "tictactoe", "ai", side="x", level="10")
    page.wait_for_selector("#board[data-my-turn='true']")
    record_versions(page)
    # The first move is sent and the socket dropped in the same tick: the client must
    # resend it after reconnecting, and the server must apply it exactly once.
    first = page.evaluate(
        """async () => {
            const client = window.gamesocketApp.client;
            const version = client.version;
            const pending = client.move(4, { version });
            client.dropConnection();
            return { version, ack: await pending };
        }"""
    )
    assert first["ack"]["version"] == first["version"] + 1
    while True:
        page.wait_for_function(
            "() => document.querySelector('#board').dataset.myTurn === 'true'"
            " || document.querySelector('#status').dataset.status === 'finished'"
        )
        if page.get_attribute("#status", "data-status") == "finished":
            break
        before = version_of(page)
        page.click("[data-cell]:not([disabled])")
        wait_version_above(page, before)

    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    marks = [page.get_attribute(f"[data-cell='{i}']", "data-mark") or None for i in range(9)]
    assert marks == snapshot["board"]["cells"]
    assert marks[4] == "x"
    # Level 10 plays perfectly: the page's naive clicking can at best draw.
    assert snapshot["result"]["winner"] in (None, "o")
    status = page.inner_text("#status")
    assert ("Draw" in status) if snapshot["result"]["winner"] is None else ("You lose" in status)
    if snapshot["result"]["winner"] == "o":
        assert page.locator(".ttt-cell.win").count() == 3
    log = web_server.get(f"/api/games/{game_id}/moves", token_of(page))
    assert [entry["move"] for entry in log if entry.get("seat") == "x"].count(4) == 1
    seen = page.evaluate("window.seenVersions")
    assert seen == list(range(seen[0], snapshot["version"] + 1)), seen
    assert page.locator("#moves li").count() == snapshot["moves"] == len(log)
    assert page.inner_text("#moves li:first-child") == "X: row 2, column 2"
    screenshot(page, "tictactoe")


def test_chess_between_two_browsers_with_promotions(web_server: WebServer, new_page: Any) -> None:
    # White promotes with check at once; Black answers and under-promotes two moves later.
    white = new_page()
    game_id = create_game(
        white, "chess", "friend", side="white", fen="4k3/P7/8/8/8/8/7p/4K3 w - - 0 1"
    )
    white.wait_for_selector("#status[data-status='waiting']")
    link = white.input_value("#share-link")
    assert link.endswith(f"#/game/chess/{game_id}")

    black = new_page()
    black.goto(link)
    black.click(".join-seat[data-seat='black']")
    white.wait_for_selector("#status[data-status='active'][data-turn='white']")
    assert black.get_attribute(".chess-board", "data-orientation") == "black"

    # Click-to-move with the legal-move hints, then the promotion dialog.
    white.click("[data-square='a7']")
    assert white.locator(".square.target").count() == 1
    white.click("[data-square='a8']")
    white.wait_for_selector("#promotion[open]")
    white.click("#promotion [data-piece='q']")
    black.wait_for_selector("#moves[data-count='1']")
    assert black.get_attribute("[data-square='e8']", "class").split().count("check") == 1
    assert black.get_attribute("[data-square='a8']", "data-piece") == "wQ"

    # Drag to move.
    black.drag_and_drop("[data-square='e8'] .piece", "[data-square='e7']")
    white.wait_for_selector("#moves[data-count='2']")
    white.click("[data-square='e1']")
    white.click("[data-square='d2']")
    black.wait_for_selector("#moves[data-count='3']")
    black.drag_and_drop("[data-square='h2'] .piece", "[data-square='h1']")
    black.wait_for_selector("#promotion[open]")
    black.click("#promotion [data-piece='n']")
    white.wait_for_selector("#moves[data-count='4']")

    assert white.get_attribute("[data-square='h1']", "data-piece") == "bN"
    sans = white.locator("#moves [data-ply]").all_inner_texts()
    assert sans == ["a8=Q+", "Ke7", "Kd2", "h1=N"]
    log = web_server.get(f"/api/games/{game_id}/moves", token_of(white))
    assert [entry["move"] for entry in log if entry.get("move")][-4:] == [
        "a7a8q",
        "e8e7",
        "e1d2",
        "h2h1n",
    ]
    assert white.get_attribute("#status", "data-turn") == "white"
    screenshot(white, "chess-promotion")
    screenshot(black, "chess-promotion-black")

    # A draw offer: declined once, then offered again and accepted.
    white.click("#offer-draw")
    black.click("#decline-draw")
    white.wait_for_selector("#message[data-code='draw_declined']")
    assert black.is_hidden("#draw-offer")
    white.click("#offer-draw")
    black.click("#accept-draw")
    for page in (white, black):
        page.wait_for_selector("#status[data-status='finished'][data-reason='draw_agreed']")
        assert page.inner_text("#status") == "Draw: agreed."
        assert page.is_hidden("#offer-draw")


def test_watch_ai_against_ai_connect4_with_drops(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "connect4", "aivsai", level="2", level2="3", speed="150")
    record_versions(page)
    # Fast searches report just before their move lands: count what the page showed.
    page.wait_for_function("() => Number(document.querySelector('#thinking').dataset.count) >= 3")
    assert page.is_visible("#thinking")
    assert int(page.get_attribute("#thinking", "data-depth")) >= 1
    assert page.inner_text("#thinking-pv").strip() != ""

    # The lobby lists the running game; a second spectator follows its Watch link and
    # shows up in the first one's presence count.
    other = new_page()
    row = other.locator(f"#games tr[data-game-id='{game_id}']")
    row.wait_for()
    assert "AI 2" in row.inner_text() and "AI 3" in row.inner_text()
    screenshot(other, "lobby-watch")
    row.locator("a.watch-link").click()
    other.wait_for_selector("#connection[data-state='open']")
    assert other.locator(".join-seat").count() == 0
    page.wait_for_function(
        "() => Number(document.querySelector('#presence').dataset.spectators) >= 2"
    )
    other.close()

    # Drop the socket twice mid-game: the page must say so, then resume from `since`.
    for _ in range(2):
        wait_version_above(page, version_of(page) + 1)
        page.evaluate("window.gamesocketApp.client.dropConnection()")
        page.wait_for_selector("#connection[data-state='reconnecting']")
        page.wait_for_selector("#connection[data-state='open']")

    page.wait_for_selector("#status[data-status='finished']", timeout=90_000)
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    seen = page.evaluate("window.seenVersions")
    assert seen == list(range(seen[0], snapshot["version"] + 1)), seen
    assert connect4_cells(page) == snapshot["board"]["cells"]
    winner = snapshot["result"]["winner"]
    wins = page.locator(".c4-cell.win")
    if winner is None:
        assert wins.count() == 0
    else:
        assert wins.count() >= 4
        classes = wins.evaluate_all("cells => cells.map(c => c.className.split(' '))")
        assert all(winner in names for names in classes)
    screenshot(page, "connect4")


def test_chess_against_the_ai_with_hints_and_thinking(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "chess", "ai", side="black", level="2")
    assert page.get_attribute(".chess-board", "data-orientation") == "black"
    assert "dark" in page.get_attribute("[data-square='a1']", "class").split()
    assert "light" in page.get_attribute("[data-square='h1']", "class").split()
    record_versions(page)
    page.wait_for_selector("#board[data-my-turn='true']")  # the AI opened as White
    page.drag_and_drop("[data-square='e7'] .piece", "[data-square='e5']")
    page.wait_for_selector("#moves[data-count='3']")
    # "Let the AI play this move": the server's AI plays Black's second move.
    page.click("#ai-move")
    page.wait_for_selector("#moves[data-count='5']")
    page.wait_for_selector("#board[data-my-turn='true']")
    assert page.is_visible("#thinking")
    assert int(page.get_attribute("#thinking", "data-count")) >= 2
    # Hints for the knight on g8: exactly its legal targets.
    page.click("[data-square='g8']")
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    expected = sorted(m[2:4] for m in snapshot["legal_moves"] if m.startswith("g8"))
    shown = page.locator(".square.target").evaluate_all("els => els.map(e => e.dataset.square)")
    assert sorted(shown) == expected
    sans = page.locator("#moves [data-ply]").all_inner_texts()
    assert sans == snapshot["board"]["san"]
    assert sans[1] == "e5"
    seen = page.evaluate("window.seenVersions")
    assert seen == list(range(seen[0], snapshot["version"] + 1)), seen
    screenshot(page, "chess", doc=True)


def test_connect4_by_clicking_columns(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "connect4", "ai", side="red", level="1")
    for _ in range(3):
        page.wait_for_selector("#board[data-my-turn='true']")
        before = version_of(page)
        page.click("[data-column='3']")
        page.wait_for_selector(f"#board[data-my-turn='true'][data-version='{before + 2}']")
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    assert connect4_cells(page) == snapshot["board"]["cells"]
    column = [row[3] for row in snapshot["board"]["cells"]]
    assert column.count("red") == 3  # each click dropped a red disc into column 4
    assert page.locator("#moves li").count() == snapshot["moves"] == 6
    assert page.inner_text("#moves li:first-child") == "Red: column 4"

    # Back to the lobby and into the game again from its list: the page starts clean.
    page.click(".brand")
    page.wait_for_selector("#connection[data-state='idle']", state="attached")
    page.locator(f"#games tr[data-game-id='{game_id}'] a").click()
    page.wait_for_selector("#board[data-my-turn='true']")
    # The move list of a re-entered game comes from a REST read after the board renders.
    page.wait_for_function("document.querySelectorAll('#moves li').length === 6")
    assert connect4_cells(page) == snapshot["board"]["cells"]


def test_page_survives_a_server_restart(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "tictactoe", "ai", side="x", level="1")
    page.wait_for_selector("#board[data-my-turn='true']")
    start = version_of(page)
    page.click("[data-cell='0']")
    page.wait_for_selector(f"#board[data-my-turn='true'][data-version='{start + 2}']")

    web_server.shut_down()
    page.wait_for_selector("#connection[data-state='reconnecting']")
    assert "Reconnecting" in page.inner_text("#connection")
    web_server.start()
    page.wait_for_selector("#connection[data-state='open']", timeout=30_000)

    page.click("[data-cell]:not([disabled])")
    page.wait_for_selector(f"#board[data-version='{start + 4}']")
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    assert snapshot["version"] == start + 4
    marks = [page.get_attribute(f"[data-cell='{i}']", "data-mark") or None for i in range(9)]
    assert marks == snapshot["board"]["cells"]

    page.click("#resign")  # the fixture accepts the confirmation dialog
    page.wait_for_selector("#status[data-status='finished'][data-reason='resignation']")
    assert page.inner_text("#status") == "You lose: O wins by resignation."
    assert page.is_hidden("#resign")


def test_lobby_lists_public_games_only(new_page: Any) -> None:
    owner = new_page()
    public_id = create_game(owner, "tictactoe", "friend", side="x")
    owner.click(".brand")
    owner.uncheck("#new-public")
    private_id = create_game(owner, "chess", "friend", side="white")

    stranger = new_page()
    stranger.wait_for_selector("#games[data-count]")
    assert stranger.locator(f"#games tr[data-game-id='{private_id}']").count() == 0
    row = stranger.locator(f"#games tr[data-game-id='{public_id}']")
    assert "X: player · O: open" in row.inner_text()
    screenshot(stranger, "lobby", doc=True)
    # The private game's link gets the 4403 message; the public one's Join link a seat.
    stranger.goto(f"/#/game/chess/{private_id}")
    stranger.wait_for_selector("#connection[data-state='closed']")
    assert stranger.get_attribute("#connection", "data-close-code") == "4403"
    assert "private" in stranger.inner_text("#message")
    stranger.goto("/#/")
    stranger.locator(f"#games tr[data-game-id='{public_id}'] a.join-link").click()
    stranger.click(".join-seat[data-seat='o']")
    owner.goto(f"/#/game/tictactoe/{public_id}")
    owner.wait_for_selector("#status[data-status='active'][data-turn='x']")
    assert owner.inner_text("#status") == "Your move (x)."
    # Before the first move either player may call the game off.
    stranger.click("#abort")  # the fixture accepts the confirmation dialog
    owner.wait_for_selector("#status[data-status='aborted']")
    assert owner.inner_text("#status") == "The game was aborted."
    assert owner.locator("[data-cell]:not([disabled])").count() == 0


def test_a_refused_token_is_replaced(web_server: WebServer, browser: Any) -> None:
    guest = httpx.post(web_server.base_url + "/api/auth/guest", json={}).json()
    game = httpx.post(
        web_server.base_url + "/api/games",
        json={"game_type": "chess", "seats": {"white": "me"}},
        headers={"Authorization": f"Bearer {guest['access_token']}"},
    ).json()
    context = browser.new_context(viewport=VIEWPORT, base_url=web_server.base_url)
    bogus = {
        "access_token": "not-a-token",
        "user_id": "nobody",
        "expires_at": "2999-01-01T00:00:00Z",
    }
    context.add_init_script(f"localStorage.setItem('gamesocket.guest', '{json.dumps(bogus)}')")
    try:
        page = context.new_page()
        # Chess opens no REST call: the socket is refused with 4401, the page gets a
        # new guest token and connects again.
        page.goto(f"/#/game/chess/{game['game_id']}")
        page.wait_for_selector("#connection[data-state='open']")
        token = token_of(page)
        assert token != "not-a-token"
        assert web_server.get(f"/api/games/{game['game_id']}", token)["version"] == game["version"]
        assert page.locator(".join-seat[data-seat='black']").count() == 1
    finally:
        context.close()


def test_unknown_game_gets_a_clear_message(new_page: Any) -> None:
    page = new_page("/#/game/chess/00000000-0000-4000-8000-000000000000")
    page.wait_for_selector("#connection[data-state='closed']")
    assert page.get_attribute("#connection", "data-close-code") == "4404"
    assert "no such game" in page.inner_text("#message")


def test_supabase_mode_signs_in_through_supabase_js(browser: Any, tmp_path: Path) -> None:
    # Nothing listens on this Supabase address: the vendored supabase-js loads, its
    # anonymous sign-in fails, and the page offers the email sign-in instead.
    supabase_url = f"http://127.0.0.1:{free_port()}"
    process = WebServer(tmp_path, SUPABASE_URL=supabase_url, SUPABASE_ANON_KEY="anon-key")
    process.start()
    context = browser.new_context(viewport=VIEWPORT, base_url=process.base_url)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/")
        page.wait_for_selector("#signin", timeout=30_000)
        assert page.evaluate("typeof window.supabase.createClient") == "function"
        assert "Anonymous sign-in is not available" in page.inner_text("#signin-status")
        assert page.is_hidden("#lobby")
        assert errors == []
    finally:
        context.close()
        process.stop()
