"""The web page in headless Chromium against a real `gamesocket serve` on a free port.

Every scenario clicks and drags like a person would, then checks what the page shows
against what the server says over REST. Screenshots of each board go to
test-artifacts/; with GAMESOCKET_DOC_SCREENSHOTS=1 the images of docs/web-client.md in
docs/img/ (desktop and phone) are refreshed from the same runs.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import chess
import httpx
import pytest

from games import GameResult, GameState, IllegalMove
from games.base import Move
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from socket_server.settings import Settings
from tests.browser_harness import (
    OUTCOME_COLOURS,
    PHONE,
    VIEWPORT,
    WebServer,
    create_game,
    screenshot,
    token_of,
)
from tests.server_harness import ServerThread, free_port

pytestmark = pytest.mark.browser


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


def move_rows(page: Any) -> list[str]:
    """The move list's rows as read, whitespace collapsed."""
    rows = page.locator("#moves li").all_inner_texts()
    return [" ".join(row.split()) for row in rows]


def outcome_of(page: Any) -> tuple[str, str]:
    """The status line's outcome and its text colour."""
    status = page.locator("#status")
    return (
        str(status.get_attribute("data-outcome")),
        str(status.evaluate("e => getComputedStyle(e).color")),
    )


def record_thinking(page: Any) -> None:
    """Keep every `thinking` the page showed, with the position it was shown in."""
    page.evaluate(
        """() => { window.thinkingShown = [];
        window.gamesocketApp.client.onThinking(info => {
            const snapshot = window.gamesocketApp.client.snapshot;
            window.thinkingShown.push({ seat: info.seat, pv: info.pv, turn: snapshot.turn,
                fen: snapshot.board.fen || null,
                shown: document.querySelector('#thinking-pv').textContent });
        }); }"""
    )


