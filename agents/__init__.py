"""AI players: an `Agent` subclass per game, built for a level (`ChessAgent(5)`).

Searches run in a shared pool of worker processes (started on first use) or, for
chess with Stockfish installed, in long-lived engine processes; the server calls
`shutdown()` on exit to stop them all.
"""

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from agents.chess import BuiltinChessAgent, ChessAgent, close_engines
from agents.connect4 import Connect4Agent
from agents.pool import get_pool, shutdown_pool
from agents.tictactoe import TicTacToeAgent


async def warm_up() -> None:
    """Start the search workers ahead of the first search (the server does at start)."""
    await get_pool().warm_up()


def shutdown() -> None:
    """Stop the search workers and engine processes (they restart on next use)."""
    shutdown_pool()
    close_engines()


__all__ = [
    "Agent",
    "BuiltinChessAgent",
    "ChessAgent",
    "Connect4Agent",
    "ProgressCallback",
    "SearchInfo",
    "SearchLimit",
    "SearchResult",
    "TicTacToeAgent",
    "shutdown",
    "warm_up",
]
