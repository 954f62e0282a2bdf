"""Game rules: pure, synchronous state machines with no I/O."""

from games.base import RESULT_REASONS, GameResult, GameState, IllegalMove, Move, Played
from games.chess import ChessState
from games.connect4 import Connect4State
from games.tictactoe import TicTacToeState

__all__ = [
    "RESULT_REASONS",
    "ChessState",
    "Connect4State",
    "GameResult",
    "GameState",
    "IllegalMove",
    "Move",
    "Played",
    "TicTacToeState",
]
