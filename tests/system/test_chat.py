"""Chat and announcements against a real server on SQLite (PROTOCOL.md "Chat",
"Announcements"): the rooms and who reads them, private games, the limits, the history
over REST, mutes, idempotent resends, and who may announce."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.server_harness import Api, Client, ServerThread, connect

ADMIN_TOKEN = "an-admin-token-for-the-tests"
QUIET = 0.3  # seconds a socket is watched for a message that must not come


@pytest.fixture
def server(start_server: Callable[..., ServerThread]) -> ServerThread:
    return start_server(admin_token=ADMIN_TOKEN)


async def watcher(server: ServerThread, game_id: str, user: dict[str, Any] | None) -> Client:
    query = {"token": user["access_token"]} if user else {}
    client = await connect(server.ws_url("tictactoe", game_id, **query))
    await client.expect("hello")
    await client.expect("state")
    return client


async def table(api: Api, server: ServerThread) -> dict[str, Any]:
    """An active tic-tac-toe game: alice (x) and bob (o) seated and connected."""
    alice, bob = await api.guest(), await api.guest()
    game = await api.create(alice, "tictactoe", seats={"x": "me"})
    game_id = game["game_id"]
    a = await watcher(server, game_id, alice)
    b = await watcher(server, game_id, bob)
    assert (await b.request(type="join", seat="o", id="sit"))["type"] == "ack"
    await a.expect("update")
    return {"game_id": game_id, "alice": alice, "bob": bob, "a": a, "b": b}


async def chat(client: Client, wait: float = 10.0) -> dict[str, Any]:
    return await client.expect("chat", wait=wait)


async def nothing_arrives(client: Client, kind: str = "chat") -> None:
    """No message of `kind` reaches `client` within QUIET seconds."""
    try:
        while True:
            message = await client.recv(QUIET)
            assert message["type"] != kind, message
    except TimeoutError:
        return


async def history(api: Api, game_id: str, user: dict[str, Any] | None, **query: Any) -> Any:
    headers = user["headers"] if user else {}
    return await api.http.get(f"/api/games/{game_id}/chat", params=query, headers=headers)


async def test_each_room_reaches_exactly_its_readers(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a, b = t["game_id"], t["a"], t["b"]
    carol = await api.guest()
    c = await watcher(server, game_id, carol)
    anon = await watcher(server, game_id, None)
    before = (await api.snapshot(game_id))["version"]

    ack = await a.request(type="chat", text="  good luck  ", id="gl")
    assert ack == {"type": "ack", "ref": "gl", "version": before}
    for client in (a, b, c, anon):
        message = await chat(client)
        assert message["room"] == "players" and message["seq"] == 1
        assert message["text"] == "good luck" and message["game_id"] == game_id
        assert message["user_id"] == t["alice"]["user_id"]
        assert message["name"] == t["alice"]["name"]
        assert message["at"]

    assert (await c.request(type="chat", text="who wins?", id="q"))["type"] == "ack"
    for client in (c, anon):
        message = await chat(client)
        assert (message["room"], message["seq"], message["text"]) == ("spectators", 2, "who wins?")
    # The players never see it: their next chat message is the next players' one.
    assert (await b.request(type="chat", text="thanks", room="players", id="t"))["type"] == "ack"
    for client in (a, b):
        message = await chat(client)
        assert (message["room"], message["seq"]) == ("players", 3)
    assert (await chat(c))["seq"] == 3
    assert (await api.snapshot(game_id))["version"] == before  # chat changes no version


async def test_who_may_write_where(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a = t["game_id"], t["a"]
    c = await watcher(server, game_id, await api.guest())
    anon = await watcher(server, game_id, None)
    refusals: list[tuple[Client, dict[str, Any], str]] = [
        (anon, {"text": "hello"}, "unauthorized"),
        (a, {"text": "psst", "room": "spectators"}, "forbidden"),
        (c, {"text": "let me in", "room": "players"}, "forbidden"),
        (a, {"text": "x" * 501}, "bad_message"),
        (c, {"text": " \n\t "}, "bad_message"),
        (a, {"text": ""}, "bad_message"),
        (a, {"text": 5}, "bad_message"),
        (a, {"text": "hi", "room": "lobby"}, "bad_message"),
    ]
    for index, (client, body, code) in enumerate(refusals):
        reply = await client.request(type="chat", id=f"r{index}", **body)
        assert (reply["type"], reply["code"], reply["ref"]) == ("error", code, f"r{index}"), body
    for room in ("players", "spectators"):
        assert (await history(api, game_id, None, room=room)).json() == []
    # 500 characters (after trimming) is the most there may be.
    longest = "y" * 500
    assert (await a.request(type="chat", text=f" {longest} ", id="long"))["type"] == "ack"
    assert (await chat(c))["text"] == longest


async def test_a_flood_is_rate_limited_and_not_stored(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a, b = t["game_id"], t["a"], t["b"]
    for n in range(5):
        assert (await a.request(type="chat", text=f"m{n}", id=f"m{n}"))["type"] == "ack"
    for n in range(5, 8):
        reply = await a.request(type="chat", text=f"m{n}", id=f"m{n}")
        assert (reply["type"], reply["code"]) == ("error", "rate_limited")
    # Another author of the same game is not limited by alice's messages.
    assert (await b.request(type="chat", text="calm down", id="b"))["type"] == "ack"
    stored = (await history(api, game_id, None)).json()
    assert [m["text"] for m in stored] == ["m0", "m1", "m2", "m3", "m4", "calm down"]
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5, 6]


async def test_history_pages_and_rooms_over_rest(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a, alice = t["game_id"], t["a"], t["alice"]
    carol = await api.guest()
    c = await watcher(server, game_id, carol)
    for n in range(3):
        assert (await a.request(type="chat", text=f"p{n}", id=f"p{n}"))["type"] == "ack"
    assert (await c.request(type="chat", text="s0", id="s0"))["type"] == "ack"

    players = (await history(api, game_id, None)).json()
    assert [(m["seq"], m["text"], m["room"]) for m in players] == [
        (1, "p0", "players"),
        (2, "p1", "players"),
        (3, "p2", "players"),
    ]
    assert players[0]["name"] == alice["name"]
    page = (await history(api, game_id, None, room="players", after=1, limit=1)).json()
    assert [m["seq"] for m in page] == [2]
    spectators = await history(api, game_id, carol, room="spectators")
    assert [m["text"] for m in spectators.json()] == ["s0"]
    assert (await history(api, game_id, None, room="spectators")).json()[0]["seq"] == 4
    refused = await history(api, game_id, alice, room="spectators")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    for bad in ({"room": "lobby"}, {"after": -1}, {"limit": 0}):
        assert (await history(api, game_id, None, **bad)).status_code == 400, bad
    missing = await history(api, "00000000-0000-4000-8000-000000000000", None)
    assert missing.status_code == 404


async def test_a_private_games_chat_is_private(api: Api, server: ServerThread) -> None:
    alice, stranger = await api.guest(), await api.guest()
    seats = {"x": "me", "o": {"kind": "ai", "level": 1}}
    game_id = (await api.create(alice, "tictactoe", seats=seats, public=False))["game_id"]
    a = await watcher(server, game_id, alice)
    assert (await a.request(type="chat", text="just me", id="j"))["type"] == "ack"
    assert (await chat(a))["text"] == "just me"
    assert (await history(api, game_id, None)).status_code == 401
    assert (await history(api, game_id, stranger)).status_code == 403
    mine = await history(api, game_id, alice)
    assert [m["text"] for m in mine.json()] == ["just me"]


async def test_mute_is_per_socket_and_can_be_undone(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a, b = t["game_id"], t["a"], t["b"]
    c = await watcher(server, game_id, await api.guest())
    alice_id = t["alice"]["user_id"]
    assert (await b.request(type="mute", user_id=alice_id, muted=True, id="m"))["type"] == "ack"
    assert (await a.request(type="chat", text="can you hear me", id="1"))["type"] == "ack"
    assert (await chat(c))["text"] == "can you hear me"
    await nothing_arrives(b)
    assert (await b.request(type="mute", user_id=alice_id, muted=False, id="u"))["type"] == "ack"
    assert (await a.request(type="chat", text="now?", id="2"))["type"] == "ack"
    assert (await chat(b))["text"] == "now?"
    # The mute was bob's socket's: the history keeps everything.
    assert len((await history(api, game_id, None)).json()) == 2


async def test_a_resent_chat_is_stored_once(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    game_id, a, b = t["game_id"], t["a"], t["b"]
    first = await a.request(type="chat", text="once", id="same")
    assert (await chat(b))["seq"] == 1
    await a.connection.close()
    again = await watcher(server, game_id, t["alice"])  # a reconnect resends it
    assert await again.request(type="chat", text="once", id="same") == first
    await nothing_arrives(b)
    assert [m["text"] for m in (await history(api, game_id, None)).json()] == ["once"]


async def test_announcements_need_an_administrator(api: Api, server: ServerThread) -> None:
    t = await table(api, server)
    other = await table(api, server)
    anon = await watcher(server, other["game_id"], None)
    url = "/api/admin/announce"
    assert (await api.http.post(url, json={"text": "hi"})).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert (await api.http.post(url, json={"text": "hi"}, headers=wrong)).status_code == 401
    guest = await api.http.post(url, json={"text": "hi"}, headers=t["alice"]["headers"])
    assert guest.status_code == 403
    for client in (t["a"], anon):
        await nothing_arrives(client, "announcement")

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    reply = await api.http.post(url, json={"text": " maintenance at 23:00 "}, headers=admin)
    assert reply.status_code == 200, reply.text
    sent = reply.json()
    assert sent["text"] == "maintenance at 23:00" and sent["at"]
    for client in (t["a"], t["b"], other["a"], other["b"], anon):
        message = await client.expect("announcement")
        assert message == {"type": "announcement", "text": sent["text"], "at": sent["at"]}
    too_long = await api.http.post(url, json={"text": "z" * 501}, headers=admin)
    assert too_long.status_code == 400
    await asyncio.gather(*(nothing_arrives(c, "announcement") for c in (t["a"], anon)))
