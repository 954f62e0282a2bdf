"""Ratings (PROTOCOL.md "Ratings"): Glicko-2, and who may play a rated game. Pure: no I/O.

Glicko-2 as in Mark Glickman's "Example of the Glicko-2 system" (glicko.net/glicko/
glicko2.pdf), steps 1-8: a player starts at 1500, deviation 350, volatility 0.06; here
one game is one rating period, so a finished rated game rates each player against the
other once (a win scores 1, a draw 0.5, a loss 0). The stores apply it in the same
transaction as the game's final event (store/settle.py); who may play a rated game is
checked in changes.py. This module imports nothing of the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

START_RATING = 1500.0
START_DEVIATION = 350.0
START_VOLATILITY = 0.06
# The system constant: how much the volatility may change in one period (Glickman
# suggests 0.3 to 1.2); 0.5 is the value of his worked example.
TAU = 0.5
# Glicko-2's scale: mu = (rating - 1500) / SCALE, phi = deviation / SCALE.
SCALE = 173.7178
# The convergence tolerance of the volatility iteration (step 5).
EPSILON = 0.000001
# The leaderboard leaves out players whose deviation is above this (not settled yet).
LEADERBOARD_MAX_DEVIATION = 150.0


@dataclass(frozen=True)
class Rating:
    rating: float = START_RATING
    deviation: float = START_DEVIATION
    volatility: float = START_VOLATILITY


def _g(phi: float) -> float:
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / (math.pi * math.pi))


def _expected(mu: float, mu_j: float, phi_j: float) -> float:
    return 1.0 / (1.0 + math.exp(-_g(phi_j) * (mu - mu_j)))


def _new_volatility(phi: float, sigma: float, v: float, delta: float, tau: float) -> float:
    """Step 5: the new volatility, by the Illinois algorithm on f(x) = 0."""
    a = math.log(sigma * sigma)

    def f(x: float) -> float:
        ex = math.exp(x)
        return ex * (delta * delta - phi * phi - v - ex) / (2.0 * (phi * phi + v + ex) ** 2) - (
            x - a
        ) / (tau * tau)

    low = a
    if delta * delta > phi * phi + v:
        high = math.log(delta * delta - phi * phi - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        high = a - k * tau
    f_low, f_high = f(low), f(high)
    while abs(high - low) > EPSILON:
        c = low + (low - high) * f_low / (f_high - f_low)
        f_c = f(c)
        if f_c * f_high <= 0:
            low, f_low = high, f_high
        else:
            f_low /= 2.0
        high, f_high = c, f_c
    return math.exp(low / 2.0)


def rate(player: Rating, games: Sequence[tuple[Rating, float]], tau: float = TAU) -> Rating:
    """`player`'s rating after one rating period of `games` (opponent, score 0/0.5/1).

    >>> after = rate(Rating(1500, 200), [(Rating(1400, 30), 1), (Rating(1550, 100), 0),
    ...                                  (Rating(1700, 300), 0)])
    >>> round(after.rating, 2), round(after.deviation, 2), round(after.volatility, 6)
    (1464.05, 151.52, 0.059996)
    """
    mu, phi = (player.rating - START_RATING) / SCALE, player.deviation / SCALE
    if not games:  # step 6 alone: the deviation grows, nothing else changes
        grown = math.sqrt(phi * phi + player.volatility**2)
        return Rating(player.rating, grown * SCALE, player.volatility)
    terms = []
    for opponent, score in games:
        mu_j, phi_j = (opponent.rating - START_RATING) / SCALE, opponent.deviation / SCALE
        terms.append((_g(phi_j), _expected(mu, mu_j, phi_j), score))
    v = 1.0 / sum(g * g * e * (1.0 - e) for g, e, _ in terms)
    improvement = sum(g * (s - e) for g, e, s in terms)
    sigma = _new_volatility(phi, player.volatility, v, v * improvement, tau)
    phi_star = math.sqrt(phi * phi + sigma * sigma)
    new_phi = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
    new_mu = mu + new_phi * new_phi * improvement
    return Rating(new_mu * SCALE + START_RATING, new_phi * SCALE, sigma)


def after_game(first: Rating, second: Rating, first_score: float) -> tuple[Rating, Rating]:
    """Both players' ratings after one game between them (one rating period each)."""
    return rate(first, [(second, first_score)]), rate(second, [(first, 1.0 - first_score)])


def seat_rating(rating: Rating) -> int:
    """The `rating` a seat shows: the rating rounded to the nearest integer."""
    return round(rating.rating)


def is_rated(options: Mapping[str, Any]) -> bool:
    """A game's `rated`, kept in its options (`options["rated"]`, set by the server only)."""
    return options.get("rated") is True


def is_guest(claims: Mapping[str, Any] | None) -> bool:
    """Verified claims of a guest (an embedded guest token, a Supabase anonymous user):
    guests play unrated games only."""
    return bool((claims or {}).get("is_anonymous"))
