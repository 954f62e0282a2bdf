"""Profiles and display names against a real server (PROTOCOL.md "Players and names"):
guest names, `/api/me`, public profiles, a player's games paged, names in seats, PGN,
chat and the lobby, and the first name of a Supabase user from its token."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest

from gamesocket_client import GameClient
from tests.server_harness import Api, ServerThread, connect, free_port

BAD_NAMES = [
    "",
    "   ",
    "\t \n",
    "x" * 33,
    "a\u0007b",  # a control character
    "a\nb",
    "a\u0085b",  # C1 control (next line)
    "a\u2028b",  # line separator
    "evil\u202etxt.exe",  # right-to-left override
]


async def named_guest(api: Api, name: str | None = None) -> dict[str, Any]:
    reply = await api.http.post("/api/auth/guest", json=None if name is None else {"name": name})
    assert reply.status_code == 201, reply.text
    guest: dict[str, Any] = reply.json()
    guest["headers"] = {"Authorization": f"Bearer {guest['access_token']}"}
    return guest


async def profile_count(database_url: str) -> int:
    """How many profiles the server's database holds (SQLite, or Postgres)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(Path(database_url.removeprefix("sqlite:///"))) as conn:
            count: int = conn.execute("SELECT count(*) FROM profiles").fetchone()[0]
        return count
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval("select count(*) from public.profiles")
    finally:
        await conn.close()
    return count


def human(user: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "human", "user_id": user["user_id"], "name": user["name"]}


async def test_a_guest_is_named_as_asked_or_by_the_server(api: Api) -> None:
    alice = await named_guest(api, "  Alice <b>&</b>  ")
    assert alice["name"] == "Alice <b>&</b>"  # trimmed; HTML is data, kept verbatim
    me = await api.http.get("/api/me", headers=alice["headers"])
    assert me.status_code == 200
    assert me.json() == {"user_id": alice["user_id"], "name": "Alice <b>&</b>", "ratings": {}}
    public = await api.http.get(f"/api/users/{alice['user_id']}")
    assert public.status_code == 200 and public.json() == me.json()

    for guest in (await named_guest(api), await api.guest()):
        assert re.fullmatch(r"Guest \d{4}", guest["name"]), guest["name"]
        seen = (await api.http.get("/api/me", headers=guest["headers"])).json()
        assert seen["name"] == guest["name"]


async def test_the_python_client_learns_its_guests_name(server: ServerThread) -> None:
    async with GameClient(server.base_url) as client:
        assert (await client.guest("Ann")).name == "Ann"
        picked = await client.guest()
        assert picked.name is not None and re.fullmatch(r"Guest \d{4}", picked.name)


async def test_bad_guest_names_are_refused_and_make_no_guest(api: Api, database_url: str) -> None:
    await api.guest()
    before = await profile_count(database_url)
    for bad in [*BAD_NAMES, 7, None]:
        body: Any = {"name": bad} if bad is not None else {"name": None, "x": 1}
        reply = await api.http.post("/api/auth/guest", json=body)
        if bad is None:  # null is no name: the server picks one
            assert reply.status_code == 201
            before += 1
            continue
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["error"]["code"] == "bad_message"
    assert await profile_count(database_url) == before


async def test_patch_me_renames_within_the_rules(api: Api) -> None:
    alice = await named_guest(api, "Alice")
    url = "/api/me"
    renamed = await api.http.patch(
        url, json={"name": "  Queen of Hearts  "}, headers=alice["headers"]
    )
    assert renamed.status_code == 200
    assert renamed.json() == {"user_id": alice["user_id"], "name": "Queen of Hearts", "ratings": {}}
    longest = "é" * 32
    assert (await api.http.patch(url, json={"name": longest}, headers=alice["headers"])).json()[
        "name"
    ] == longest
    for bad in [*BAD_NAMES, 5, None, ["Alice"]]:
        reply = await api.http.patch(url, json={"name": bad}, headers=alice["headers"])
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["error"]["code"] == "bad_message"
    missing = await api.http.patch(url, json={}, headers=alice["headers"])
    assert missing.status_code == 400
    assert (await api.http.get(url, headers=alice["headers"])).json()["name"] == longest
    # Without a token: 401, for reading and for renaming.
    assert (await api.http.get(url)).status_code == 401
    assert (await api.http.patch(url, json={"name": "Mallory"})).status_code == 401
    assert (await api.http.get(f"/api/users/{alice['user_id']}")).json()["name"] == longest


async def test_a_bad_token_is_refused_on_public_reads(api: Api) -> None:
    alice = await named_guest(api, "Alice")
    bad = {"Authorization": "Bearer not-a-token"}
    for path in (f"/api/users/{alice['user_id']}", f"/api/users/{alice['user_id']}/games"):
        reply = await api.http.get(path, headers=bad)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"


async def test_unknown_users_are_not_found(api: Api) -> None:
    for user_id in (str(uuid.uuid4()), "nobody"):
        reply = await api.http.get(f"/api/users/{user_id}")
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"
        games = await api.http.get(f"/api/users/{user_id}/games")
        assert games.status_code == 404


