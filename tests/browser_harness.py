"""The web page's browser tests' shared parts: Debian's Chromium through Playwright
against a real `gamesocket serve` (the server harness's subprocess) in embedded mode.

Registered as a pytest plugin in tests/conftest.py, so the fixtures `web_server`
(one server per test module), `browser` and `new_page` (a fresh browser context, its
own guest, per call) serve every browser test file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, require
from tests.server_harness import ServerProcess

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
PHONE = {"width": 390, "height": 844}
# The end of a game from the viewer's seat: one colour each (style.css).
OUTCOME_COLOURS = {
    "win": "rgb(31, 122, 61)",
    "loss": "rgb(180, 35, 24)",
    "draw": "rgb(138, 90, 0)",
}
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

    def open_page(
        path: str = "/", viewport: Mapping[str, int] = VIEWPORT, init_script: str | None = None
    ) -> Any:
        context = browser.new_context(viewport=dict(viewport), base_url=web_server.base_url)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
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
    if "clock" in fields:
        page.select_option("#new-clock", fields["clock"])
    if "fen" in fields:
        page.click("#new-advanced summary")
        page.fill("#new-fen", fields["fen"])
    page.click("#create-game")
    page.wait_for_url(re.compile(rf"#/game/{game_type}/"))
    page.wait_for_selector("#connection[data-state='open']")
    return str(page.url.rsplit("/", 1)[1])
