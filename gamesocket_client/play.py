"""A whole game for a bot in one call: `choose_move(snapshot)` runs on each of its turns.

The loop acts only on the newest snapshot (older items of the stream are only shown to
`on_change`), so a bot never answers a position that is already gone.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from gamesocket_client.errors import CLOSED, GameSocketError
from gamesocket_client.messages import SEATS, Change, Snapshot
from gamesocket_client.rest import DEFAULT_BASE_URL, GameClient
from gamesocket_client.session import GameSession, Reconnect

Move = str | int
ChooseMove = Callable[[Snapshot], Move | Awaitable[Move]]
OnChange = Callable[[Change], None]

# Refusals that mean "the position changed under you": the next change decides again.
_OVERTAKEN = frozenset({"stale_version", "not_your_turn"})


def against_ai(game_type: str, level: int = 3, *, first: bool = True) -> dict[str, Any]:
    """Seats for the caller against the server's AI; the caller moves first if `first`."""
    if game_type not in SEATS:
        raise ValueError(f"no default seats for {game_type!r}: pass seats=...")
    mover, second = SEATS[game_type]
    me, ai = (mover, second) if first else (second, mover)
    return {me: "me", ai: {"kind": "ai", "level": level}}


async def play(
    game_type: str,
    choose_move: ChooseMove,
    *,
    base_url: str = DEFAULT_BASE_URL,
    seats: dict[str, Any] | None = None,
    level: int = 3,
    name: str | None = None,
    options: dict[str, Any] | None = None,
    on_change: OnChange | None = None,
    reconnect: Reconnect | None = None,
) -> Snapshot:
    """Sign in as a guest, create a game (default: moving first against the AI at
    `level`), play it to the end; the final snapshot.
    """
    async with GameClient(base_url) as client:
        await client.guest(name)
        game = await client.create_game(
            game_type, seats or against_ai(game_type, level), options=options
        )
        async with client.session(game_type, game.game_id, reconnect=reconnect) as session:
            return await play_session(session, choose_move, on_change=on_change)


async def play_session(
    session: GameSession, choose_move: ChooseMove, *, on_change: OnChange | None = None
) -> Snapshot:
    """Play the session user's seats until the game is over; the final snapshot.

    Works for any connected session: a game created elsewhere, or joined as the second
    player (the loop waits while a seat is still empty).
    """
    async for change in session.updates():
        if on_change is not None:
            on_change(change)
        if change.snapshot.is_over:
            return change.snapshot
        if change.version == session.version and session.my_turn:
            await _play_turn(session, choose_move)
    raise GameSocketError(CLOSED, "the session was closed before the game ended")


async def _play_turn(session: GameSession, choose_move: ChooseMove) -> None:
    snapshot = session.snapshot
    move = choose_move(snapshot)
    if inspect.isawaitable(move):
        move = await move
    try:
        await session.move(move, version=snapshot.version)
    except GameSocketError as error:
        if error.code not in _OVERTAKEN:
            raise
