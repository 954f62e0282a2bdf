"""Ratings on the web page (PROTOCOL.md "Ratings"): a rated game's seats show the
ratings, and the leaderboard view lists the settled players best first.

Guests play unrated only, so this module's server verifies Supabase-style tokens (HS256
with a JWT secret; nothing listens at its Supabase address) and each page starts with a
signed session already in supabase-js's storage, as after a sign-in.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.browser_harness import CHROMIUM, WebServer
from tests.conftest import require
from tests.server_harness import free_port

pytestmark = pytest.mark.browser

SECRET = "browser-ratings-secret-that-is-long-enough-for-hs256"
SUPABASE_URL = f"http://127.0.0.1:{free_port()}"
# supabase-js keeps the session under sb-<first label of the project's host>-auth-token.
SESSION_KEY = "sb-127-auth-token"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    require(CHROMIUM.exists(), "chromium")
    process = WebServer(
        tmp_path_factory.mktemp("gamesocket-ratings"),
        SUPABASE_URL=SUPABASE_URL,
        SUPABASE_ANON_KEY="anon-key",
        SUPABASE_JWT_SECRET=SECRET,
    )
    process.start()
    yield process
    process.stop()


def member() -> dict[str, Any]:
    """A signed-in (not anonymous) Supabase user: id, token, and the session supabase-js keeps."""
    user_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    expires = int((now + timedelta(hours=1)).timestamp())
    claims = {
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "iss": f"{SUPABASE_URL}/auth/v1",
        "iat": int(now.timestamp()),
        "exp": expires,
        "is_anonymous": False,
        "email": f"{user_id[:8]}@example.com",
    }
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    session = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": expires,
        "refresh_token": "unused",
        "user": {
            "id": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": claims["email"],
        },
    }
    return {"user_id": user_id, "token": token, "session": session}


def signed_in(new_page: Any, who: dict[str, Any], path: str = "/") -> Any:
    script = (
        f"localStorage.setItem({json.dumps(SESSION_KEY)}, {json.dumps(json.dumps(who['session']))})"
    )
    return new_page(path, init_script=script)


def test_a_rated_pairing_shows_the_players_ratings(web_server: WebServer, new_page: Any) -> None:
    alice, bob = member(), member()
    pages = [signed_in(new_page, who) for who in (alice, bob)]
    for page in pages:
        page.select_option("#seek-game-type", "tictactoe")
        page.check("#seek-rated")
    pages[0].click("#seek-button")
    waiting = "Looking for an opponent: Tic-tac-toe · rated…"
    pages[0].wait_for_selector(f"#seek-text:text-is('{waiting}')")
    pages[1].click("#seek-button")
    for page in pages:
        page.wait_for_url(re.compile(r"#/game/tictactoe/"))
        page.wait_for_selector("#status[data-status='active']")
    game_id = pages[0].url.rsplit("/", 1)[1]
    game = httpx.get(
        f"{web_server.base_url}/api/games/{game_id}",
        headers={"Authorization": f"Bearer {alice['token']}"},
    ).json()
    assert game["rated"] is True
    for page in pages:
        for seat in ("x", "o"):
            assert page.inner_text(f"#players [data-seat='{seat}'] .seat-rating") == "(1500)"
    # Anyone else's lobby lists the game in play with both ratings.
    lobby = signed_in(new_page, member())
    row = lobby.locator(f"#games tr[data-game-id='{game_id}'] .game-players")
    row.wait_for()
    assert row.inner_text().count("(1500)") == 2


def seed_ratings(data_dir: Path, rows: list[tuple[str, str, float, float, int]]) -> None:
    """Ratings written straight into the server's SQLite file (user, type, rating, RD, games)."""
    with closing(sqlite3.connect(data_dir / "gamesocket.sqlite3")) as conn, conn:
        conn.executemany(
            "INSERT INTO ratings (user_id, game_type, rating, deviation, volatility, games,"
            " updated_at) VALUES (?, ?, ?, ?, 0.06, ?, '2026-12-02T00:00:00+00:00')",
            rows,
        )


def test_the_leaderboard_lists_the_best_first(web_server: WebServer, new_page: Any) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    seed_ratings(
        web_server.data_dir,
        [
            (ids[0], "connect4", 1701.6, 80.0, 30),
            (ids[1], "connect4", 1850.2, 120.0, 12),
            (ids[2], "connect4", 2200.0, 300.0, 3),  # not settled yet: left out
        ],
    )
    page = signed_in(new_page, member())
    page.click("#leaderboard-link")
    page.select_option("#leaderboard-game-type", "connect4")
    page.wait_for_selector("#leaderboard-table[data-game-type='connect4']")
    rows = page.locator("#leaderboard-table tbody tr")
    assert [rows.nth(i).get_attribute("data-user-id") for i in range(rows.count())] == ids[1::-1]
    assert page.locator(".leader-rating").all_inner_texts() == ["1850", "1702"]
    expected = httpx.get(
        web_server.base_url + "/api/leaderboard", params={"game_type": "connect4"}
    ).json()
    assert page.locator(".leader-name").all_inner_texts() == [row["name"] for row in expected]
