"""The built-in chess engine: pure Python on top of python-chess's move generator.

Iterative deepening of a principal-variation alpha-beta search with a transposition
table, null-move pruning, check extensions and a captures-only quiescence search.
Moves are ordered by the table's move, then captures by MVV-LVA, then two killer
moves per ply, then the rest by history. The evaluation is material plus
piece-square tables (Michniewski's "simplified evaluation function"), kept up to
date move by move instead of recomputed at every leaf.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import chess

MATE = 100_000
# Scores beyond this are mates; the distance to mate is folded in.
MATE_BOUND = MATE - 1000
# Nodes between two looks at the clock and the cancel flag (a few milliseconds).
CHECK_EVERY = 256
TABLE_LIMIT = 1 << 19
# Move ordering: the table's move, then captures (from 100,000), killers, quiet moves.
KILLER_RANK = 90_000

VALUES = {
    chess.PAWN: 100,
    chess.KNIGHT: 320,
    chess.BISHOP: 330,
    chess.ROOK: 500,
    chess.QUEEN: 900,
    chess.KING: 0,
}

# Rank 8 first, from White's point of view.
TABLES = {
    chess.PAWN: (
        0, 0, 0, 0, 0, 0, 0, 0,
        50, 50, 50, 50, 50, 50, 50, 50,
        10, 10, 20, 30, 30, 20, 10, 10,
        5, 5, 10, 25, 25, 10, 5, 5,
        0, 0, 0, 20, 20, 0, 0, 0,
        5, -5, -10, 0, 0, -10, -5, 5,
        5, 10, 10, -20, -20, 10, 10, 5,
        0, 0, 0, 0, 0, 0, 0, 0,
    ),
    chess.KNIGHT: (
        -50, -40, -30, -30, -30, -30, -40, -50,
        -40, -20, 0, 0, 0, 0, -20, -40,
        -30, 0, 10, 15, 15, 10, 0, -30,
        -30, 5, 15, 20, 20, 15, 5, -30,
        -30, 0, 15, 20, 20, 15, 0, -30,
        -30, 5, 10, 15, 15, 10, 5, -30,
        -40, -20, 0, 5, 5, 0, -20, -40,
        -50, -40, -30, -30, -30, -30, -40, -50,
    ),
    chess.BISHOP: (
        -20, -10, -10, -10, -10, -10, -10, -20,
        -10, 0, 0, 0, 0, 0, 0, -10,
        -10, 0, 5, 10, 10, 5, 0, -10,
        -10, 5, 5, 10, 10, 5, 5, -10,
        -10, 0, 10, 10, 10, 10, 0, -10,
        -10, 10, 10, 10, 10, 10, 10, -10,
        -10, 5, 0, 0, 0, 0, 5, -10,
        -20, -10, -10, -10, -10, -10, -10, -20,
    ),
    chess.ROOK: (
        0, 0, 0, 0, 0, 0, 0, 0,
        5, 10, 10, 10, 10, 10, 10, 5,
        -5, 0, 0, 0, 0, 0, 0, -5,
        -5, 0, 0, 0, 0, 0, 0, -5,
        -5, 0, 0, 0, 0, 0, 0, -5,
        -5, 0, 0, 0, 0, 0, 0, -5,
        -5, 0, 0, 0, 0, 0, 0, -5,
        0, 0, 0, 5, 5, 0, 0, 0,
    ),
    chess.QUEEN: (
        -20, -10, -10, -5, -5, -10, -10, -20,
        -10, 0, 0, 0, 0, 0, 0, -10,
        -10, 0, 5, 5, 5, 5, 0, -10,
        -5, 0, 5, 5, 5, 5, 0, -5,
        0, 0, 5, 5, 5, 5, 0, -5,
        -10, 5, 5, 5, 5, 5, 0, -10,
        -10, 0, 5, 0, 0, 0, 0, -10,
        -20, -10, -10, -5, -5, -10, -10, -20,
    ),
    chess.KING: (
        -30, -40, -40, -50, -50, -40, -40, -30,
        -30, -40, -40, -50, -50, -40, -40, -30,
        -30, -40, -40, -50, -50, -40, -40, -30,
        -30, -40, -40, -50, -50, -40, -40, -30,
        -20, -30, -30, -40, -40, -30, -30, -20,
        -10, -20, -20, -20, -20, -20, -20, -10,
        20, 20, 0, 0, 0, 0, 20, 20,
        20, 30, 10, 0, 0, 10, 30, 20,
    ),
}  # fmt: skip


def _signed_tables() -> dict[tuple[bool, int], list[int]]:
    """(color, piece type) -> per square value from White's view (Black's negative)."""
    tables = {}
    for piece_type, table in TABLES.items():
        value = VALUES[piece_type]
        tables[chess.WHITE, piece_type] = [value + table[sq ^ 56] for sq in chess.SQUARES]
        tables[chess.BLACK, piece_type] = [-(value + table[sq]) for sq in chess.SQUARES]
    return tables


PST = _signed_tables()


def evaluate(board: chess.Board) -> int:
    """Material and placement from White's view."""
    score = 0
    for (color, piece_type), table in PST.items():
        for square in chess.scan_forward(board.pieces_mask(piece_type, color)):
            score += table[square]
    return score


