"""Ratings against a real server (PROTOCOL.md "Ratings"): rated games played to their end
over REST and sockets, the ratings the store wrote checked against the Glicko-2 function,
the refusals, seeks, rematches and the leaderboard.

Guests play unrated only, so these servers verify Supabase-style tokens signed with a
JWT secret. On SQLite here; tests/system/test_postgres_server.py runs them on Postgres.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from socket_server.ratings import Rating, after_game, seat_rating
from socket_server.store import sqlite_path
from socket_server.store.settle import PlayerRating
from tests.server_harness import Api, ServerThread

SECRET = "ratings-test-secret-that-is-long-enough-for-hs256"
ISSUER = "https://ratings.test/auth/v1"
GAME = "tictactoe"
X_WINS = (("x", 0), ("o", 3), ("x", 1), ("o", 4), ("x", 2))  # x: three in a row
DRAWN = (
    ("x", 0), ("o", 4), ("x", 8), ("o", 1), ("x", 7), ("o", 6), ("x", 2), ("o", 5), ("x", 3),
)  # fmt: skip


@pytest.fixture
def rated_server(start_server: Callable[..., ServerThread]) -> ServerThread:
    # Claims of abandoned games at once: nobody here has a socket open.
    return start_server(supabase_jwt_secret=SECRET, jwt_issuer=ISSUER, claim_after_seconds=0)


@pytest.fixture
async def api(rated_server: ServerThread) -> AsyncIterator[Api]:
    client = Api(rated_server.base_url)
    yield client
    await client.close()


def user(*, guest: bool = False, name: str | None = None) -> dict[str, Any]:
    """A signed-in Supabase user (an anonymous one with `guest`) and its headers."""
    user_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "is_anonymous": guest,
        "user_metadata": {"name": name} if name else {},
    }
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    return {"user_id": user_id, "headers": {"Authorization": f"Bearer {token}"}}


async def post(api: Api, who: dict[str, Any], path: str, body: Any = None) -> Any:
    return await api.http.post(path, json=body or {}, headers=who["headers"])


async def rated_game(api: Api, x: dict[str, Any], o: dict[str, Any], **body: Any) -> dict[str, Any]:
    """A rated game x created and o joined: active, both seats rated."""
    created = await post(
        api, x, "/api/games", {"game_type": GAME, "seats": {"x": "me"}, "rated": True, **body}
    )
    assert created.status_code == 201, created.text
    game_id = created.json()["game_id"]
    joined = await post(api, o, f"/api/games/{game_id}/join")
    assert joined.status_code == 200, joined.text
    return await api.snapshot(game_id)


async def play(api: Api, game_id: str, players: dict[str, dict[str, Any]], line: Any) -> None:
    for seat, cell in line:
        moved = await post(api, players[seat], f"/api/games/{game_id}/moves", {"move": cell})
        assert moved.status_code == 200, moved.text


async def ratings(server: ServerThread, *users: dict[str, Any]) -> dict[str, PlayerRating]:
    ids = [u["user_id"] for u in users]
    return await server.call(server.context.service.ratings.ratings_of(GAME, ids))


def seat_of(game: dict[str, Any], seat: str) -> tuple[str, int]:
    """The user and rating a human seat shows (it carries the player's name too)."""
    shown = game["seats"][seat]
    assert shown["kind"] == "human" and isinstance(shown["name"], str)
    return shown["user_id"], shown["rating"]


def close_to(found: Rating, expected: Rating) -> bool:
    return (
        found.rating == pytest.approx(expected.rating, abs=1e-6)
        and found.deviation == pytest.approx(expected.deviation, abs=1e-6)
        and found.volatility == pytest.approx(expected.volatility, abs=1e-9)
    )


async def test_a_rated_game_played_to_its_end_rates_both_players(
    api: Api, rated_server: ServerThread
) -> None:
    alice, bob = user(), user()
    game = await rated_game(api, alice, bob)
    assert game["rated"] is True and game["status"] == "active"
    assert seat_of(game, "x") == (alice["user_id"], 1500)
    assert seat_of(game, "o") == (bob["user_id"], 1500)
    before = await ratings(rated_server, alice, bob)
    assert before[alice["user_id"]].games == 0  # nothing stored before the end

    await play(api, game["game_id"], {"x": alice, "o": bob}, X_WINS)
    assert (await api.snapshot(game["game_id"]))["result"]["winner"] == "x"
    won, lost = after_game(Rating(), Rating(), 1.0)
    after = await ratings(rated_server, alice, bob)
    assert close_to(after[alice["user_id"]].rating, won)
    assert close_to(after[bob["user_id"]].rating, lost)
    assert after[alice["user_id"]].games == after[bob["user_id"]].games == 1

    # The next game starts from them: the seats show the new ratings, rounded.
    second = await rated_game(api, bob, alice)
    assert second["seats"]["x"]["rating"] == seat_rating(lost) == 1338
    assert second["seats"]["o"]["rating"] == seat_rating(won) == 1662
    # A resignation is an end like any other (bob, x, resigns: alice wins again).
    resigned = await post(api, bob, f"/api/games/{second['game_id']}/resign")
    assert resigned.status_code == 200, resigned.text
    won_again, lost_again = after_game(won, lost, 1.0)
    final = await ratings(rated_server, alice, bob)
    assert close_to(final[alice["user_id"]].rating, won_again)
    assert close_to(final[bob["user_id"]].rating, lost_again)
    assert final[bob["user_id"]].games == 2
    # The profiles show them (rounded to two decimals).
    profile = await api.http.get(f"/api/users/{alice['user_id']}")
    assert profile.status_code == 200, profile.text
    assert profile.json()["ratings"] == {
        GAME: {
            "rating": round(won_again.rating, 2),
            "deviation": round(won_again.deviation, 2),
            "games": 2,
        }
    }
    me = await api.http.get("/api/me", headers=bob["headers"])
    assert me.json()["ratings"][GAME]["rating"] == round(lost_again.rating, 2)


async def test_a_rated_draw_scores_half_each(api: Api, rated_server: ServerThread) -> None:
    alice, bob = user(), user()
    game = await rated_game(api, alice, bob)
    await play(api, game["game_id"], {"x": alice, "o": bob}, DRAWN)
    assert (await api.snapshot(game["game_id"]))["result"] == {
        "winner": None,
        "reason": "board_full",
    }
    drawn, _ = after_game(Rating(), Rating(), 0.5)
    after = await ratings(rated_server, alice, bob)
    for player in (alice, bob):
        assert close_to(after[player["user_id"]].rating, drawn)
        assert after[player["user_id"]].games == 1
    assert drawn.rating == pytest.approx(1500) and drawn.deviation < 350


async def test_an_agreed_draw_a_timeout_and_a_claim_rate_too(
    api: Api, rated_server: ServerThread
) -> None:
    alice, bob = user(), user()
    game = await rated_game(api, alice, bob)
    offered = await post(api, alice, f"/api/games/{game['game_id']}/draw", {"action": "offer"})
    assert offered.status_code == 200, offered.text
    accepted = await post(api, bob, f"/api/games/{game['game_id']}/draw", {"action": "accept"})
    assert accepted.status_code == 200, accepted.text
    drawn, _ = after_game(Rating(), Rating(), 0.5)
    assert close_to((await ratings(rated_server, alice))[alice["user_id"]].rating, drawn)

    # x (alice) lets her first move's second run out: the server stores the timeout.
    timed = await rated_game(api, alice, bob, clock={"per_move_ms": 1000})
    over = await api.wait_for(timed["game_id"], lambda s: s["status"] == "finished", wait=15)
    assert over["result"] == {"winner": "o", "reason": "timeout"}
    lost, won = after_game(drawn, drawn, 0.0)
    after = await ratings(rated_server, alice, bob)
    assert close_to(after[alice["user_id"]].rating, lost)
    assert close_to(after[bob["user_id"]].rating, won)
    assert after[alice["user_id"]].games == 2

    # Bob (o) abandons a game (no socket): alice claims it.
    claimed = await rated_game(api, alice, bob)
    moved = await post(api, alice, f"/api/games/{claimed['game_id']}/moves", {"move": 4})
    assert moved.status_code == 200, moved.text
    claim = await post(api, alice, f"/api/games/{claimed['game_id']}/claim")
    assert claim.status_code == 200, claim.text
    won_claim, lost_claim = after_game(lost, won, 1.0)
    final = await ratings(rated_server, alice, bob)
    assert close_to(final[alice["user_id"]].rating, won_claim)
    assert close_to(final[bob["user_id"]].rating, lost_claim)


async def test_an_aborted_or_unrated_game_changes_no_rating(
    api: Api, rated_server: ServerThread
) -> None:
    alice, bob = user(), user()
    game = await rated_game(api, alice, bob)
    aborted = await post(api, alice, f"/api/games/{game['game_id']}/abort")
    assert aborted.status_code == 200, aborted.text
    unrated = await post(api, alice, "/api/games", {"game_type": GAME, "seats": {"x": "me"}})
    game_id = unrated.json()["game_id"]
    assert unrated.json()["rated"] is False
    assert (await post(api, bob, f"/api/games/{game_id}/join")).status_code == 200
    snapshot = await api.snapshot(game_id)
    assert "rating" not in snapshot["seats"]["x"] and "rating" not in snapshot["seats"]["o"]
    await play(api, game_id, {"x": alice, "o": bob}, X_WINS)
    found = await ratings(rated_server, alice, bob)
    assert all(row.games == 0 and row.rating == Rating() for row in found.values())


async def test_what_a_rated_game_refuses(api: Api) -> None:
    alice, bob, guest = user(), user(), user(guest=True)
    cases = [
        (alice, {"seats": {"x": "me", "o": {"kind": "ai", "level": 2}}}),  # an AI seat
        (alice, {"seats": {"x": "me", "o": "me"}}),  # one user in both seats
        (guest, {"seats": {"x": "me"}}),  # guests play unrated only
    ]
    for who, body in cases:
        refused = await post(api, who, "/api/games", {"game_type": GAME, "rated": True, **body})
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["error"]["code"] == "bad_message"
    smuggled = await post(api, alice, "/api/games", {"game_type": GAME, "options": {"rated": True}})
    assert smuggled.status_code == 400, smuggled.text

    created = await post(
        api, alice, "/api/games", {"game_type": GAME, "seats": {"x": "me"}, "rated": True}
    )
    game_id = created.json()["game_id"]
    assert created.json()["seats"]["x"]["rating"] == 1500 and created.json()["status"] == "waiting"
    for who, body in ((alice, {"seat": "o"}), (guest, {})):
        joined = await post(api, who, f"/api/games/{game_id}/join", body)
        assert joined.status_code == 400, joined.text
        assert joined.json()["error"]["code"] == "bad_message"
    assert (await api.snapshot(game_id))["seats"]["o"] is None
    # Asking again for the seat one holds changes nothing, rated or not.
    assert (await post(api, alice, f"/api/games/{game_id}/join", {"seat": "x"})).status_code == 200
    assert (await post(api, bob, f"/api/games/{game_id}/join")).status_code == 200


async def test_rated_seeks_pair_into_a_rated_game(api: Api, rated_server: ServerThread) -> None:
    alice, bob, carol, guest = user(), user(), user(), user(guest=True)
    refused = await post(api, guest, "/api/seeks", {"game_type": GAME, "rated": True})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "bad_message"
    waiting = await post(api, alice, "/api/seeks", {"game_type": GAME, "rated": True})
    assert waiting.json()["status"] == "waiting"
    unrated = await post(api, carol, "/api/seeks", {"game_type": GAME})  # another pool
    assert unrated.json()["status"] == "waiting"
    paired = await post(api, bob, "/api/seeks", {"game_type": GAME, "rated": True})
    assert paired.json()["status"] == "paired", paired.text
    game = await api.snapshot(paired.json()["game_id"])
    assert game["rated"] is True and game["status"] == "active"
    assert {seat["user_id"] for seat in game["seats"].values()} == {
        alice["user_id"],
        bob["user_id"],
    }
    assert all(seat["rating"] == 1500 for seat in game["seats"].values())
    resigned = await post(api, alice, f"/api/games/{game['game_id']}/resign")
    assert resigned.status_code == 200, resigned.text
    found = await ratings(rated_server, alice, bob)
    assert found[bob["user_id"]].rating.rating > 1500 > found[alice["user_id"]].rating.rating


async def test_a_rematch_of_a_rated_game_is_rated_with_the_new_ratings(api: Api) -> None:
    alice, bob = user(), user()
    game = await rated_game(api, alice, bob)
    await play(api, game["game_id"], {"x": alice, "o": bob}, X_WINS)
    for who in (alice, bob):
        asked = await post(api, who, f"/api/games/{game['game_id']}/rematch")
        assert asked.status_code == 200, asked.text
    new = await api.snapshot(asked.json()["game_id"])
    won, lost = after_game(Rating(), Rating(), 1.0)
    assert new["rated"] is True
    assert seat_of(new, "x") == (bob["user_id"], 1338)
    assert seat_of(new, "o") == (alice["user_id"], seat_rating(won))
    assert seat_rating(lost) == 1338


def seed(server: ServerThread, rows: list[tuple[str, str, float, float, int]]) -> None:
    """Ratings written straight into the server's SQLite file (user, type, rating, RD, games)."""
    path = sqlite_path(server.settings.effective_database_url)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO ratings (user_id, game_type, rating, deviation, volatility, games,"
            " updated_at) VALUES (?, ?, ?, ?, 0.06, ?, '2026-12-02T00:00:00+00:00')",
            rows,
        )


async def test_the_leaderboard_is_best_first_without_unsettled_players(
    api: Api, rated_server: ServerThread
) -> None:
    if not rated_server.settings.effective_database_url.startswith("sqlite"):
        pytest.skip("seeds the SQLite file (the store tests seed every store)")
    ids = [str(uuid.uuid4()) for _ in range(5)]
    ada = user(name="Ada")
    ids[3] = ada["user_id"]
    assert (await api.http.get("/api/me", headers=ada["headers"])).json()["name"] == "Ada"
    seed(
        rated_server,
        [
            (ids[0], GAME, 1700.0, 120.0, 30),
            (ids[1], GAME, 1900.0, 150.0, 12),  # exactly 150: kept
            (ids[2], GAME, 2100.0, 150.5, 9),  # not settled: left out
            (ids[3], GAME, 1600.123, 60.456, 80),
            (ids[4], "connect4", 2500.0, 50.0, 40),  # another game type
        ],
    )
    board = await api.http.get("/api/leaderboard", params={"game_type": GAME})
    assert board.status_code == 200, board.text
    assert [row["user_id"] for row in board.json()] == [ids[1], ids[0], ids[3]]
    assert board.json()[0]["name"] == ids[1]  # no profile: the id stands in
    assert board.json()[2] == {
        "user_id": ids[3],
        "name": "Ada",
        "rating": 1600.12,
        "deviation": 60.46,
        "games": 80,
    }
    top = await api.http.get("/api/leaderboard", params={"game_type": GAME, "limit": 1})
    assert [row["user_id"] for row in top.json()] == [ids[1]]
    for params in ({"game_type": "go"}, {}, {"game_type": GAME, "limit": 0}):
        bad = await api.http.get("/api/leaderboard", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["code"] == "bad_message"
