"""The page's players features in headless Chromium against a real `gamesocket serve`:
invite links, "Play someone" (seeks), the live lobby socket, rematches and the chat.

Each browser context is its own guest. What the pages show is checked against what the
server says over REST.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser_harness import CHROMIUM, WebServer, create_game, screenshot, token_of
from tests.conftest import require

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__xss=1">'
ADMIN_TOKEN = "browser-lobby-admin-token"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The plugin's server, with an administrator's token for announcements."""
    require(CHROMIUM.exists(), "chromium")
    process = WebServer(
        tmp_path_factory.mktemp("gamesocket-lobby"), GAMESOCKET_ADMIN_TOKEN=ADMIN_TOKEN
    )
    process.start()
    yield process
    process.stop()


def user_id_of(page: Any) -> str:
    return str(page.evaluate("JSON.parse(localStorage.getItem('gamesocket.guest')).user_id"))


def game_id_of(page: Any) -> str:
    return str(page.url.rsplit("/", 1)[1])


def seat_holders(web_server: WebServer, game_id: str, token: str) -> dict[str, str | None]:
    game = web_server.get(f"/api/games/{game_id}", token)
    return {seat: (held or {}).get("user_id") for seat, held in game["seats"].items()}


def assert_no_html_ran(page: Any) -> None:
    """Nothing a player typed became markup: no <img> anywhere, and its handler never ran."""
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None


def play_tictactoe_win(x: Any, o: Any) -> None:
    """X takes the top row while O plays the middle one."""
    for cell, player in ((0, x), (3, o), (1, x), (4, o), (2, x)):
        player.wait_for_selector("#board[data-my-turn='true']")
        player.click(f"[data-cell='{cell}']")
    for page in (x, o):
        page.wait_for_selector("#status[data-status='finished']")


def start_tictactoe(x: Any, o: Any) -> str:
    """X creates a public game for a friend; O opens it and takes the other seat."""
    game_id = create_game(x, "tictactoe", "friend", side="x")
    o.goto(f"/#/game/tictactoe/{game_id}")
    o.click(".join-seat[data-seat='o']")
    x.wait_for_selector("#status[data-status='active']")
    return game_id


def test_an_invite_link_seats_a_friend_in_a_private_game(
    web_server: WebServer, new_page: Any
) -> None:
    owner = new_page()
    owner.uncheck("#new-public")
    game_id = create_game(owner, "chess", "friend", side="white")
    owner.wait_for_selector("#share-link[data-invite='true']")
    code = web_server.get(f"/api/games/{game_id}", token_of(owner))["invite"]
    link = owner.input_value("#share-link")
    assert link.endswith(f"#/game/chess/{game_id}?invite={code}")
    assert owner.inner_text("#share-label").startswith("Invite link")
    screenshot(owner, "invite", doc=True)

    friend = new_page(link.removeprefix(web_server.base_url))
    friend.wait_for_selector("#status[data-status='active']")
    owner.wait_for_selector("#status[data-status='active']")
    # The code is gone from the friend's address bar, and the friend holds Black.
    assert friend.url.endswith(f"#/game/chess/{game_id}")
    assert friend.inner_text("#players [data-seat='black'] .seat-name") == "you"
    assert seat_holders(web_server, game_id, token_of(owner)) == {
        "white": user_id_of(owner),
        "black": user_id_of(friend),
    }
    # The seat is taken: the owner's page shows the plain link again, and they play.
    owner.wait_for_selector("#share-link[data-invite='false']")
    owner.click("[data-square='e2']")
    owner.click("[data-square='e4']")
    friend.wait_for_selector("#board[data-my-turn='true']")
    friend.click("[data-square='e7']")
    friend.click("[data-square='e5']")
    owner.wait_for_selector("#moves[data-count='2']")

    # The code opens nothing once the game is full: a third guest gets the private
    # game's error view.
    stranger = new_page(link.removeprefix(web_server.base_url))
    stranger.wait_for_selector("#game-error:not([hidden])")
    assert stranger.get_attribute("#game-error", "data-close-code") == "4403"


