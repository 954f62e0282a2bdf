"""Ratings in every store (memory, SQLite, Postgres): written with a rated game's final
event, exactly once even when final events race, read back for seats and the leaderboard.
The games are real and every change is made by the player to move (Postgres: under RLS).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from socket_server.ratings import LEADERBOARD_MAX_DEVIATION, Rating, after_game
from socket_server.store import Actor, GameRecord, GameStore, StaleVersion
from socket_server.store.ratings import ratings_for
from tests.integration.test_store_contract import (
    ACTORS,
    ALICE,
    BOB,
    CAROL,
    STORE_FACTORIES,
    human,
    make_game,
    next_version,
    play,
)

X_WINS = (0, 3, 1, 4, 2)  # x: the top row
DRAWN = (0, 4, 8, 1, 7, 6, 2, 5, 3)
DAVE = Actor(user_id=str(uuid.uuid4()), claims={"sub": "dave", "role": "authenticated"})
ACTORS[DAVE.user_id] = DAVE  # so the contract's `mover` finds him


@pytest.fixture(params=list(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GameStore]:
    async with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


def rated_game(x: Actor, o: Actor) -> GameRecord:
    return make_game(seats=(human(x), human(o)), options={"rated": True})


async def finished(store: GameStore, x: Actor, o: Actor, line: tuple[int, ...]) -> GameRecord:
    game = rated_game(x, o)
    await store.create_game(game, Actor.SERVER)
    return await play(store, game, *line)


async def current(store: GameStore, *actors: Actor) -> dict[str, Rating]:
    found = await ratings_for(store).ratings_of("tictactoe", [a.user_id or "" for a in actors])
    return {user: row.rating for user, row in found.items()}


def numbers(rating: Rating) -> tuple[float, float, float]:
    return rating.rating, rating.deviation, rating.volatility


async def test_the_final_event_rates_both_players_and_nothing_before_it(store: GameStore) -> None:
    game = rated_game(ALICE, BOB)
    await store.create_game(game, Actor.SERVER)
    game = await play(store, game, *X_WINS[:-1])
    assert await current(store, ALICE, BOB) == {ALICE.user_id: Rating(), BOB.user_id: Rating()}
    assert await ratings_for(store).user_ratings(ALICE.user_id or "") == []
    await play(store, game, X_WINS[-1])
    won, lost = after_game(Rating(), Rating(), 1.0)
    found = await current(store, ALICE, BOB)
    assert numbers(found[ALICE.user_id or ""]) == pytest.approx(numbers(won), abs=1e-9)
    assert numbers(found[BOB.user_id or ""]) == pytest.approx(numbers(lost), abs=1e-9)


async def test_a_stale_final_event_changes_no_rating(store: GameStore) -> None:
    game = rated_game(ALICE, BOB)
    await store.create_game(game, Actor.SERVER)
    game = await play(store, game, *X_WINS[:-1])
    final, event = next_version(game, X_WINS[-1])
    await store.commit_change(final, event, ALICE)
    once = await current(store, ALICE, BOB)
    with pytest.raises(StaleVersion):
        await store.commit_change(final, event, ALICE)  # the same end once more
    assert await current(store, ALICE, BOB) == once


async def test_racing_final_events_rate_once(store: GameStore) -> None:
    # x (alice) holds 0, 4, 6 and wins with 3 or with 8; o (bob) holds 1, 2, 5.
    game = rated_game(ALICE, BOB)
    await store.create_game(game, Actor.SERVER)
    game = await play(store, game, 0, 1, 4, 2, 6, 5)
    attempts = [next_version(game, move) for move in (3, 8)]
    assert all(new.status == "finished" for new, _ in attempts)
    results = await asyncio.gather(
        *(store.commit_change(new, event, ALICE) for new, event in attempts),
        return_exceptions=True,
    )
    assert sum(result is None for result in results) == 1, results
    assert all(isinstance(r, StaleVersion) for r in results if r is not None), results
    rows = await ratings_for(store).ratings_of(
        "tictactoe", [ALICE.user_id or "", BOB.user_id or ""]
    )
    assert [row.games for row in rows.values()] == [1, 1]
    won, _ = after_game(Rating(), Rating(), 1.0)
    assert numbers(rows[ALICE.user_id or ""].rating) == pytest.approx(numbers(won), abs=1e-9)


async def test_an_unrated_finish_and_a_draw(store: GameStore) -> None:
    unrated = make_game(seats=(human(ALICE), human(CAROL)))
    await store.create_game(unrated, Actor.SERVER)
    await play(store, unrated, *X_WINS)
    assert await current(store, ALICE, CAROL) == {ALICE.user_id: Rating(), CAROL.user_id: Rating()}
    await finished(store, ALICE, CAROL, DRAWN)
    drawn, _ = after_game(Rating(), Rating(), 0.5)
    found = await current(store, ALICE, CAROL)
    assert found[ALICE.user_id] == found[CAROL.user_id]
    assert numbers(found[ALICE.user_id or ""]) == pytest.approx(numbers(drawn), abs=1e-9)


async def test_the_leaderboard_is_best_first_and_leaves_out_the_unsettled(
    store: GameStore,
) -> None:
    # Five rounds: alice beats bob, bob draws carol, carol beats alice, alice draws bob;
    # dave plays once (his deviation stays far above 150).
    expected = {a.user_id: Rating() for a in (ALICE, BOB, CAROL, DAVE)}
    pairings = (
        (ALICE, BOB, X_WINS, 1.0),
        (BOB, CAROL, DRAWN, 0.5),
        (CAROL, ALICE, X_WINS, 1.0),
        (ALICE, BOB, DRAWN, 0.5),
    )
    for x, o, line, score in [*pairings * 5, (DAVE, BOB, X_WINS, 1.0)]:
        await finished(store, x, o, line)
        a, b = after_game(expected[x.user_id or ""], expected[o.user_id or ""], score)
        expected[x.user_id or ""], expected[o.user_id or ""] = a, b
    board = await ratings_for(store).leaderboard("tictactoe", 10, LEADERBOARD_MAX_DEVIATION)
    settled = [u for u, r in expected.items() if r.deviation <= LEADERBOARD_MAX_DEVIATION]
    assert DAVE.user_id not in settled and len(settled) == 3
    assert [row.user_id for row in board] == [CAROL.user_id, ALICE.user_id, BOB.user_id]
    assert [row.user_id for row in board] == sorted(settled, key=lambda u: -expected[u].rating)
    for row in board:
        assert (row.rating.rating, row.rating.deviation) == pytest.approx(
            (expected[row.user_id].rating, expected[row.user_id].deviation), abs=1e-6
        )
    assert {row.user_id: row.games for row in board} == {
        ALICE.user_id: 15,
        BOB.user_id: 16,
        CAROL.user_id: 10,
    }
    assert [r.user_id for r in await ratings_for(store).leaderboard("tictactoe", 1, 150)] == [
        board[0].user_id
    ]
    assert await ratings_for(store).leaderboard("connect4", 10, 150) == []
    mine = await ratings_for(store).user_ratings(DAVE.user_id or "")
    assert [(row.game_type, row.games) for row in mine] == [("tictactoe", 1)]
