"""Glicko-2 (socket_server/ratings.py) against Glickman's worked example, and its edges."""

from __future__ import annotations

import pytest

from socket_server.ratings import Rating, after_game, rate, seat_rating


def test_glickmans_worked_example() -> None:
    # "Example of the Glicko-2 system", tau 0.5: a 1500/200 player (volatility 0.06)
    # beats a 1400/30 and loses to a 1550/100 and to a 1700/300. The paper rounds its
    # intermediate values (mu' = -0.2069) and prints 1464.06; unrounded it is 1464.05.
    after = rate(
        Rating(1500, 200, 0.06),
        [(Rating(1400, 30), 1.0), (Rating(1550, 100), 0.0), (Rating(1700, 300), 0.0)],
        tau=0.5,
    )
    assert after.rating == pytest.approx(1464.06, abs=0.01)
    assert after.deviation == pytest.approx(151.52, abs=0.01)
    assert after.volatility == pytest.approx(0.05999, abs=0.00001)


def test_a_new_players_first_game() -> None:
    # Two starting players (1500/350/0.06): the winner gains what the loser loses, and
    # both deviations shrink a lot after one game.
    winner, loser = after_game(Rating(), Rating(), 1.0)
    assert winner.rating == pytest.approx(1662.31, abs=0.01)
    assert loser.rating == pytest.approx(1500 - (winner.rating - 1500), abs=1e-9)
    assert winner.deviation == pytest.approx(290.32, abs=0.01)
    assert loser.deviation == pytest.approx(winner.deviation)


def test_a_draw_between_equals_changes_no_rating() -> None:
    first, second = after_game(Rating(1600, 80), Rating(1600, 80), 0.5)
    assert first.rating == pytest.approx(1600)
    assert second.rating == pytest.approx(1600)
    assert first.deviation < 80


def test_a_draw_moves_the_lower_rated_player_up() -> None:
    low, high = after_game(Rating(1400, 100), Rating(1700, 100), 0.5)
    assert low.rating > 1400
    assert high.rating < 1700


def test_a_big_upset_takes_the_large_step_of_the_volatility_iteration() -> None:
    # delta^2 > phi^2 + v: the branch of step 5 that starts from ln(delta^2 - phi^2 - v).
    after = rate(Rating(1500, 50, 0.06), [(Rating(2500, 30), 1.0)])
    assert after.rating > 1500
    assert after.volatility > 0.06


def test_no_games_only_widens_the_deviation() -> None:
    after = rate(Rating(1700, 100, 0.06), [])
    assert after.rating == 1700
    assert after.deviation == pytest.approx((100**2 + (0.06 * 173.7178) ** 2) ** 0.5)


def test_a_seat_shows_the_rating_rounded() -> None:
    assert seat_rating(Rating(1523.4)) == 1523
    assert seat_rating(Rating(1523.6)) == 1524
