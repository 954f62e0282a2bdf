"""Share of the Win At Chess suite solved at a fixed time per position.

    python -m bench.chess_epd --engine builtin --time 1.0 [--limit N] [--offset K]

A position counts as solved when the engine's move is one of the EPD's `bm` moves.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import chess

from agents import shutdown
from agents.chess import best_move

WAC = Path(__file__).resolve().parents[2] / "shared" / "data" / "chess" / "wac.epd"


def parse_epd(line: str) -> tuple[str, chess.Board, list[chess.Move]]:
    """(id, position, best moves). Only `bm` and `id` are read: some `pv`s in the
    suite are cut off mid-move, which python-chess's full EPD parser refuses."""
    fields = line.split(maxsplit=4)
    board = chess.Board(" ".join(fields[:4]) + " 0 1")
    operations = fields[4] if len(fields) > 4 else ""
    best_sans = re.search(r"\bbm ([^;]*);", operations)
    if best_sans is None:
        raise ValueError(f"no bm in {line!r}")
    name = re.search(r'\bid "([^"]*)"', operations)
    best = [board.parse_san(san) for san in best_sans.group(1).split()]
    return (name.group(1) if name else fields[0]), board, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("builtin", "stockfish"), default="builtin")
    parser.add_argument("--time", type=float, default=1.0, help="seconds per position")
    parser.add_argument("--limit", type=int, default=None, help="positions to try")
    parser.add_argument("--offset", type=int, default=0, help="positions to skip first")
    parser.add_argument("--verbose", action="store_true", help="one line per position")
    args = parser.parse_args(argv)
    lines = [line for line in WAC.read_text().splitlines() if line.strip()]
    end = None if args.limit is None else args.offset + args.limit
    lines = lines[args.offset : end]
    solved = 0
    start = time.perf_counter()
    try:
        for line in lines:
            name, board, best = parse_epd(line)
            uci = best_move(board.fen(), time_limit=args.time, engine=args.engine)
            move = chess.Move.from_uci(uci)
            ok = move in best
            solved += ok
            if args.verbose:
                wanted = " ".join(board.san(m) for m in best)
                verdict = "ok" if ok else "--"
                print(f"{name}: {board.san(move):>8} want {wanted:<12} {verdict}")
    finally:
        shutdown()
    elapsed = time.perf_counter() - start
    share = solved / max(len(lines), 1)
    print(
        f"engine={args.engine} time={args.time}s positions={len(lines)} "
        f"solved={solved} ({share:.1%}) wall={elapsed:.0f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
