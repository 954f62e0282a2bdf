"""Chess on python-chess: moves in UCI (SAN accepted), draws judged as lichess does.

The state is the starting FEN plus the UCI move list, so repetitions, the SAN list and
the PGN survive a reload. A python-chess `Board` with the full move stack is cached in a
private attribute (never serialised) and rebuilt lazily after `from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import chess
import chess.pgn
from pydantic import PrivateAttr

from games.base import GameResult, GameState, IllegalMove, Move, Played

SEAT_OF_COLOR = {chess.WHITE: "white", chess.BLACK: "black"}


class ChessState(GameState):
    game_type: ClassVar[str] = "chess"
    seats: ClassVar[tuple[str, ...]] = ("white", "black")

    history: tuple[str, ...] = ()
    start_fen: str = chess.STARTING_FEN

    _board: chess.Board | None = PrivateAttr(default=None)
    # SAN of every move so far; kept up to date by `apply` once somebody has asked for it.
    _san: tuple[str, ...] | None = PrivateAttr(default=None)

    @classmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        opts = cls._check_option_keys(options, known={"fen"})
        fen = opts.get("fen", chess.STARTING_FEN)
        if not isinstance(fen, str):
            raise ValueError(f"option 'fen' must be a string, got {type(fen).__name__}")
        try:
            board = chess.Board(fen)
        except ValueError as error:
            raise ValueError(f"invalid FEN {fen!r}: {error}") from None
        status = board.status()
        if status != chess.STATUS_VALID:
            problems = ", ".join(
                flag.name.lower().replace("_", " ")
                for flag in chess.Status
                if flag and flag in status and flag.name
            )
            raise ValueError(f"invalid FEN {fen!r}: {problems}")
        ended = _outcome(board)
        if ended is not None:
            raise ValueError(f"the position of FEN {fen!r} is already over ({ended.reason})")
        state = cls(start_fen=board.fen())
        state._board = board
        return state

    # -- equality ignores the caches --------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChessState):
            return NotImplemented
        return (self.start_fen, self.history, self.result) == (
            other.start_fen,
            other.history,
            other.result,
        )

    def __hash__(self) -> int:
        return hash((self.start_fen, self.history, self.result))

    # -- reading ----------------------------------------------------------------------
    def first_seat_index(self) -> int:
        return 0 if self.start_fen.split()[1] == "w" else 1

    def legal_moves(self) -> list[Move]:
        if self.result is not None:
            return []
        return [move.uci() for move in self._position().generate_legal_moves()]

    def parse_move(self, raw: Any) -> str:
        return self._parse(raw).uci()

    def move_san(self, move: Any) -> str:
        return self._position().copy(stack=False).san(self._parse(move))

    def board(self) -> dict[str, Any]:
        position = self._position()
        return {"fen": position.fen(), "san": list(self.san_moves()), "check": position.is_check()}

    def last_move(self) -> dict[str, Any] | None:
        last = super().last_move()
        if last is not None:
            last["san"] = self.san_moves()[-1]
        return last

    def san_moves(self) -> tuple[str, ...]:
        """Every move so far in SAN."""
        if self._san is None:
            replay = chess.Board(self.start_fen)
            self._san = tuple(replay.san_and_push(chess.Move.from_uci(m)) for m in self.history)
        return self._san

    def pgn(self, headers: Mapping[str, str] | None = None) -> str:
        """The game as standard PGN; a custom start position adds SetUp and FEN tags.

        Tag values are escaped as the PGN standard says (a backslash before each quote
        and backslash; python-chess writes them as given), so a value such as a
        player's name cannot end its tag.
        """
        game = chess.pgn.Game.from_board(self._position())
        for name, value in (headers or {}).items():
            game.headers[name] = value.replace("\\", "\\\\").replace('"', '\\"')
        game.headers["Result"] = self._pgn_result()
        return str(game)

    def _pgn_result(self) -> str:
        if self.result is None or self.result.reason == "aborted":
            return "*"
        if self.result.winner == "white":
            return "1-0"
        if self.result.winner == "black":
            return "0-1"
        return "1/2-1/2"

    def can_win(self, seat: str) -> bool:
        color = chess.WHITE if seat == "white" else chess.BLACK
        return not self._position().has_insufficient_material(color)

    # -- changing ---------------------------------------------------------------------
    def apply(self, move: Any) -> Self:
        # SAN is only worked out when the SAN list is kept up to date (somebody read it).
        state, _ = self._after(self._parse(move), san=self._san is not None)
        return state

    def play(self, raw: Any) -> Played:
        """One parse and one SAN for the move (`parse_move`, `apply` and `move_san` in
        turn would parse it three times and work its SAN out twice)."""
        parsed = self._parse(raw)
        state, san = self._after(parsed, san=True)
        return Played(parsed.uci(), state, san)

    def _after(self, parsed: chess.Move, *, san: bool) -> tuple[Self, str | None]:
        """The state after the legal `parsed`, and its SAN if asked for."""
        # SAN is computed on the copy: `san()` pushes and pops, and the cached board
        # may be read by another thread at the same time.
        after = self._position().copy()
        named = after.san(parsed) if san else None
        after.push(parsed)
        state = self.evolve(history=(*self.history, parsed.uci()), result=_outcome(after))
        state._board = after
        state._san = None if self._san is None or named is None else (*self._san, named)
        return state, named

    def _position(self) -> chess.Board:
        """The cached board with the whole move stack (treat as read-only)."""
        if self._board is None:
            board = chess.Board(self.start_fen)
            for uci in self.history:
                board.push(chess.Move.from_uci(uci))
            self._board = board
        return self._board

    def _parse(self, raw: Any) -> chess.Move:
        self._require_active()
        if not isinstance(raw, str):
            raise IllegalMove(f"a chess move must be a string (UCI or SAN), got {raw!r}")
        text = raw.strip()
        position = self._position()
        try:
            # parse_uci also turns king-takes-rook castling (e1h1) into the normal e1g1.
            move = position.parse_uci(text)
        except chess.InvalidMoveError:
            return _parse_san(position, text)
        except chess.IllegalMoveError:
            raise IllegalMove(f"{text} is not a legal move in this position") from None
        if not move:  # the null move "0000" parses without a legality check
            raise IllegalMove(f"{text} is not a legal move in this position")
        return move


def _parse_san(position: chess.Board, text: str) -> chess.Move:
    try:
        return position.parse_san(text)
    except chess.AmbiguousMoveError:
        raise IllegalMove(f"{text} is ambiguous here: say which piece moves") from None
    except chess.IllegalMoveError:
        raise IllegalMove(f"{text} is not a legal move in this position") from None
    except chess.InvalidMoveError:
        raise IllegalMove(f"{text!r} is neither UCI nor SAN notation") from None


def _outcome(board: chess.Board) -> GameResult | None:
    """How the game stands after the last move; draws need no claim, as on lichess."""
    if not any(board.generate_legal_moves()):
        if board.is_check():
            return GameResult(winner=SEAT_OF_COLOR[not board.turn], reason="checkmate")
        return GameResult(winner=None, reason="stalemate")
    if board.is_insufficient_material():
        return GameResult(winner=None, reason="insufficient_material")
    if board.halfmove_clock >= 100:
        return GameResult(winner=None, reason="fifty_moves")
    if board.is_repetition(3):
        return GameResult(winner=None, reason="threefold_repetition")
    return None