def assert_fits(page: Any, scope: str, width: int) -> None:
    """No horizontal scrolling, and every visible control of `scope` inside the viewport."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    boxes = page.locator(f"{scope} :is(select, button, input, a.button)").evaluate_all(
        """els => els.filter(e => e.offsetParent !== null).map(e => {
            const r = e.getBoundingClientRect();
            return { id: e.id || e.textContent.trim(), left: r.left, right: r.right };
        })"""
    )
    assert boxes, f"no controls in {scope}"
    outside = [box for box in boxes if box["left"] < 0 or box["right"] > width]
    assert outside == [], outside


def clock_boxes(page: Any) -> list[Any]:
    """The bounding boxes of both clocks (they must be shown)."""
    clocks = page.locator("#game .clock")
    assert clocks.count() == 2
    return [clocks.nth(i).bounding_box() for i in range(2)]


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
    # A loss is not shown in a winner's green, nor a draw.
    expected = "draw" if snapshot["result"]["winner"] is None else "loss"
    assert outcome_of(page) == (expected, OUTCOME_COLOURS[expected])
    if snapshot["result"]["winner"] == "o":
        assert page.locator(".ttt-cell.win").count() == 3
    log = web_server.get(f"/api/games/{game_id}/moves", token_of(page))
    assert [entry["move"] for entry in log if entry.get("seat") == "x"].count(4) == 1
    seen = page.evaluate("window.seenVersions")
    assert seen == list(range(seen[0], snapshot["version"] + 1)), seen
    assert page.locator("#moves li").count() == snapshot["moves"] == len(log)
    assert move_rows(page)[0] == "1. X: row 2, column 2"
    assert move_rows(page)[1].startswith("2. O: row ")
    # After the end: a new game or the lobby.
    assert page.is_visible("#new-game-again") and page.is_visible("#back-to-lobby")
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
    # The list reads in move order, a numbered row per move.
    assert move_rows(white) == ["1. a8=Q+ Ke7", "2. Kd2 h1=N"]
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

    # A draw offer (between two people it is offered): declined once, then offered again
    # and accepted.
    assert white.is_visible("#offer-draw") and black.is_visible("#offer-draw")
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
        assert outcome_of(page) == ("draw", OUTCOME_COLOURS["draw"])


def test_watch_ai_against_ai_connect4_with_drops(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    game_id = create_game(page, "connect4", "aivsai", level="2", level2="3", speed="150")
    record_versions(page)
    record_thinking(page)
    # Fast searches report just before their move lands: count what the page showed.
    page.wait_for_function("() => Number(document.querySelector('#thinking').dataset.count) >= 3")
    assert page.is_visible("#thinking")
    assert int(page.get_attribute("#thinking", "data-depth")) >= 1
    assert page.inner_text("#thinking-pv").strip() != ""
    # The AI's line in the move list's words, columns counted from 1 as on the board.
    for shown in page.evaluate("window.thinkingShown"):
        order = ["red", "yellow"]
        start = order.index(shown["seat"])
        expected = " → ".join(
            f"{order[(start + i) % 2].capitalize()}: column {move + 1}"
            for i, move in enumerate(shown["pv"])
        )
        assert shown["shown"] == expected

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
        # Two more moves first, unless the game ends before (a drop then still counts).
        page.wait_for_function(
            """v => Number(document.querySelector('#board').dataset.version) > v
                || document.querySelector('#status').dataset.status === 'finished'""",
            arg=version_of(page) + 1,
            timeout=60_000,
        )
        page.evaluate("window.gamesocketApp.client.dropConnection()")
        page.wait_for_selector("#connection[data-state='reconnecting']")
        page.wait_for_selector("#connection[data-state='open']")

    page.wait_for_selector("#status[data-status='finished']", timeout=90_000)
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    # A spectator's view of the end is neither a win nor a loss.
    assert page.get_attribute("#status", "data-outcome") in ("over", "draw")
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
    record_thinking(page)
    page.wait_for_selector("#board[data-my-turn='true']")  # the AI opened as White
    # The AI never answers a draw offer: there is none to make.
    assert page.is_visible("#resign") and page.is_hidden("#offer-draw")
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
    # The AI's line in SAN, numbered from the position it was computed in, as
    # python-chess writes it.
    shown_lines = [s for s in page.evaluate("window.thinkingShown") if s["turn"] == s["seat"]]
    assert shown_lines
    for shown in shown_lines:
        board = chess.Board(shown["fen"])
        line = board.variation_san([chess.Move.from_uci(m) for m in shown["pv"]])
        assert shown["shown"] == re.sub(r"\.\.\.(?=\S)", "... ", line), shown
    assert move_rows(page)[0] == f"1. {sans[0]} {sans[1]}"
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
    # In move order, columns counted from 1: exactly the server's move log.
    log = [e for e in web_server.get(f"/api/games/{game_id}/moves", token_of(page)) if "move" in e]
    expected = [
        f"{i + 1}. {e['seat'].capitalize()}: column {e['move'] + 1}" for i, e in enumerate(log)
    ]
    assert move_rows(page) == expected
    assert expected[0] == "1. Red: column 4"

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


def test_lobby_lists_public_games_only(web_server: WebServer, new_page: Any) -> None:
    owner = new_page()
    public_id = create_game(owner, "tictactoe", "friend", side="x")
    owner.click(".brand")
    owner.uncheck("#new-public")
    private_id = create_game(owner, "chess", "friend", side="white", clock="3+2")
    owner.click(".brand")
    owner.check("#new-public")
    my_turn_id = create_game(owner, "tictactoe", "ai", side="x", level="1", clock="")
    owner.wait_for_selector("#board[data-my-turn='true']")
    # The owner's own games: "Play" where it is their move, "Resume" elsewhere.
    owner.click(".brand")
    owner.locator(f"#games tr[data-game-id='{my_turn_id}']").wait_for()
    labels = {
        game: owner.inner_text(f"#games tr[data-game-id='{game}'] a")
        for game in (public_id, private_id, my_turn_id)
    }
    assert labels == {public_id: "Resume", private_id: "Resume", my_turn_id: "Play"}
    assert "X: you · O: open" in owner.inner_text(f"#games tr[data-game-id='{public_id}']")
    # A timed game's row names its time control.
    names = {
        game: owner.inner_text(f"#games tr[data-game-id='{game}'] .game-name")
        for game in (private_id, my_turn_id)
    }
    assert names == {private_id: "Chess · 3+2", my_turn_id: "Tic-tac-toe"}
    screenshot(owner, "lobby", doc=True)

    stranger = new_page()
    stranger.wait_for_selector("#games[data-count]")
    assert stranger.locator(f"#games tr[data-game-id='{private_id}']").count() == 0
    row = stranger.locator(f"#games tr[data-game-id='{public_id}']")
    # A stranger sees the owner's display name (a guest's, picked by the server).
    owner_name = web_server.get("/api/me", token_of(owner))["name"]
    assert f"X: {owner_name} · O: open" in row.inner_text()
    assert row.locator("a").inner_text() == "Join"
    watch = stranger.locator(f"#games tr[data-game-id='{my_turn_id}'] a")
    assert watch.inner_text() == "Watch"
    # The private game's link gets the 4403 message alone, and the way back; the public
    # one's Join link a seat.
    stranger.goto(f"/#/game/chess/{private_id}")
    stranger.wait_for_selector("#connection[data-state='closed']")
    assert stranger.get_attribute("#connection", "data-close-code") == "4403"
    assert_error_view(stranger, "This game is private: you may not watch it.")
    stranger.click("#game-error-back")
    stranger.wait_for_selector("#lobby:not([hidden])")
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


def assert_error_view(page: Any, text: str) -> None:
    """The error alone: no board, no "Connecting…", and a way back to the lobby."""
    page.wait_for_selector("#game-error:not([hidden])")
    assert page.inner_text("#game-error-text") == text
    assert page.is_hidden("#game-layout")
    assert page.is_hidden("#board") and page.is_hidden("#status")
    assert "Connecting" not in page.inner_text("#game")
    assert page.is_hidden("#message")
    assert page.get_attribute("#game-error-back", "href") == "#/"
    assert page.is_visible("#game-error-back")


def test_unknown_game_gets_a_clear_message(new_page: Any) -> None:
    page = new_page("/#/game/chess/00000000-0000-4000-8000-000000000000")
    page.wait_for_selector("#connection[data-state='closed']")
    assert page.get_attribute("#connection", "data-close-code") == "4404"
    assert_error_view(page, "There is no such game.")
    screenshot(page, "error", doc=True)
    page.click("#game-error-back")
    page.wait_for_selector("#lobby:not([hidden])")
    assert page.is_hidden("#game")
    # Another game opens normally afterwards: the error view does not linger.
    create_game(page, "tictactoe", "friend", side="x")
    page.wait_for_selector("#status[data-status='waiting']")
    assert page.is_hidden("#game-error") and page.is_visible("#board")


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


def test_phone_lobby_and_board_fit_the_screen(web_server: WebServer, new_page: Any) -> None:
    # Rows with long player lists, every kind of link: the lobby must still fit 390 px.
    owner = httpx.post(web_server.base_url + "/api/auth/guest", json={}).json()
    headers = {"Authorization": f"Bearer {owner['access_token']}"}
    for seats in (
        {"white": "me"},
        {"red": "me", "yellow": {"kind": "ai", "level": 3}},
        {"x": "me"},
    ):
        game_type = {"white": "chess", "red": "connect4", "x": "tictactoe"}[next(iter(seats))]
        reply = httpx.post(
            web_server.base_url + "/api/games",
            json={"game_type": game_type, "seats": seats},
            headers=headers,
        )
        assert reply.status_code == 201, reply.text
    page = new_page(viewport=PHONE)
    page.wait_for_function("Number(document.querySelector('#games').dataset.count) >= 3")
    assert_fits(page, "#lobby", PHONE["width"])
    assert page.locator("#games a.button").count() >= 3
    screenshot(page, "lobby-phone", doc=True)

    # A timed game on the phone: the board, its clocks, its controls and the side panel
    # fit as well.
    create_game(page, "chess", "ai", side="white", level="1", clock="10+5")
    page.wait_for_selector("#board[data-my-turn='true']")
    page.click("[data-square='e2']")
    page.click("[data-square='e4']")
    page.wait_for_selector("#moves[data-count='2']")
    assert_fits(page, "#game", PHONE["width"])
    for box in (page.locator(".chess-board").bounding_box(), *clock_boxes(page)):
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(page, "chess-phone", doc=True)


def test_win_and_loss_look_different_and_a_new_game_follows(
    web_server: WebServer, new_page: Any
) -> None:
    x = new_page()
    game_id = create_game(x, "tictactoe", "friend", side="x")
    o = new_page(f"/#/game/tictactoe/{game_id}")
    o.click(".join-seat[data-seat='o']")
    watcher = new_page(f"/#/game/tictactoe/{game_id}")
    for cell, player in ((0, x), (3, o), (1, x), (4, o), (2, x)):
        player.wait_for_selector("#board[data-my-turn='true']")
        player.click(f"[data-cell='{cell}']")
    for page in (x, o, watcher):
        page.wait_for_selector("#status[data-status='finished']")
    assert x.inner_text("#status") == "You win three in a row!"
    assert o.inner_text("#status") == "You lose: X wins three in a row."
    assert outcome_of(x) == ("win", OUTCOME_COLOURS["win"])
    assert outcome_of(o) == ("loss", OUTCOME_COLOURS["loss"])
    assert outcome_of(watcher)[0] == "over"
    assert len({outcome_of(p)[1] for p in (x, o, watcher)}) == 3
    screenshot(x, "tictactoe-win", doc=True)
    screenshot(o, "tictactoe-loss", doc=True)

    # The players may start again at once; a spectator of a human game goes back.
    assert watcher.is_visible("#back-to-lobby") and watcher.is_hidden("#new-game-again")
    o.click("#back-to-lobby")
    o.wait_for_selector("#lobby:not([hidden])")
    x.click("#new-game-again")
    x.wait_for_url(re.compile(r"#/game/tictactoe/(?!" + game_id + ")"))
    x.wait_for_selector("#status[data-status='waiting']")
    new_id = x.url.rsplit("/", 1)[1]
    again = web_server.get(f"/api/games/{new_id}", token_of(x))
    assert again["seats"]["o"] is None
    assert again["seats"]["x"]["user_id"] == x.evaluate("window.gamesocketApp.client.you.user_id")
    assert again["version"] == 0 and again["public"] is True


def test_san_of_the_ai_line_matches_python_chess(web_server: WebServer, new_page: Any) -> None:
    # The page's converter (san.js) over random play and over positions with every
    # special move: castling both ways, en passant, promotions, checks, mates and
    # pieces that need a file or rank to tell them apart.
    rng = random.Random(20)
    castling = "r3k2r/pppq1ppp/2n2n2/3pp3/1b1PP1b1/2N2N2/PPPQ1PPP/R3K2R"
    lines: list[tuple[str, list[str]]] = [
        (f"{castling} w KQkq - 0 1", ["e1g1", "e8c8"]),
        (f"{castling} b KQkq - 0 1", ["e8g8", "e1c1"]),
        ("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 1", ["e5d6"]),
        ("8/1P4k1/8/8/8/8/6p1/4K2R w K - 0 1", ["b7b8q", "g2h1n", "e1d2"]),
        ("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1", ["a1a8"]),
        ("k7/8/8/8/8/8/8/KN3N2 w - - 0 1", ["b1d2"]),
        ("7k/8/8/8/R7/8/8/R6K w - - 0 1", ["a1a2", "h8g8", "a4a3"]),
    ]
    for _ in range(120):
        board = chess.Board(lines[0][0]) if rng.random() < 0.2 else chess.Board()
        for _ in range(rng.randrange(60)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
        start = board.fen()
        line = []
        for _ in range(rng.randrange(1, 30)):
            moves = list(board.legal_moves)
            if not moves:
                break
            move = rng.choice(moves)
            line.append(move.uci())
            board.push(move)
        lines.append((start, line))
    expected = []
    for fen, line in lines:
        board = chess.Board(fen)
        expected.append([board.san_and_push(chess.Move.from_uci(m)) for m in line])
    page = new_page()
    got = page.evaluate(
        """async (lines) => { const { lineToSan } = await import('/san.js');
            return lines.map(([fen, ucis]) => lineToSan(fen, ucis).moves); }""",
        [[fen, line] for fen, line in lines],
    )
    assert got == expected
    specials = [san for sans in expected for san in sans]
    for needed in ("O-O", "O-O-O", "exd6", "b8=Q", "gxh1=N", "Ra8#", "Nbd2", "R1a2", "R4a3"):
        assert needed in specials, needed
    # A move that is not legal there ends the conversion; the rest stays as it came.
    stopped = page.evaluate(
        """async () => (await import('/san.js')).lineToSan(
            'rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1', ['e2e4', 'e2e4'])"""
    )
    assert stopped == {"moves": ["e4"], "rest": ["e2e4"], "text": "1. e4 e2e4"}


class CellsState(GameState):
    """A tiny game for the generic board: take turns claiming cells of a 2 by 3 grid."""

    game_type: ClassVar[str] = "cells"
    seats: ClassVar[tuple[str, ...]] = ("first", "second")
    cells: tuple[str | None, ...] = (None,) * 6

    @classmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        cls._check_option_keys(options, known=set())
        return cls()

    def legal_moves(self) -> list[Move]:
        return [] if self.result else [i for i, cell in enumerate(self.cells) if cell is None]

    def parse_move(self, raw: Any) -> int:
        self._require_active()
        if not isinstance(raw, int) or raw not in self.legal_moves():
            raise IllegalMove(f"claim a free cell 0..5, not {raw!r}")
        return raw

    def board(self) -> dict[str, Any]:
        rows = [list(self.cells[:3]), list(self.cells[3:])]
        return {"cells": rows, "claimed": sum(cell is not None for cell in self.cells)}

    def apply(self, move: Any) -> Self:
        cell = self.parse_move(move)
        cells = tuple(self.turn if i == cell else c for i, c in enumerate(self.cells))
        full = all(c is not None for c in cells)
        result = GameResult(winner=None, reason="board_full") if full else None
        return self.model_copy(
            update={"cells": cells, "history": (*self.history, cell), "result": result}
        )


def test_a_custom_game_gets_the_generic_board_and_a_registered_renderer(
    browser: Any, start_server: Callable[..., ServerThread], server_settings: Settings
) -> None:
    app = create_app(server_settings)
    GameSocketFactory().create_socket(app, None, CellsState, "/ws/cells")
    server = start_server(app)
    context = browser.new_context(viewport=VIEWPORT, base_url=server.base_url)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/")
        page.wait_for_selector("body[data-ready='true']")
        token = token_of(page)
        game = httpx.post(
            server.base_url + "/api/games",
            json={"game_type": "cells", "seats": {"first": "me", "second": "me"}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        page.goto(f"/#/game/cells/{game['game_id']}")
        page.wait_for_selector("#board[data-renderer='generic'] .generic-grid")
        assert "cannot draw" not in page.inner_text("#board")
        assert page.locator(".generic-grid tr").count() == 2
        assert page.locator(".generic-grid td").count() == 6
        assert page.inner_text("[data-field='claimed']") == "0"
        buttons = page.locator("button.generic-move")
        assert buttons.evaluate_all("bs => bs.map(b => JSON.parse(b.dataset.move))") == list(
            range(6)
        )

        # Nobody else to offer a draw to (one user holds both seats).
        assert page.is_visible("#resign") and page.is_hidden("#offer-draw")
        page.click("button.generic-move[data-move='4']")
        page.wait_for_selector("#board[data-version='1']")
        assert page.get_attribute(".generic-grid [data-row='1'][data-col='1']", "data-value") == (
            "first"
        )
        assert page.inner_text("[data-field='claimed']") == "1"
        page.wait_for_function("document.querySelectorAll('#moves li').length === 1")
        assert move_rows(page) == ["1. First: 4"]
        screenshot(page, "generic-board", doc=True)
        # This game has no AI: the server refuses the AI's move and the button goes.
        page.click("#ai-move")
        page.wait_for_selector("#message[data-code='bad_message']")
        assert "has no AI" in page.inner_text("#message")
        page.wait_for_selector("#ai-move", state="hidden")

        # A real renderer, registered the documented way, takes over at once.
        page.evaluate(
            """() => GameSocketPage.registerRenderer("cells", (container, snapshot, context) => {
                const grid = document.createElement("div");
                grid.className = "custom-cells";
                snapshot.board.cells.flat().forEach((who, i) => {
                    const b = document.createElement("button");
                    b.dataset.cell = i;
                    b.textContent = who ? who[0].toUpperCase() : "·";
                    b.disabled = !context.legalMoves.includes(i);
                    b.onclick = () => context.play(i);
                    grid.append(b);
                });
                container.replaceChildren(grid);
            }, { name: "Cells", describeMove: (move) => `cell ${move + 1}` })"""
        )
        page.wait_for_selector("#board .custom-cells")
        assert str(page.get_attribute("#board", "data-renderer")).startswith("cells#")
        assert page.inner_text("#game-title") == "Cells"
        assert move_rows(page) == ["1. First: cell 5"]
        assert page.inner_text(".custom-cells [data-cell='4']") == "F"
        for cell in (0, 1, 2, 3, 5):
            before = version_of(page)
            page.click(f".custom-cells [data-cell='{cell}']")
            wait_version_above(page, before)
        page.wait_for_selector("#status[data-status='finished']")
        snapshot = httpx.get(server.base_url + f"/api/games/{game['game_id']}").json()
        assert snapshot["board"]["claimed"] == 6
        shown = page.locator(".custom-cells button").all_inner_texts()
        expected = [(c or "·")[0].upper() for row in snapshot["board"]["cells"] for c in row]
        assert shown == expected
        assert page.get_attribute("#status", "data-outcome") == "draw"
        assert len(move_rows(page)) == 6
        assert errors == []
    finally:
        context.close()


# -- clocks and abandoned games ------------------------------------------------------------

# The browser's wall clock 90 minutes behind the server's: the page's clocks must not
# follow it (they tick from the snapshots' server_time_ms).
SKEWED_DATE = """(() => {
    const skew = -90 * 60 * 1000;
    const RealDate = Date;
    const realNow = RealDate.now.bind(RealDate);
    class SkewedDate extends RealDate {
        constructor(...args) { if (args.length) super(...args); else super(realNow() + skew); }
        static now() { return realNow() + skew; }
    }
    window.Date = SkewedDate;
})();"""


def clock_text(page: Any, seat: str) -> str:
    return str(page.inner_text(f"#game .clock[data-seat='{seat}'] .clock-time"))


def clock_seconds(text: str) -> float:
    """The seconds of a clock's text: "03:00", "00:09.4"."""
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + float(seconds)


