"""Profiles (store/profiles.py) on every store: names, renames, a player's games paged."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from socket_server.store import Actor, GameStore
from socket_server.store.profiles import Profile, ProfileStore, profiles_for
from socket_server.store.sqlite import _GAME_COLUMNS, MIGRATIONS, SqliteStore, _game_row
from tests.integration.test_store_contract import (
    ALICE,
    BOB,
    CAROL,
    STORE_FACTORIES,
    T0,
    human,
    make_game,
    next_version,
)


@pytest.fixture(params=list(STORE_FACTORIES))
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[GameStore, ProfileStore]]:
    async with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened, profiles_for(opened)


async def test_create_keeps_the_first_name_and_set_name_renames(
    stores: tuple[GameStore, ProfileStore],
) -> None:
    _, profiles = stores
    assert await profiles.get(ALICE.user_id or "") is None
    assert await profiles.create(ALICE, "Alice") == Profile(ALICE.user_id or "", "Alice")
    # Created once: a second create (first sight on another process, say) keeps it.
    assert await profiles.create(ALICE, "Someone else") == Profile(ALICE.user_id or "", "Alice")
    assert await profiles.set_name(ALICE, "<b>Alice</b> & co") == Profile(
        ALICE.user_id or "", "<b>Alice</b> & co"
    )
    assert await profiles.get(ALICE.user_id or "") == Profile(
        ALICE.user_id or "", "<b>Alice</b> & co"
    )
    # set_name creates a profile that did not exist.
    assert await profiles.set_name(BOB, "Bob") == Profile(BOB.user_id or "", "Bob")


async def test_display_names_of_many_users_at_once(
    stores: tuple[GameStore, ProfileStore],
) -> None:
    _, profiles = stores
    await profiles.create(ALICE, "Alice")
    await profiles.create(BOB, "Bøb 😀")
    unknown = str(uuid.uuid4())
    wanted = [ALICE.user_id or "", BOB.user_id or "", unknown, ALICE.user_id or "", "not-a-uuid"]
    assert await profiles.display_names(wanted) == {
        ALICE.user_id: "Alice",
        BOB.user_id: "Bøb 😀",
    }
    assert await profiles.display_names([]) == {}


async def test_a_profile_is_written_only_as_its_user(
    stores: tuple[GameStore, ProfileStore],
) -> None:
    _, profiles = stores
    for actor in (Actor.SERVER, Actor.ANONYMOUS):
        with pytest.raises(ValueError, match="own user"):
            await profiles.set_name(actor, "Nobody")
        with pytest.raises(ValueError, match="own user"):
            await profiles.create(actor, "Nobody")


async def test_games_of_pages_newest_first_with_private_games_hidden(
    stores: tuple[GameStore, ProfileStore],
) -> None:
    store, profiles = stores
    user_id = ALICE.user_id or ""
    games = []
    for minute in range(5):
        game = make_game(
            "tictactoe",
            (human(ALICE), human(BOB)),
            public=minute != 2,
            created_at=T0 + timedelta(minutes=minute),
        )
        await store.create_game(game, Actor.SERVER)
        games.append(game)
    # Two games created at the same instant: the id breaks the tie, no game is lost.
    twins = [make_game("tictactoe", (human(BOB), human(ALICE)), created_at=T0) for _ in range(2)]
    for game in twins:
        await store.create_game(game, Actor.SERVER)
    await store.create_game(make_game("tictactoe", (human(BOB), human(CAROL))), Actor.SERVER)
    newest_first = sorted([*games, *twins], key=lambda g: (g.created_at, g.game_id), reverse=True)

    def flat(pages: list[list[str]]) -> list[str]:
        return [game_id for page in pages for game_id in page]

    async def pages(actor: Actor, limit: int) -> list[list[str]]:
        found: list[list[str]] = []
        before = None
        while True:
            page = await profiles.games_of(user_id, actor, limit, before)
            if not page:
                return found
            found.append([g.game_id for g in page])
            before = (page[-1].created_at, page[-1].game_id)

    every = [g.game_id for g in newest_first]
    assert await pages(ALICE, 3) == [every[:3], every[3:6], every[6:]]
    public = [g.game_id for g in newest_first if g.public]
    assert flat(await pages(CAROL, 2)) == public
    assert flat(await pages(Actor.ANONYMOUS, 10)) == public
    assert flat(await pages(BOB, 10)) == every  # bob sits in the private one too
    assert await profiles.games_of(str(uuid.uuid4()), ALICE, 10) == []


async def test_games_of_sees_seats_taken_by_a_join(
    stores: tuple[GameStore, ProfileStore],
) -> None:
    store, profiles = stores
    game = make_game("tictactoe", (human(ALICE), None), status="waiting")
    await store.create_game(game, Actor.SERVER)
    assert await profiles.games_of(BOB.user_id or "", BOB, 10) == []
    joined, event = next_version(game, 0, actor=BOB)  # just to get a well-formed event
    joined.seats = {"x": human(ALICE), "o": human(BOB)}
    joined.status = "active"
    joined.state = game.state
    joined.turn = "x"
    event.kind, event.seat, event.move, event.san = "join", "o", None, None
    await store.commit_change(joined, event, BOB)
    assert [g.game_id for g in await profiles.games_of(BOB.user_id or "", BOB, 10)] == [
        game.game_id
    ]


async def test_an_older_sqlite_file_gets_its_players_indexed(tmp_path: Path) -> None:
    # A file written before profiles existed (schema 6): its games' players are found.
    path = tmp_path / "games.sqlite3"
    game = make_game("tictactoe", (human(ALICE), {"kind": "ai", "level": 2}))
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:6]:
            conn.executescript(script)
        conn.execute(
            f"INSERT INTO games ({_GAME_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _game_row(game),
        )
        conn.execute("PRAGMA user_version = 6")
    store = SqliteStore(path)
    await store.open()  # migrates to the newest schema
    try:
        found = await profiles_for(store).games_of(ALICE.user_id or "", ALICE, 10)
        assert [g.game_id for g in found] == [game.game_id]
    finally:
        await store.close()
