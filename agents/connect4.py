"""Connect Four: Pascal Pons' exact solver in Python, plus a heuristic search for play.

The board is two integers (Pons' encoding): `mask` has a bit per stone, `current`
a bit per stone of the side to move; each column takes `rows + 1` bits, the spare
top bit keeping shifts from wrapping into the next column. The solver is negamax
with alpha-beta, a transposition table of bounds, move ordering by the number of
threats a move creates, and a null-window search that narrows the score.

Scores follow Pons: for the side to move, a win with its own k-th stone scores
`(columns * rows + 1) // 2 + 1 - k` (22 - k on 7x6), a loss the negative of the
opponent's win, a draw 0.

The agent reports that exact score when it solved the position (progress `depth`
is then the number of moves left); when the solver ran out of time it reports the
heuristic search's depth and evaluation instead, where a forced win found by the
heuristic scores 10,000 or more.
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

from agents.base import SearchInfo, SearchLimit
from agents.pool import PooledAgent, SearchCancelled, SearchJob, WorkerContext
from games import GameState
from games.connect4 import Connect4State

# Nodes between two checks of the clock and the cancel flag (~10-30 ms of search).
CHECK_EVERY = 2048
# The transposition table is cleared when it grows past this many entries (~100 MB).
TABLE_LIMIT = 1 << 20


class Geometry:
    """Bit masks of one board size; built once per size."""

    def __init__(self, columns: int, rows: int) -> None:
        if columns * (rows + 1) > 64:
            raise ValueError("the solver needs columns * (rows + 1) <= 64")
        self.columns = columns
        self.rows = rows
        self.cells = columns * rows
        self.column_height = rows + 1
        self.bottom = sum(1 << (c * self.column_height) for c in range(columns))
        self.board = self.bottom * ((1 << rows) - 1)
        self.column_masks = [((1 << rows) - 1) << (c * self.column_height) for c in range(columns)]
        self.tops = [1 << (rows - 1 + c * self.column_height) for c in range(columns)]
        self.bottoms = [1 << (c * self.column_height) for c in range(columns)]
        # Centre columns first: they take part in more lines.
        self.order = sorted(range(columns), key=lambda c: (abs(2 * c - (columns - 1)), c))
        self.min_score = -(self.cells // 2) + 3
        self.max_score = (self.cells + 1) // 2 - 3

    def winning_spots(self, position: int, mask: int) -> int:
        """Empty cells where `position`'s owner would complete four in a row."""
        h = self.column_height
        # vertical
        r = (position << 1) & (position << 2) & (position << 3)
        # horizontal and the two diagonals: shifts by h, h - 1 and h + 1
        for s in (h, h - 1, h + 1):
            p = (position << s) & (position << 2 * s)
            r |= p & (position << 3 * s)
            r |= p & (position >> s)
            p = (position >> s) & (position >> 2 * s)
            r |= p & (position << s)
            r |= p & (position >> 3 * s)
        return r & (self.board ^ mask)

    def possible(self, mask: int) -> int:
        return (mask + self.bottom) & self.board

    def non_losing_moves(self, current: int, mask: int) -> int:
        """Playable cells that do not hand the opponent an immediate win (0: all lose)."""
        possible = self.possible(mask)
        threats = self.winning_spots(current ^ mask, mask)
        forced = possible & threats
        if forced:
            if forced & (forced - 1):
                return 0  # two threats at once: nothing saves the game
            possible = forced
        return possible & ~(threats >> 1)

    def can_win_next(self, current: int, mask: int) -> bool:
        return bool(self.winning_spots(current, mask) & self.possible(mask))

    def position(self, columns: list[int]) -> tuple[int, int]:
        """`(current, mask)` after playing 0-based `columns` from the empty board."""
        current = mask = 0
        for column in columns:
            if not 0 <= column < self.columns or mask & self.tops[column]:
                raise ValueError(f"column {column} cannot be played")
            current ^= mask
            mask |= mask + self.bottoms[column]
        return current, mask


_geometries: dict[tuple[int, int], Geometry] = {}


def geometry(columns: int = 7, rows: int = 6) -> Geometry:
    key = (columns, rows)
    if key not in _geometries:
        _geometries[key] = Geometry(columns, rows)
    return _geometries[key]