def move_delta(board: chess.Board, move: chess.Move) -> int:
    """How `move` changes `evaluate` (White's view), computed before it is played."""
    color = board.turn
    mover = board.piece_type_at(move.from_square)
    assert mover is not None
    landed = move.promotion or mover
    delta = PST[color, landed][move.to_square] - PST[color, mover][move.from_square]
    captured = board.piece_type_at(move.to_square)
    if captured is not None:
        delta -= PST[not color, captured][move.to_square]
    elif mover == chess.PAWN and move.to_square == board.ep_square:
        victim = move.to_square - 8 if color == chess.WHITE else move.to_square + 8
        delta -= PST[not color, chess.PAWN][victim]
    elif mover == chess.KING and abs(move.to_square - move.from_square) == 2:
        rank = move.from_square & ~7
        kingside = move.to_square > move.from_square
        rook_from, rook_to = (rank + 7, rank + 5) if kingside else (rank, rank + 3)
        delta += PST[color, chess.ROOK][rook_to] - PST[color, chess.ROOK][rook_from]
    return delta


class SearchStopped(Exception):
    """The clock ran out or the caller cancelled."""


@dataclass
class Progress:
    depth: int
    score: int  # centipawns from the side to move's view
    pv: list[str]
    nodes: int


@dataclass
class Engine:
    """One search; construct, then call `search`."""

    board: chess.Board
    deadline: float | None = None
    max_depth: int = 64
    max_nodes: int | None = None
    # Called every CHECK_EVERY nodes; raises to stop the search (e.g. on cancel).
    poll: Callable[[], None] | None = None
    on_iteration: Callable[[Progress], None] | None = None
    # Leaf noise in centipawns, for the weaker levels.
    noise: int = 0
    rng: random.Random = field(default_factory=random.Random)
    nodes: int = 0
    table: dict[object, tuple[int, int, int, chess.Move | None]] = field(default_factory=dict)
    killers: list[list[chess.Move | None]] = field(default_factory=list)
    history: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._next_check = CHECK_EVERY
        self._seed = self.rng.getrandbits(32)
        self.killers = [[None, None] for _ in range(self.max_depth + 64)]
        # Positions earlier in the game or on the search path: a return is a draw.
        self._seen: dict[object, int] = {}
        probe = self.board.copy()
        while probe.move_stack:
            probe.pop()
            self._enter(probe._transposition_key())

    def _enter(self, key: object) -> None:
        self._seen[key] = self._seen.get(key, 0) + 1

    def _leave(self, key: object) -> None:
        count = self._seen[key] - 1
        if count:
            self._seen[key] = count
        else:
            del self._seen[key]

    def _check(self) -> None:
        self._next_check = self.nodes + CHECK_EVERY
        if self.poll is not None:
            self.poll()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise SearchStopped
        if self.max_nodes is not None and self.nodes >= self.max_nodes:
            raise SearchStopped
        if len(self.table) > TABLE_LIMIT:
            self.table.clear()

    # -- ordering --------------------------------------------------------------------
    def _ordered(
        self, moves: list[chess.Move], best: chess.Move | None, ply: int
    ) -> list[tuple[int, chess.Move]]:
        board = self.board
        killers = self.killers[ply]
        history = self.history
        keyed = []
        for move in moves:
            if move == best:
                rank = 1_000_000
            else:
                victim = board.piece_type_at(move.to_square)
                if victim is not None or move.promotion:
                    attacker = board.piece_type_at(move.from_square) or chess.PAWN
                    rank = 100_000 + 10 * VALUES[victim or chess.PAWN] - attacker
                    if move.promotion:
                        rank += VALUES[move.promotion]
                elif move in killers:
                    rank = KILLER_RANK
                else:
                    # History never outranks a killer or a capture.
                    rank = min(history.get((move.from_square, move.to_square), 0), KILLER_RANK - 1)
            keyed.append((rank, move))
        keyed.sort(key=lambda pair: pair[0], reverse=True)
        return keyed

    # -- search ----------------------------------------------------------------------
    def quiesce(self, alpha: int, beta: int, score: int, ply: int) -> int:
        """Captures only; `score` is the evaluation from White's view."""
        self.nodes += 1
        if self.nodes >= self._next_check:
            self._check()
        board = self.board
        stand = score if board.turn == chess.WHITE else -score
        if self.noise:
            stand += (hash(board._transposition_key()) ^ self._seed) % (2 * self.noise + 1)
            stand -= self.noise
        if stand >= beta:
            return stand
        alpha = max(alpha, stand)
        captures = [
            (10 * VALUES[board.piece_type_at(m.to_square) or chess.PAWN]
             - (board.piece_type_at(m.from_square) or 0), m)
            for m in board.generate_legal_captures()
        ]  # fmt: skip
        captures.sort(key=lambda pair: pair[0], reverse=True)
        for _, move in captures:
            delta = move_delta(board, move)
            # Delta pruning: even winning this piece cannot lift the score to alpha.
            gain = delta if board.turn == chess.WHITE else -delta
            if stand + gain + 200 < alpha and not move.promotion:
                continue
            board.push(move)
            value = -self.quiesce(-beta, -alpha, score + delta, ply + 1)
            board.pop()
            if value >= beta:
                return value
            alpha = max(alpha, value)
        return alpha

    def negamax(  # noqa: C901 -- the hot search kernel: one flat function is faster in CPython
        self, depth: int, alpha: int, beta: int, score: int, ply: int, null_ok: bool = True
    ) -> int:
        board = self.board
        in_check = board.is_check()
        if in_check:
            depth += 1
        if depth <= 0:
            return self.quiesce(alpha, beta, score, ply)
        self.nodes += 1
        if self.nodes >= self._next_check:
            self._check()
        key = board._transposition_key()
        if ply and (key in self._seen or board.halfmove_clock >= 100):
            return 0
        original_alpha = alpha
        entry = self.table.get(key)
        best_move = None
        if entry is not None:
            entry_depth, flag, value, best_move = entry
            if entry_depth >= depth and ply:
                value = _from_table(value, ply)
                if flag == 0:
                    return value
                if flag > 0 and value >= beta:
                    return value
                if flag < 0 and value <= alpha:
                    return value
        pawns_and_kings = board.pawns | board.kings
        if (
            null_ok
            and not in_check
            and depth >= 3
            and beta < MATE_BOUND
            and board.occupied_co[board.turn] & ~pawns_and_kings
        ):
            board.push(chess.Move.null())
            value = -self.negamax(depth - 3, -beta, -beta + 1, score, ply + 1, False)
            board.pop()
            if value >= beta:
                return value
        moves = list(board.generate_legal_moves())
        if not moves:
            return -MATE + ply if in_check else 0
        best_value = -MATE - 1
        # A stop unwinds through here without cleaning up; `search` restores the board.
        self._enter(key)
        for index, (_, move) in enumerate(self._ordered(moves, best_move, ply)):
            delta = move_delta(board, move)
            board.push(move)
            if index == 0:
                value = -self.negamax(depth - 1, -beta, -alpha, score + delta, ply + 1)
            else:
                value = -self.negamax(depth - 1, -alpha - 1, -alpha, score + delta, ply + 1)
                if alpha < value < beta:
                    value = -self.negamax(depth - 1, -beta, -alpha, score + delta, ply + 1)
            board.pop()
            if value > best_value:
                best_value, best_move = value, move
                if value > alpha:
                    alpha = value
                    if alpha >= beta:
                        self._remember_cutoff(move, ply, depth)
                        break
        self._leave(key)
        flag = 1 if best_value >= beta else (0 if best_value > original_alpha else -1)
        self.table[key] = (depth, flag, _to_table(best_value, ply), best_move)
        return best_value

    def _remember_cutoff(self, move: chess.Move, ply: int, depth: int) -> None:
        if self.board.piece_type_at(move.to_square) is not None or move.promotion:
            return
        killers = self.killers[ply]
        if killers[0] != move:
            killers[1] = killers[0]
            killers[0] = move
        square_pair = (move.from_square, move.to_square)
        self.history[square_pair] = self.history.get(square_pair, 0) + depth * depth

    def principal_variation(self, first: chess.Move, length: int) -> list[str]:
        pv = [first]
        board = self.board.copy(stack=False)
        board.push(first)
        while len(pv) < length:
            entry = self.table.get(board._transposition_key())
            if entry is None or entry[3] is None or not board.is_legal(entry[3]):
                break
            pv.append(entry[3])
            board.push(entry[3])
        return [move.uci() for move in pv]

    def search(self) -> tuple[chess.Move, Progress]:  # noqa: C901 -- iterative deepening loop of the kernel
        """The best move found by the deadline, and what the last full iteration saw."""
        board = self.board
        moves = list(board.generate_legal_moves())
        if not moves:
            raise ValueError("no legal move in this position")
        score = evaluate(board)
        best = moves[0]
        progress = Progress(depth=0, score=0, pv=[best.uci()], nodes=0)
        key = board._transposition_key()
        root_stack = len(board.move_stack)
        for depth in range(1, self.max_depth + 1):
            alpha, beta = -MATE - 1, MATE + 1
            iteration_best: chess.Move | None = None
            seen = dict(self._seen)
            self._enter(key)
            try:
                for index, (_, move) in enumerate(self._ordered(moves, best, 0)):
                    delta = move_delta(board, move)
                    board.push(move)
                    if index == 0:
                        value = -self.negamax(depth - 1, -beta, -alpha, score + delta, 1)
                    else:
                        value = -self.negamax(depth - 1, -alpha - 1, -alpha, score + delta, 1)
                        if value > alpha:
                            value = -self.negamax(depth - 1, -beta, -alpha, score + delta, 1)
                    board.pop()
                    if value > alpha:
                        alpha, iteration_best = value, move
                        # A move that beat the previous best is already worth playing.
                        best = move
            except SearchStopped:
                while len(board.move_stack) > root_stack:
                    board.pop()
                self._seen = seen
                break
            self._leave(key)
            if iteration_best is None:
                break
            self.table[key] = (depth, 0, alpha, best)
            progress = Progress(
                depth=depth, score=alpha, pv=self.principal_variation(best, depth), nodes=self.nodes
            )
            if self.on_iteration is not None:
                self.on_iteration(progress)
            if abs(alpha) >= MATE_BOUND or len(moves) == 1:
                break  # a forced mate is found (or there is nothing to choose)
        progress.nodes = self.nodes
        return best, progress


def _to_table(value: int, ply: int) -> int:
    """Mate scores are stored as distance from the stored node, not from the root."""
    if value >= MATE_BOUND:
        return value + ply
    if value <= -MATE_BOUND:
        return value - ply
    return value


def _from_table(value: int, ply: int) -> int:
    if value >= MATE_BOUND:
        return value - ply
    if value <= -MATE_BOUND:
        return value + ply
    return value