async def test_seats_carry_the_names_they_were_taken_with(api: Api, server: ServerThread) -> None:
    alice, bob = await named_guest(api, "Alice"), await named_guest(api, "Bob")
    game = await api.create(alice, "tictactoe", seats={"x": "me", "o": None})
    assert game["seats"] == {"x": human(alice), "o": None}
    bob_socket = await connect(
        server.ws_url("tictactoe", game["game_id"], token=bob["access_token"])
    )
    await bob_socket.expect("hello")
    await bob_socket.expect("state")
    assert (await bob_socket.request(type="join", id="sit"))["type"] == "ack"
    update = await bob_socket.expect("update")
    assert update["seats"] == {"x": human(alice), "o": human(bob)}
    assert (await api.snapshot(game["game_id"]))["seats"] == update["seats"]
    # A replay of the stored events (a socket resuming from version 0) names them too.
    late = await connect(server.ws_url("tictactoe", game["game_id"], since=0))
    await late.expect("hello")
    replayed = await late.expect("update")
    assert replayed["seats"] == update["seats"]

    # A rename changes the names of seats taken afterwards, not those taken before.
    await api.http.patch("/api/me", json={"name": "Alicia"}, headers=alice["headers"])
    assert (await api.snapshot(game["game_id"]))["seats"]["x"]["name"] == "Alice"
    newer = await api.create(alice, "connect4", seats={"red": "me", "yellow": {"kind": "ai"}})
    assert newer["seats"]["red"] == {**human(alice), "name": "Alicia"}
    listed = await api.http.get("/api/games", params={"limit": 2})
    assert [s["seats"] for s in listed.json()] == [newer["seats"], update["seats"]]


async def test_pgn_tags_carry_the_display_names(api: Api) -> None:
    alice, bob = await named_guest(api, 'Alice "the" \\ Rook'), await named_guest(api, "Bob")
    game = await api.create(alice, "chess", seats={"white": "me"})
    joined = await api.http.post(
        f"/api/games/{game['game_id']}/join", json={"seat": "black"}, headers=bob["headers"]
    )
    assert joined.status_code == 200, joined.text
    await api.http.post(
        f"/api/games/{game['game_id']}/moves", json={"move": "e2e4"}, headers=alice["headers"]
    )
    pgn = (await api.http.get(f"/api/games/{game['game_id']}/pgn")).text
    # Escaped as the PGN standard says, so the name cannot end its tag.
    assert '[White "Alice \\"the\\" \\\\ Rook"]' in pgn and '[Black "Bob"]' in pgn, pgn
    vs_ai = await api.create(
        bob, "chess", seats={"white": {"kind": "ai", "level": 1}, "black": "me"}
    )
    pgn = (await api.http.get(f"/api/games/{vs_ai['game_id']}/pgn")).text
    assert '[White "gamesocket AI level 1"]' in pgn and '[Black "Bob"]' in pgn, pgn


async def test_a_players_games_page_by_page_private_ones_for_players_only(api: Api) -> None:
    alice, bob, carol = [await named_guest(api, n) for n in ("Alice", "Bob", "Carol")]
    made = []
    for number in range(5):
        private = number == 2
        game = await api.create(alice, "tictactoe", seats={"x": "me"}, public=not private)
        made.append(game["game_id"])
    await api.create(bob, "tictactoe", seats={"x": "me"})  # not alice's
    newest_first = made[::-1]

    async def pages(viewer: dict[str, Any] | None, limit: int) -> list[list[str]]:
        headers = viewer["headers"] if viewer else {}
        found, before = [], None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if before is not None:
                params["before"] = before
            reply = await api.http.get(
                f"/api/users/{alice['user_id']}/games", params=params, headers=headers
            )
            assert reply.status_code == 200, reply.text
            page = reply.json()
            found.append([g["game_id"] for g in page["games"]])
            for snapshot in page["games"]:
                assert snapshot["seats"]["x"] == human(alice)
            before = page["next_before"]
            if before is None:
                return found

    assert await pages(alice, 2) == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    public = [g for g in newest_first if g != made[2]]
    assert await pages(carol, 2) == [public[:2], public[2:]]
    assert await pages(None, 10) == [public]
    assert await pages(bob, 4) == [public]  # not seated in the private one
    url = f"/api/users/{alice['user_id']}/games"
    for bad in ({"before": "yesterday"}, {"before": "-5.x"}, {"limit": 0}, {"limit": 201}):
        reply = await api.http.get(url, params=bad)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_message"


