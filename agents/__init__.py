"""AI players. `get_agent(game_type, level)` is the server's entry point.

Searches run in a shared pool of worker processes (started on first use) or, for
chess with Stockfish installed, in long-lived engine processes; the server calls
`shutdown()` on exit to stop them all.
"""

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from agents.chess import BuiltinChessAgent, ChessAgent, close_engines
from agents.connect4 import Connect4Agent
from agents.pool import shutdown_pool
from agents.tictactoe import TicTacToeAgent

AGENT_CLASSES: dict[str, type[Agent]] = {
    TicTacToeAgent.game_type: TicTacToeAgent,
    Connect4Agent.game_type: Connect4Agent,
    ChessAgent.game_type: ChessAgent,
}


def get_agent(game_type: str, level: int = 5) -> Agent:
    """An agent for `game_type` at `level` (1 weak and fast .. 10 strongest)."""
    try:
        agent_class = AGENT_CLASSES[game_type]
    except KeyError:
        raise KeyError(f"no agent for game type {game_type!r}") from None
    return agent_class(level)


def shutdown() -> None:
    """Stop the search workers and engine processes (they restart on next use)."""
    shutdown_pool()
    close_engines()


__all__ = [
    "AGENT_CLASSES",
    "Agent",
    "BuiltinChessAgent",
    "ChessAgent",
    "Connect4Agent",
    "ProgressCallback",
    "SearchInfo",
    "SearchLimit",
    "SearchResult",
    "TicTacToeAgent",
    "get_agent",
    "shutdown",
]