def mm_ss(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms // 1000 % 60:02d}"


def server_remaining(snapshot: Mapping[str, Any], seat: str) -> float:
    """The seat's time now by the server's snapshot (same machine: same clock)."""
    clock = snapshot["clock"]
    left = clock["remaining_ms"][seat]
    if clock["running"] == seat:
        left -= time.time() * 1000 - clock["server_time_ms"]
    return float(left)


def guest_headers(base_url: str) -> dict[str, str]:
    guest = httpx.post(base_url + "/api/auth/guest", json={}).json()
    return {"Authorization": f"Bearer {guest['access_token']}"}


def test_a_timed_game_shows_both_clocks_and_the_running_one_ticks(
    web_server: WebServer, new_page: Any
) -> None:
    page = new_page(init_script=SKEWED_DATE)
    assert page.evaluate("Date.now()") < (time.time() - 80 * 60) * 1000  # the skew holds
    game_id = create_game(page, "chess", "ai", side="white", level="1", clock="3+2")
    page.wait_for_selector("#board[data-my-turn='true']")
    # Mine under the board, the opponent's above it; only White's runs.
    assert page.is_visible("#clock-bottom .clock[data-seat='white']")
    assert page.is_visible("#clock-top .clock[data-seat='black']")
    assert page.get_attribute(".clock[data-seat='white']", "data-running") == "true"
    assert page.get_attribute(".clock[data-seat='black']", "data-running") == "false"
    assert page.inner_text("#time-control") == "Time control: 3 min + 2 s per move"
    first = clock_text(page, "white")
    page.wait_for_timeout(1100)
    second = clock_text(page, "white")
    assert re.fullmatch(r"0[23]:\d\d", first) and re.fullmatch(r"02:5\d", second), (first, second)
    assert 1 <= clock_seconds(first) - clock_seconds(second) <= 2
    assert clock_text(page, "black") == "03:00"
    # The running clock is marked (not in the idle clock's grey); neither is low.
    running, idle = (
        page.locator(f".clock[data-seat='{seat}'] .clock-time").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        for seat in ("white", "black")
    )
    assert running != idle
    assert page.locator(".clock[data-low='true']").count() == 0

    # A move: White's clock stops with its increment, the AI's runs, then White's again.
    page.click("[data-square='e2']")
    page.click("[data-square='e4']")
    page.wait_for_selector("#moves[data-count='2']", timeout=30_000)
    page.wait_for_selector(".clock[data-seat='white'][data-running='true']")
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    assert snapshot["clock"]["running"] == "white"
    black_left = snapshot["clock"]["remaining_ms"]["black"]
    assert clock_text(page, "black") == mm_ss(black_left)
    expected = server_remaining(snapshot, "white")
    shown = int(page.get_attribute(".clock[data-seat='white']", "data-ms"))
    assert abs(shown - expected) < 700, (shown, expected)
    screenshot(page, "clock", doc=True)


def test_the_chosen_time_control_reaches_the_server_and_the_delay_holds_the_clock(
    web_server: WebServer, new_page: Any
) -> None:
    page = new_page()
    game_id = create_game(page, "chess", "ai", side="white", level="1", clock="5d3")
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    control = {key: snapshot["clock"][key] for key in ("initial_ms", "increment_ms", "delay_ms")}
    assert control == {"initial_ms": 300_000, "increment_ms": 0, "delay_ms": 3000}
    assert snapshot["clock"]["per_move_ms"] == 0 and snapshot["clock"]["running"] == "white"
    assert page.inner_text("#time-control") == "Time control: 5 min, 3 s delay"
    # During the first 3 s of White's turn its clock stands at 05:00, the delay counting
    # down beside it; then the clock runs.
    samples = page.evaluate(
        """async () => { const out = [];
            for (let i = 0; i < 8; i++) {
                const c = document.querySelector(".clock[data-seat='white']");
                out.push([c.dataset.delay, c.querySelector('.clock-time').textContent,
                    c.querySelector('.clock-delay').textContent]);
                await new Promise(r => setTimeout(r, 150));
            }
            return out; }"""
    )
    in_delay = [sample for sample in samples if sample[0] == "true"]
    assert len(in_delay) >= 3, samples
    assert {text for _, text, _ in in_delay} == {"05:00"}, samples
    badges = [float(badge.split()[1]) for _, _, badge in in_delay]
    assert badges == sorted(badges, reverse=True) and badges[0] > badges[-1], badges
    page.wait_for_selector(".clock[data-seat='white'][data-delay='false']")
    assert page.is_hidden(".clock[data-seat='white'] .clock-delay")
    page.wait_for_timeout(1100)
    assert re.fullmatch(r"04:5\d", clock_text(page, "white")), clock_text(page, "white")
    expected = server_remaining(web_server.get(f"/api/games/{game_id}", token_of(page)), "white")
    shown = int(page.get_attribute(".clock[data-seat='white']", "data-ms"))
    assert abs(shown - expected) < 700, (shown, expected)

    # After the AI's answer White's delay runs again. The page left and opened again at
    # once gets a `state` in the middle of the turn: the turn's start comes from the
    # move log, and the clock stands still for the rest of the delay.
    page.click("[data-square='e2']")
    page.click("[data-square='e4']")
    page.wait_for_selector("#moves[data-count='2']", timeout=30_000)
    page.click(".brand")
    row = page.locator(f"#games tr[data-game-id='{game_id}']")
    # The lobby names the time control of the game.
    assert row.locator(".game-name").inner_text() == "Chess · 5 min, 3 s delay"
    row.locator("a").click()
    page.wait_for_selector(".clock[data-seat='white'][data-running='true']")
    samples = page.evaluate(
        """async () => { const out = [];
            for (let i = 0; i < 5; i++) {
                const c = document.querySelector(".clock[data-seat='white']");
                out.push([c.dataset.delay, c.querySelector('.clock-time').textContent]);
                await new Promise(r => setTimeout(r, 100));
            }
            return out; }"""
    )
    # White's time as its turn began: the server's figure plus what it spent after the
    # delay (if the delay is over by now).
    snapshot = web_server.get(f"/api/games/{game_id}", token_of(page))
    turn_began = datetime.fromisoformat(
        web_server.get(f"/api/games/{game_id}/moves", token_of(page))[-1]["at"]
    ).timestamp()
    spent = snapshot["clock"]["server_time_ms"] - (int(turn_began * 1000) + 3000)
    white_left = snapshot["clock"]["remaining_ms"]["white"] + max(0, spent)
    in_delay = [text for delay, text in samples if delay == "true"]
    assert in_delay and set(in_delay) == {mm_ss(white_left)}, (samples, white_left)


def test_a_fallen_flag_shows_the_timeout_result(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    headers = {"Authorization": f"Bearer {token_of(page)}"}
    opponent = guest_headers(web_server.base_url)

    def timed_game(**options: str) -> str:
        spec: dict[str, Any] = {
            "game_type": "chess",
            "seats": {"white": "me"},
            "clock": {"per_move_ms": 1000},
        }
        if options:
            spec["options"] = options
        reply = httpx.post(web_server.base_url + "/api/games", json=spec, headers=headers)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["game_id"])

    # Black (the other guest) takes its seat while the page watches; nobody moves.
    lost = timed_game()
    page.goto(f"/#/game/chess/{lost}")
    page.wait_for_selector("#status[data-status='waiting']")
    assert clock_text(page, "white") == clock_text(page, "black") == "00:01.0"
    assert page.inner_text("#time-control") == "Time control: 1 s per move"
    httpx.post(
        web_server.base_url + f"/api/games/{lost}/join", json={"seat": "black"}, headers=opponent
    ).raise_for_status()
    page.wait_for_selector("#status[data-status='finished']", timeout=15_000)
    assert page.get_attribute("#status", "data-reason") == "timeout"
    assert page.inner_text("#status") == "You lose: Black wins on time."
    assert outcome_of(page) == ("loss", OUTCOME_COLOURS["loss"])
    assert clock_text(page, "white") == "00:00.0"
    assert page.get_attribute(".clock[data-seat='white']", "data-low") == "true"
    assert page.locator(".clock[data-running='true']").count() == 0
    result = web_server.get(f"/api/games/{lost}", token_of(page))["result"]
    assert result == {"winner": "black", "reason": "timeout"}

    # White out of time against a lone king: a draw, worded as such.
    drawn = timed_game(fen="4k3/8/8/8/8/8/8/Q3K3 w - - 0 1")
    page.goto(f"/#/game/chess/{drawn}")
    page.wait_for_selector("#status[data-status='waiting']")
    httpx.post(
        web_server.base_url + f"/api/games/{drawn}/join", json={"seat": "black"}, headers=opponent
    ).raise_for_status()
    page.wait_for_selector("#status[data-status='finished']", timeout=15_000)
    assert page.get_attribute("#status", "data-reason") == "timeout_vs_insufficient_material"
    assert page.inner_text("#status") == "Draw: you ran out of time, but Black cannot checkmate."
    assert outcome_of(page) == ("draw", OUTCOME_COLOURS["draw"])
    screenshot(page, "timeout")

    # A new game like this one keeps its time control.
    page.click("#new-game-again")
    page.wait_for_url(re.compile(r"#/game/chess/(?!" + drawn + ")"))
    page.wait_for_selector("#status[data-status='waiting']")
    again = web_server.get(f"/api/games/{page.url.rsplit('/', 1)[1]}", token_of(page))
    assert again["clock"]["per_move_ms"] == 1000 and again["clock"]["initial_ms"] == 0


def start_friend_game(white: Any, black: Any, **fields: str) -> str:
    """White creates a chess game for a friend, Black joins from the link; both online."""
    game_id = create_game(white, "chess", "friend", side="white", **fields)
    black.goto(f"/#/game/chess/{game_id}")
    black.click(".join-seat[data-seat='black']")
    white.wait_for_selector("#status[data-status='active']")
    white.wait_for_selector("#players [data-seat='black'] .dot.online")
    return game_id


def test_claiming_too_early_shows_the_servers_refusal(web_server: WebServer, new_page: Any) -> None:
    # The module's server waits the default 60 s before a claim.
    white, black = new_page(), new_page()
    game_id = start_friend_game(white, black)
    assert white.is_hidden("#claim") and black.is_hidden("#claim")
    saved_guest = black.evaluate("localStorage.getItem('gamesocket.guest')")
    black.context.close()
    white.wait_for_selector("#claim:not([hidden])")
    assert "Your opponent has been offline for" in white.inner_text("#claim-text")
    white.click("#claim-victory")
    white.wait_for_selector("#message[data-code='forbidden']")
    assert white.inner_text("#message") == (
        "You cannot claim the win yet: your opponent is online or left too recently."
    )
    assert web_server.get(f"/api/games/{game_id}", token_of(white))["status"] == "active"
    # Black comes back (the same guest): the offer goes away.
    new_page(
        f"/#/game/chess/{game_id}",
        init_script=f"localStorage.setItem('gamesocket.guest', {json.dumps(saved_guest)})",
    )
    white.wait_for_selector("#claim", state="hidden")
    assert white.get_attribute("#status", "data-status") == "active"


def test_claiming_victory_over_an_abandoned_game(
    browser: Any, start_server: Callable[..., ServerThread]
) -> None:
    server = start_server(claim_after_seconds=1)
    contexts = [browser.new_context(viewport=VIEWPORT, base_url=server.base_url) for _ in range(2)]
    errors: list[str] = []
    pages = []
    try:
        for context in contexts:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto("/")
            page.wait_for_selector("body[data-ready='true']")
            pages.append(page)
        white, black = pages
        game_id = start_friend_game(white, black, clock="10+5")
        assert white.is_hidden("#claim")
        contexts[1].close()  # Black's page goes away
        white.wait_for_selector("#claim:not([hidden])")
        white.wait_for_selector("#players [data-seat='black'] .dot.offline")
        time.sleep(1.5)  # past the server's claim period
        white.wait_for_function(
            "() => /offline for [1-9]/.test(document.querySelector('#claim-text').textContent)"
        )
        screenshot(white, "claim", doc=True)
        white.click("#claim-victory")
        white.wait_for_selector("#status[data-status='finished'][data-reason='abandoned']")
        assert white.inner_text("#status") == "You win: your opponent left the game."
        assert outcome_of(white) == ("win", OUTCOME_COLOURS["win"])
        assert white.is_hidden("#claim") and white.is_hidden("#resign")
        assert white.locator(".clock[data-running='true']").count() == 0
        snapshot = httpx.get(server.base_url + f"/api/games/{game_id}").json()
        assert snapshot["result"] == {"winner": "white", "reason": "abandoned"}
        assert errors == []
    finally:
        for context in contexts:
            context.close()