class _Search:
    """Node counting with a periodic look at the clock and the cancel flag."""

    def __init__(
        self,
        geo: Geometry,
        *,
        deadline: float | None = None,
        max_nodes: int | None = None,
        ctx: WorkerContext | None = None,
    ) -> None:
        self.geo = geo
        self.table: dict[int, int] = {}
        self.nodes = 0
        self.deadline = deadline
        self.max_nodes = max_nodes
        self.ctx = ctx
        self._next_check = CHECK_EVERY

    def _check(self) -> None:
        self._next_check = self.nodes + CHECK_EVERY
        if self.ctx is not None:
            self.ctx.check()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError
        if self.max_nodes is not None and self.nodes >= self.max_nodes:
            raise TimeoutError
        if len(self.table) > TABLE_LIMIT:
            self.table.clear()


class Solver(_Search):
    """The exact solver; keeps its transposition table between calls."""

    def negamax(self, current: int, mask: int, moves: int, alpha: int, beta: int) -> int:  # noqa: C901 -- the solver kernel: inlined for speed
        """The score if it lies in (alpha, beta), else a bound beyond the window.

        The caller guarantees that the side to move cannot win at once.
        """
        self.nodes += 1
        if self.nodes >= self._next_check:
            self._check()
        geo = self.geo
        cells = geo.cells
        candidates = geo.non_losing_moves(current, mask)
        if not candidates:
            return -((cells - moves) // 2)
        if moves >= cells - 2:
            return 0
        low = -((cells - 2 - moves) // 2)
        if alpha < low:
            alpha = low
            if alpha >= beta:
                return alpha
        high = (cells - 1 - moves) // 2
        key = current + mask
        stored = self.table.get(key)
        if stored is not None:
            span = geo.max_score - geo.min_score + 1
            if stored > span:  # a lower bound
                low = stored + 2 * geo.min_score - geo.max_score - 2
                if alpha < low:
                    alpha = low
                    if alpha >= beta:
                        return alpha
            else:  # an upper bound
                high = stored + geo.min_score - 1
        if beta > high:
            beta = high
            if alpha >= beta:
                return beta
        # Order: most threats created first, centre first among equals.
        ordered: list[tuple[int, int, int]] = []
        for column in geo.order:
            move = candidates & geo.column_masks[column]
            if move:
                threats = geo.winning_spots(current | move, mask)
                ordered.append((-threats.bit_count(), len(ordered), move))
        ordered.sort()
        opponent = current ^ mask
        for _, _, move in ordered:
            score = -self.negamax(opponent, mask | move, moves + 1, -beta, -alpha)
            if score >= beta:
                self.table[key] = score + geo.max_score - 2 * geo.min_score + 2
                return score
            if score > alpha:
                alpha = score
        self.table[key] = alpha - geo.min_score + 1
        return alpha

    def solve(self, current: int, mask: int, moves: int) -> int:
        """The exact score of the position for the side to move."""
        geo = self.geo
        if moves >= geo.cells:
            return 0
        if geo.can_win_next(current, mask):
            return (geo.cells + 1 - moves) // 2
        low = -((geo.cells - moves) // 2)
        high = (geo.cells + 1 - moves) // 2
        while low < high:
            # Probe near 0 first: most positions are close to a draw.
            med = low + (high - low) // 2
            if med <= 0 and _half(low) < med:
                med = _half(low)
            elif med >= 0 and high // 2 > med:
                med = high // 2
            score = self.negamax(current, mask, moves, med, med + 1)
            if score <= med:
                high = score
            else:
                low = score
        return low


def _half(value: int) -> int:
    """value / 2 rounded toward zero, as in C."""
    return -(-value // 2) if value < 0 else value // 2


def solve(sequence: str, columns: int = 7, rows: int = 6) -> int:
    """Exact Pons score of the position after `sequence` (1-based column digits)."""
    geo = geometry(columns, rows)
    current, mask = geo.position([int(ch) - 1 for ch in sequence])
    return Solver(geo).solve(current, mask, len(sequence))


# -- play -------------------------------------------------------------------------------

WIN = 10_000


class HeuristicSearch(_Search):
    """Depth-limited negamax for when the exact search runs out of time.

    The evaluation counts each side's open winning cells (a cell where a stone
    would complete four), weighting those that are playable sooner, plus centre
    control. Scores of certain wins are `WIN + moves left`, so faster wins rank higher.
    """

    def __init__(
        self,
        geo: Geometry,
        deadline: float | None,
        max_nodes: int | None,
        ctx: WorkerContext | None,
    ) -> None:
        super().__init__(geo, deadline=deadline, max_nodes=max_nodes, ctx=ctx)
        # Cells grouped by how many lines of four pass through them: central cells
        # take part in more lines and are worth more.
        self.weighted: list[tuple[int, int]] = []
        for weight, cells in _line_counts(geo).items():
            self.weighted.append((weight, sum(1 << cell for cell in cells)))

    def evaluate(self, current: int, mask: int) -> int:
        geo = self.geo
        opponent = current ^ mask
        mine = geo.winning_spots(current, mask)
        theirs = geo.winning_spots(opponent, mask)
        playable = geo.possible(mask)
        score = 4 * (mine.bit_count() - theirs.bit_count())
        score += 3 * ((mine & (playable << 1)).bit_count() - (theirs & (playable << 1)).bit_count())
        for weight, cells in self.weighted:
            score += weight * ((current & cells).bit_count() - (opponent & cells).bit_count()) // 2
        return score

    def negamax(
        self, current: int, mask: int, moves: int, depth: int, alpha: int, beta: int
    ) -> int:
        self.nodes += 1
        if self.nodes >= self._next_check:
            self._check()
        geo = self.geo
        if geo.can_win_next(current, mask):
            return WIN + geo.cells - moves
        candidates = geo.non_losing_moves(current, mask)
        if not candidates:
            return -(WIN + geo.cells - moves - 1)
        if moves >= geo.cells - 2:
            return 0
        if depth == 0:
            return self.evaluate(current, mask)
        opponent = current ^ mask
        for column in geo.order:
            move = candidates & geo.column_masks[column]
            if not move:
                continue
            score = -self.negamax(opponent, mask | move, moves + 1, depth - 1, -beta, -alpha)
            if score >= beta:
                return score
            alpha = max(alpha, score)
        return alpha


def _line_counts(geo: Geometry) -> dict[int, list[int]]:
    """Bit index of every cell, grouped by the number of lines of four through it."""
    counts: dict[int, int] = {}
    for column in range(geo.columns):
        for row in range(geo.rows):
            for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                cells = [(column + i * dc, row + i * dr) for i in range(4)]
                if all(0 <= c < geo.columns and 0 <= r < geo.rows for c, r in cells):
                    for c, r in cells:
                        bit = c * geo.column_height + r
                        counts[bit] = counts.get(bit, 0) + 1
    groups: dict[int, list[int]] = {}
    for bit, count in counts.items():
        groups.setdefault(count, []).append(bit)
    return groups


def _root_moves(geo: Geometry, current: int, mask: int) -> list[int]:
    """Columns worth considering: an immediate win alone, else the non-losing ones."""
    playable = [c for c in geo.order if not mask & geo.tops[c]]
    wins = geo.winning_spots(current, mask) & geo.possible(mask)
    winning = [c for c in playable if wins & geo.column_masks[c]]
    if winning:
        return winning[:1]
    safe = geo.non_losing_moves(current, mask)
    return [c for c in playable if safe & geo.column_masks[c]] or playable


def _drop(geo: Geometry, current: int, mask: int, column: int) -> tuple[int, int]:
    """The position after `column`, as seen by the next side to move."""
    return current ^ mask, mask | (mask + geo.bottoms[column])


def exact_choice(
    geo: Geometry, current: int, mask: int, moves: int, solver: Solver
) -> tuple[int, int]:
    """(column, exact score) of the best move; TimeoutError when over the solver's budget."""
    best_column, best_score = -1, -WIN
    for column in _root_moves(geo, current, mask):
        child_current, child_mask = _drop(geo, current, mask, column)
        if geo.winning_spots(current, mask) & geo.column_masks[column] & geo.possible(mask):
            score = (geo.cells + 1 - moves) // 2
        else:
            score = -solver.solve(child_current, child_mask, moves + 1)
        if score > best_score:
            best_column, best_score = column, score
    return best_column, best_score


def heuristic_choice(
    geo: Geometry,
    current: int,
    mask: int,
    moves: int,
    *,
    max_depth: int,
    deadline: float | None,
    max_nodes: int | None,
    ctx: WorkerContext,
    margin: int,
    rng: random.Random,
) -> tuple[int, SearchInfo]:
    """Iterative deepening to `max_depth` or the deadline; random among near-best moves."""
    search = HeuristicSearch(geo, deadline, max_nodes, ctx)
    roots = _root_moves(geo, current, mask)
    scores: dict[int, int] = {}
    info = SearchInfo(depth=0, score=0, pv=[roots[0]], nodes=0)
    for depth in range(1, max_depth + 1):
        try:
            iteration = {}
            for column in roots:
                child_current, child_mask = _drop(geo, current, mask, column)
                if geo.winning_spots(current, mask) & geo.column_masks[column] & geo.possible(mask):
                    iteration[column] = WIN + geo.cells - moves
                else:
                    iteration[column] = -search.negamax(
                        child_current, child_mask, moves + 1, depth - 1, -WIN * 2, WIN * 2
                    )
        except TimeoutError:
            break
        scores = iteration
        best = max(scores, key=lambda c: scores[c])
        info = SearchInfo(depth=depth, score=scores[best], pv=[best], nodes=search.nodes)
        ctx.report(info)
        if abs(scores[best]) >= WIN or moves + depth >= geo.cells:
            break  # the outcome is known; deeper search changes nothing
    if not scores:
        return roots[0], info
    top = max(scores.values())
    near = [c for c in roots if scores.get(c, -WIN * 2) >= top - margin]
    choice = rng.choice(near) if top < WIN else max(scores, key=lambda c: scores[c])
    return choice, SearchInfo(depth=info.depth, score=scores[choice], pv=[choice], nodes=info.nodes)


# Per level: heuristic depth, seconds to think, noise margin, try the exact solver.
LEVELS: dict[int, tuple[int, float, int, bool]] = {
    1: (1, 0.1, 4, False),
    2: (2, 0.15, 3, False),
    3: (3, 0.2, 3, False),
    4: (4, 0.3, 2, False),
    5: (5, 0.4, 2, False),
    6: (6, 0.6, 1, False),
    7: (8, 0.8, 0, False),
    8: (10, 1.0, 0, True),
    9: (14, 2.0, 0, True),
    10: (42, 3.0, 0, True),
}


def search_job(
    ctx: WorkerContext,
    columns: int,
    rows: int,
    history: list[int],
    level: int,
    limit: SearchLimit,
    seed: int | None = None,
) -> tuple[int, SearchInfo]:
    start = time.monotonic()
    geo = geometry(columns, rows)
    current, mask = geo.position(history)
    moves = len(history)
    max_depth, _, margin, exact = LEVELS[level]
    if limit.depth is not None:
        # A depth limit asks for a shallow look: the exact solver has no depth to cut.
        max_depth, exact = limit.depth, False
    deadline = None if limit.time is None else start + limit.time
    solver_nodes = 0
    if exact and (deadline is not None or limit.nodes is not None):
        # The exact solver gets most of the budget; the heuristic fallback the rest.
        solver = Solver(
            geo,
            deadline=None if deadline is None else start + 0.7 * (deadline - start),
            max_nodes=None if limit.nodes is None else int(0.7 * limit.nodes),
            ctx=ctx,
        )
        try:
            column, score = exact_choice(geo, current, mask, moves, solver)
            return column, SearchInfo(
                depth=geo.cells - moves, score=score, pv=[column], nodes=solver.nodes
            )
        except TimeoutError:
            solver_nodes = solver.nodes
    return heuristic_choice(
        geo,
        current,
        mask,
        moves,
        max_depth=max_depth,
        deadline=deadline,
        max_nodes=None if limit.nodes is None else max(1, limit.nodes - solver_nodes),
        ctx=ctx,
        margin=margin,
        # Seeded by the position too, so a seeded agent plays each position one way.
        rng=random.Random() if seed is None else random.Random(f"{seed}:{history}"),
    )


class Connect4Agent(PooledAgent):
    """The exact solver and the heuristic search; `seed` makes its choices among
    near-equal moves reproducible (the same game every time, as tests need)."""

    game_type: ClassVar[str] = "connect4"

    def __init__(self, level: int = 5, *, seed: int | None = None) -> None:
        super().__init__(level)
        self.seed = seed

    def default_limit(self) -> SearchLimit:
        return SearchLimit(time=LEVELS[self.level][1])

    def job(self, state: GameState, limit: SearchLimit) -> tuple[SearchJob, tuple[Any, ...]]:
        assert isinstance(state, Connect4State)
        history = list(state.history)
        return search_job, (state.columns, state.rows, history, self.level, limit, self.seed)


__all__ = ["Connect4Agent", "SearchCancelled", "Solver", "geometry", "solve"]
