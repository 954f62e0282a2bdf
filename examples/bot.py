"""A bot that plays tic-tac-toe or Connect Four against the server's AI, printing its moves.

    python examples/bot.py --url http://127.0.0.1:8000 [--game connect4] [--level 3]

Its strategy looks one ply ahead: win now if it can, else block the opponent's
immediate win, else take the most central legal move. All the protocol work (guest
sign-in, creating the game, the socket, reconnects) is `gamesocket_client.play`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from gamesocket_client import SEATS, Change, GameSocketError, Snapshot, SnapshotEvent, play

Cell = str | None
TICTACTOE_LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8)]
TICTACTOE_LINES += [(0, 4, 8), (2, 4, 6)]
TICTACTOE_PREFERENCE = [4, 0, 2, 6, 8, 1, 3, 5, 7]  # centre, corners, edges
CONNECT4_DIRECTIONS = [(0, 1), (1, 0), (1, 1), (1, -1)]


# -- the rules the bot needs: what a move leaves behind, and whether it wins --------------
def tictactoe_after(snapshot: Snapshot, cell: int, seat: str) -> bool:
    """Whether `seat` taking `cell` completes a line of three."""
    cells: list[Cell] = list(snapshot.board["cells"])
    cells[cell] = seat
    return any(all(cells[i] == seat for i in line) for line in TICTACTOE_LINES)


def connect4_after(snapshot: Snapshot, column: int, seat: str) -> bool:
    """Whether `seat` dropping a disc in `column` makes four in a row."""
    grid: list[list[Cell]] = [list(row) for row in snapshot.board["cells"]]
    row = max(r for r in range(len(grid)) if grid[r][column] is None)  # lowest empty cell
    grid[row][column] = seat
    return any(
        connect4_run(grid, row, column, dr, dc) + connect4_run(grid, row, column, -dr, -dc) >= 3
        for dr, dc in CONNECT4_DIRECTIONS
    )


def connect4_run(grid: list[list[Cell]], row: int, column: int, dr: int, dc: int) -> int:
    """How many discs of the same seat follow (row, column) in the direction (dr, dc)."""
    seat, count = grid[row][column], 0
    row, column = row + dr, column + dc
    while 0 <= row < len(grid) and 0 <= column < len(grid[0]) and grid[row][column] == seat:
        count, row, column = count + 1, row + dr, column + dc
    return count


WINS = {"tictactoe": tictactoe_after, "connect4": connect4_after}


def centrality(game_type: str, move: int) -> int:
    """Higher is more central: central cells and columns take part in more lines."""
    if game_type == "tictactoe":
        return -TICTACTOE_PREFERENCE.index(move)
    return -abs(move - 3)


def choose_move(snapshot: Snapshot) -> int:
    """Win if possible, else block the opponent's win, else the most central move."""
    me = snapshot.turn
    assert me is not None, "asked to move in a game that is not active"
    opponent = next(seat for seat in snapshot.seats if seat != me)
    wins = WINS[snapshot.game_type]
    for seat in (me, opponent):
        for move in snapshot.legal_moves:
            if wins(snapshot, move, seat):
                return int(move)
    return int(max(snapshot.legal_moves, key=lambda move: centrality(snapshot.game_type, move)))


# -- printing -----------------------------------------------------------------------------
def show(change: Change) -> None:
    """One line per change: the game at the start, then every move with its version."""
    snapshot = change.snapshot
    if isinstance(change, SnapshotEvent):
        seats = ", ".join(f"{name}: {describe(seat)}" for name, seat in snapshot.seats.items())
        print(f"game {snapshot.game_id} ({snapshot.game_type}) at version {change.version}")
        print(f"seats: {seats}")
    elif change.event.kind == "move":
        print(f"v{change.version} {change.event.seat} plays {change.event.move}")
    else:
        print(f"v{change.version} {change.event.kind} {change.event.seat or ''}".rstrip())
    sys.stdout.flush()


def describe(seat: object) -> str:
    kind = getattr(seat, "kind", None)
    if kind == "ai":
        return f"AI level {getattr(seat, 'level', '?')}"
    return "this bot" if kind == "human" else "empty"


def render(snapshot: Snapshot) -> str:
    """The final board as text, one row a line."""
    mark = {None: "."} | {seat: seat[0] for seat in SEATS[snapshot.game_type]}
    if snapshot.game_type == "tictactoe":
        cells = snapshot.board["cells"]
        rows = [cells[i : i + 3] for i in (0, 3, 6)]
    else:
        rows = snapshot.board["cells"]
    return "\n".join(" ".join(mark[cell] for cell in row) for row in rows)


# -- the program --------------------------------------------------------------------------
async def run(url: str, game: str, level: int) -> Snapshot:
    return await play(game, choose_move, base_url=url, level=level, on_change=show)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    parser.add_argument("--game", choices=sorted(WINS), default="tictactoe")
    parser.add_argument("--level", type=int, default=3, help="the AI's level, 1..10")
    args = parser.parse_args(argv)
    try:
        final = asyncio.run(run(args.url, args.game, args.level))
    except GameSocketError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render(final))
    result = final.result
    winner = result.winner if result is not None else None
    reason = result.reason if result is not None else final.status
    print(f"result: {f'{winner} wins' if winner else 'draw'} ({reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