def test_play_someone_pairs_two_guests_into_one_game(web_server: WebServer, new_page: Any) -> None:
    first = new_page()
    second = new_page()
    first.select_option("#seek-game-type", "connect4")
    first.select_option("#seek-clock", "3+2")
    first.click("#seek-button")
    first.wait_for_selector("#seek-status[data-state='waiting']")
    assert first.inner_text("#seek-text") == "Looking for an opponent: Connect Four · 3+2…"
    # The other guest's lobby lists the seek live (the lobby socket), and the seeker's
    # own row is marked as theirs.
    seek_row = second.locator("#seeks li[data-game-type='connect4']")
    seek_row.wait_for()
    assert "Connect Four · 3+2" in seek_row.inner_text()
    assert first.get_attribute("#seeks li[data-game-type='connect4']", "data-mine") == "true"
    screenshot(second, "seeks", doc=True)

    second.select_option("#seek-game-type", "connect4")
    second.select_option("#seek-clock", "3+2")
    second.click("#seek-button")
    for page in (first, second):
        page.wait_for_url(re.compile(r"#/game/connect4/"))
        page.wait_for_selector("#status[data-status='active']")
    game_id = game_id_of(first)
    assert game_id_of(second) == game_id
    holders = seat_holders(web_server, game_id, token_of(first))
    assert sorted(holders.values()) == sorted([user_id_of(first), user_id_of(second)])
    # Opposite seats: exactly one of the two has the move.
    turns = [page.get_attribute("#board", "data-my-turn") for page in (first, second)]
    assert sorted(turns) == ["false", "true"]
    assert first.locator(".clock").count() == 2

    # A withdrawn seek leaves the other lobbies at once.
    second.click(".brand")
    first.click(".brand")
    first.select_option("#seek-game-type", "tictactoe")
    first.select_option("#seek-clock", "")
    first.click("#seek-button")
    first.wait_for_selector("#seek-status[data-state='waiting']")
    row = second.locator("#seeks li[data-game-type='tictactoe']")
    row.wait_for()
    first.click("#seek-cancel")
    first.wait_for_selector("#seek-status[data-state='idle']", state="attached")
    row.wait_for(state="detached")


def test_the_lobby_list_follows_the_lobby_socket(web_server: WebServer, new_page: Any) -> None:
    watcher = new_page()
    watcher.wait_for_selector("#lobby-live[data-state='open']")
    watcher.evaluate("window.__sameDocument = true")
    creator = new_page()
    game_id = create_game(creator, "tictactoe", "friend", side="x")
    row = watcher.locator(f"#games tr[data-game-id='{game_id}']")
    row.wait_for()
    assert row.locator("a").inner_text() == "Join"
    joiner = new_page(f"/#/game/tictactoe/{game_id}")
    joiner.click(".join-seat[data-seat='o']")
    row.wait_for(state="detached")
    # Neither appearing nor leaving reloaded the page.
    assert watcher.evaluate("window.__sameDocument") is True


def test_a_rematch_swaps_the_seats(web_server: WebServer, new_page: Any) -> None:
    x = new_page()
    o = new_page()
    old_id = start_tictactoe(x, o)
    play_tictactoe_win(x, o)
    o.click("#rematch")
    o.wait_for_selector("#rematch[disabled]:text-is('Rematch offered')")
    o.wait_for_selector("#rematch-text:not([hidden])")
    assert o.inner_text("#rematch-text") == "Waiting for your opponent to accept."
    x.wait_for_selector("#rematch-text:not([hidden])")
    assert x.inner_text("#rematch-text") == "Your opponent wants a rematch."
    assert x.inner_text("#rematch") == "Accept the rematch"
    screenshot(x, "rematch", doc=True)
    x.click("#rematch")
    for page in (x, o):
        page.wait_for_url(re.compile(rf"#/game/tictactoe/(?!{old_id})"))
        page.wait_for_selector("#status[data-status='active']")
    new_id = game_id_of(x)
    assert game_id_of(o) == new_id
    assert seat_holders(web_server, new_id, token_of(x)) == {
        "x": user_id_of(o),
        "o": user_id_of(x),
    }
    o.wait_for_selector("#board[data-my-turn='true']")


def test_a_rematch_against_the_ai_starts_at_once(web_server: WebServer, new_page: Any) -> None:
    page = new_page()
    old_id = create_game(page, "tictactoe", "ai", side="x", level="1")
    page.wait_for_selector("#board[data-my-turn='true']")
    page.click("#resign")  # the fixture accepts the confirmation
    page.wait_for_selector("#status[data-status='finished']")
    page.click("#rematch")
    page.wait_for_url(re.compile(rf"#/game/tictactoe/(?!{old_id})"))
    page.wait_for_selector("#status[data-status='active']")
    new_game = web_server.get(f"/api/games/{game_id_of(page)}", token_of(page))
    assert new_game["seats"]["o"]["user_id"] == user_id_of(page)
    assert new_game["seats"]["x"]["kind"] == "ai" and new_game["seats"]["x"]["level"] == 1