async def test_chat_and_seeks_show_the_display_name(api: Api, server: ServerThread) -> None:
    alice, bob = await named_guest(api, "Alice"), await named_guest(api, "Bob")
    game = await api.create(alice, "tictactoe", seats={"x": "me", "o": None})
    socket = await connect(server.ws_url("tictactoe", game["game_id"], token=bob["access_token"]))
    await socket.expect("hello")
    await socket.expect("state")
    assert (await socket.request(type="chat", text="hi", id="c1"))["type"] == "ack"
    assert (await socket.expect("chat"))["name"] == "Bob"
    await api.http.patch("/api/me", json={"name": "Robert"}, headers=bob["headers"])
    history = await api.http.get(
        f"/api/games/{game['game_id']}/chat", params={"room": "spectators"}, headers=bob["headers"]
    )
    assert [m["name"] for m in history.json()] == ["Robert"]  # the author as named now

    lobby = await connect(f"ws://127.0.0.1:{server.base_url.rsplit(':', 1)[1]}/ws/lobby")
    await lobby.expect("hello")
    await lobby.expect("lobby")
    seek = await api.http.post(
        "/api/seeks", json={"game_type": "connect4"}, headers=alice["headers"]
    )
    assert seek.status_code == 201
    added: list[dict[str, Any]] = []
    while not any("seek_id" in item for item in added):
        added = (await lobby.expect("lobby_update"))["added"]
    seeks = [(s["seek_id"], s["name"]) for s in added if "seek_id" in s]
    assert seeks == [(seek.json()["seek_id"], "Alice")]
    fresh = await connect(f"ws://127.0.0.1:{server.base_url.rsplit(':', 1)[1]}/ws/lobby")
    await fresh.expect("hello")
    assert [s["name"] for s in (await fresh.expect("lobby"))["seeks"]] == ["Alice"]
    paired = await api.http.post(
        "/api/seeks", json={"game_type": "connect4"}, headers=bob["headers"]
    )
    game_id = paired.json()["game_id"]
    seats = (await api.snapshot(game_id))["seats"]
    assert sorted(s["name"] for s in seats.values()) == ["Alice", "Robert"]


SECRET = "a-supabase-jwt-secret-of-at-least-32-characters"


def supabase_token(supabase_url: str, **claims: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iss": f"{supabase_url}/auth/v1",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    return {"user_id": payload["sub"], "headers": {"Authorization": f"Bearer {token}"}}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"name": "Ada Lovelace", "full_name": "Augusta Ada King"}, "Ada Lovelace"),
        ({"full_name": "  Grace Hopper  "}, "Grace Hopper"),
        ({"user_name": "alan_t"}, "alan_t"),
        ({"name": "\u0007", "user_name": "fallback"}, "fallback"),
        ({"name": "y" * 40}, "y" * 32),
        ({}, None),
    ],
)
async def test_a_supabase_user_is_first_named_from_the_token(
    start_server: Callable[..., ServerThread], metadata: dict[str, Any], expected: str | None
) -> None:
    supabase_url = f"http://127.0.0.1:{free_port()}"  # closed: the JWKS warm-up fails fast
    server = start_server(
        supabase_jwt_secret=SECRET, supabase_url=supabase_url, supabase_anon_key="anon-key"
    )
    api = Api(server.base_url)
    try:
        user = supabase_token(supabase_url, user_metadata=metadata)
        game = await api.http.post(
            "/api/games",
            json={"game_type": "tictactoe", "seats": {"x": "me"}},
            headers=user["headers"],
        )
        assert game.status_code == 201, game.text
        name = game.json()["seats"]["x"]["name"]
        if expected is None:
            assert re.fullmatch(r"Player \d{4}", name), name
        else:
            assert name == expected
        me = await api.http.get("/api/me", headers=user["headers"])
        assert me.json() == {"user_id": user["user_id"], "name": name, "ratings": {}}
        # The token's name counts only at first sight: a rename sticks.
        await api.http.patch("/api/me", json={"name": "Renamed"}, headers=user["headers"])
        assert (await api.http.get("/api/me", headers=user["headers"])).json()["name"] == "Renamed"
    finally:
        await api.close()


async def test_a_rematch_seats_the_players_under_their_current_names(api: Api) -> None:
    alice, bob = await named_guest(api, "Alice"), await named_guest(api, "Bob")
    game = await api.create(alice, "tictactoe", seats={"x": "me"})
    game_id = game["game_id"]
    joined = await api.http.post(f"/api/games/{game_id}/join", json={}, headers=bob["headers"])
    assert joined.status_code == 200, joined.text
    resigned = await api.http.post(f"/api/games/{game_id}/resign", headers=alice["headers"])
    assert resigned.status_code == 200, resigned.text
    await api.http.patch("/api/me", json={"name": "Robert"}, headers=bob["headers"])
    for user in (alice, bob):
        reply = await api.http.post(f"/api/games/{game_id}/rematch", headers=user["headers"])
        assert reply.status_code == 200, reply.text
    rematch = await api.snapshot(reply.json()["game_id"])
    assert rematch["seats"] == {"x": {**human(bob), "name": "Robert"}, "o": human(alice)}
    # The finished game still says who played it, as they were named then.
    assert (await api.snapshot(game_id))["seats"]["o"] == human(bob)
