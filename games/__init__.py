"""Game rules: pure, synchronous state machines with no I/O."""

from games.base import RESULT_REASONS, GameResult, GameState, IllegalMove, Move
from games.chess import ChessState
from games.connect4 import Connect4State
from games.tictactoe import TicTacToeState

GAME_TYPES: dict[str, type[GameState]] = {
    ChessState.game_type: ChessState,
    Connect4State.game_type: Connect4State,
    TicTacToeState.game_type: TicTacToeState,
}


def register_game(state_class: type[GameState]) -> type[GameState]:
    """Make a game type known to `get_game_class` (the factory calls this)."""
    GAME_TYPES[state_class.game_type] = state_class
    return state_class


def get_game_class(game_type: str) -> type[GameState]:
    try:
        return GAME_TYPES[game_type]
    except KeyError:
        raise KeyError(f"unknown game type {game_type!r}") from None


__all__ = [
    "GAME_TYPES",
    "RESULT_REASONS",
    "ChessState",
    "Connect4State",
    "GameResult",
    "GameState",
    "IllegalMove",
    "Move",
    "TicTacToeState",
    "get_game_class",
    "register_game",
]