def send_chat(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#chat-send")
    page.wait_for_function("() => document.querySelector('#chat-input').value === ''")


def chat_texts(page: Any) -> list[str]:
    return [str(text) for text in page.locator("#chat-log .chat-text").all_inner_texts()]


def test_chat_rooms_mute_and_text_never_markup(web_server: WebServer, new_page: Any) -> None:
    x = new_page()
    o = new_page()
    game_id = start_tictactoe(x, o)
    watcher = new_page(f"/#/game/tictactoe/{game_id}")
    watcher.wait_for_selector("#connection[data-state='open']")

    # A player's text is shown as typed on every page: no element made of it.
    send_chat(x, XSS)
    for page in (x, o, watcher):
        page.wait_for_selector("#chat-log[data-count='1']", state="attached")
        assert chat_texts(page) == [XSS]
        assert_no_html_ran(page)
    assert o.inner_text("#chat-log .chat-name") != "you"
    assert x.inner_text("#chat-log .chat-name") == "you"

    # Players have no tabs; a spectator reads the players' room (without writing) and
    # writes in the spectators' room, which the players never get.
    assert x.is_hidden("#chat-tabs") and watcher.is_visible("#chat-tabs")
    assert watcher.is_hidden("#chat-form") and watcher.is_visible("#chat-readonly")
    watcher.click("#chat-tabs [data-room='spectators']")
    send_chat(watcher, "hello from the stands")
    watcher.wait_for_selector("#chat-log[data-room='spectators'][data-count='1']", state="attached")
    screenshot(watcher, "chat-spectators")
    watcher.click("#chat-tabs [data-room='players']")

    # O mutes X: X's messages go from O's page, and a later one does not come.
    o.click("#chat-log .chat-mute")
    o.wait_for_selector("#chat-log[data-count='0']", state="attached")
    assert o.locator("#chat-muted li").count() == 1
    send_chat(x, "second")
    watcher.wait_for_selector("#chat-log[data-count='2']", state="attached")
    send_chat(o, "from o")
    o.wait_for_selector("#chat-log[data-count='1']", state="attached")
    x.wait_for_selector("#chat-log[data-count='3']", state="attached")
    assert chat_texts(o) == ["from o"]
    # Unmuted: everything X said is back (from the history).
    o.click("#chat-muted .chat-unmute")
    o.wait_for_selector("#chat-log[data-count='3']", state="attached")
    assert chat_texts(o) == [XSS, "second", "from o"]
    assert chat_texts(x) == chat_texts(o)
    assert "hello from the stands" not in chat_texts(x) + chat_texts(o)
    screenshot(x, "chat", doc=True)

    # A page opened later gets the history over REST; a spectator may fold the chat.
    late = new_page(f"/#/game/tictactoe/{game_id}")
    late.wait_for_selector("#chat-log[data-count='3']", state="attached")
    assert_no_html_ran(late)
    late.click("#chat-toggle")
    assert late.is_hidden("#chat-body") and late.inner_text("#chat-toggle") == "Show"
    late.click("#chat-toggle")
    late.click("#chat-tabs [data-room='spectators']")
    late.wait_for_selector("#chat-log[data-room='spectators'][data-count='1']", state="attached")
    assert chat_texts(late) == ["hello from the stands"]


NAME_XSS = "<img src=x onerror=__xss=1>"  # within the 32 characters a name may have


def test_guests_name_themselves_and_names_show_as_text(
    web_server: WebServer, new_page: Any
) -> None:
    ann = new_page()
    ann.wait_for_selector("#name-card:not([hidden])")
    # A name of spaces only is refused by the server, which says why.
    ann.fill("#name-input", "   ")
    ann.click("#name-save")
    ann.wait_for_selector("#name-error:not([hidden])")
    ann.fill("#name-input", NAME_XSS)
    ann.click("#name-save")
    ann.wait_for_selector("#name-card", state="hidden")
    assert ann.inner_text("#me") == NAME_XSS
    assert web_server.get("/api/me", token_of(ann))["name"] == NAME_XSS
    ann.reload()
    ann.wait_for_selector("body[data-ready='true']")
    assert ann.is_hidden("#name-card") and ann.inner_text("#me") == NAME_XSS

    bea = new_page()
    bea.click("#name-skip")
    bea.click("#rename")
    bea.fill("#name-input", "Bea")
    bea.click("#name-save")
    bea.wait_for_selector("#me:text-is('Bea')")

    game_id = create_game(ann, "tictactoe", "friend", side="x")
    bea.click("#refresh-games")
    row = bea.locator(f"#games tr[data-game-id='{game_id}'] .game-players")
    row.wait_for()
    assert row.inner_text() == f"X: {NAME_XSS} · O: open"
    bea.goto(f"/#/game/tictactoe/{game_id}")
    bea.click(".join-seat[data-seat='o']")
    ann.wait_for_selector("#players [data-seat='o'] .seat-name:text-is('Bea')")
    assert bea.inner_text("#players [data-seat='x'] .seat-name") == NAME_XSS
    send_chat(ann, "hi")
    bea.wait_for_selector("#chat-log[data-count='1']", state="attached")
    assert bea.inner_text("#chat-log .chat-name") == NAME_XSS
    for page in (ann, bea):
        assert_no_html_ran(page)
    screenshot(bea, "names", doc=True)


def test_announcements_reach_the_lobby_and_the_games(web_server: WebServer, new_page: Any) -> None:
    lobby = new_page()
    lobby.wait_for_selector("#lobby-live[data-state='open']")
    player = new_page()
    create_game(player, "connect4", "friend", side="red")
    text = f"Restart at 07:00 {XSS}"
    reply = httpx.post(
        web_server.base_url + "/api/admin/announce",
        json={"text": text},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert reply.status_code == 200, reply.text
    for page in (lobby, player):
        page.wait_for_selector("#message[data-code='announcement']")
        assert page.inner_text("#message") == f"Announcement: {text}"
        assert_no_html_ran(page)
