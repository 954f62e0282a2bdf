"""Accuracy and speed of the Connect4 solver on Pascal Pons' test sets.

    python -m bench.connect4_pons [--sample N] [--sets Test_L3_R1,...] [--budget SECONDS]

Solves the first N positions of each set (all 1000 with --sample 1000) and prints,
per set, how many scores were exact, the mean time per position and the reference
C++ solver's published mean. A set stops early once it has used --budget seconds,
and a position is given up after --position-limit seconds (counted as timed out,
not in the mean), so the slow sets (L1_R2, L1_R3) report on what they reached.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.connect4 import Solver, geometry

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "connect4"
# Mean time per position of Pons' C++ strong solver (blog part 12), in seconds.
REFERENCE = {
    "Test_L3_R1": 4.57e-6,
    "Test_L2_R1": 37.5e-6,
    "Test_L2_R2": 3.21e-3,
    "Test_L1_R1": 255e-6,
    "Test_L1_R2": 96.6e-3,
    "Test_L1_R3": 5.49,
}


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def solve_within(sequence: str, seconds: float) -> int | None:
    """The exact score, or None when it takes longer than `seconds`."""
    geo = geometry()
    current, mask = geo.position([int(ch) - 1 for ch in sequence])
    solver = Solver(geo, deadline=time.monotonic() + seconds)
    try:
        return solver.solve(current, mask, len(sequence))
    except TimeoutError:
        return None


def run_set(name: str, sample: int, budget: float, limit: float) -> tuple[int, int, int, float]:
    """(positions solved, exact scores, timed out, mean seconds per solved position)."""
    lines = (DATA / name).read_text().split("\n")
    pairs = [line.split() for line in lines if line.strip()][:sample]
    exact = solved = timed_out = 0
    solving = 0.0
    start = time.perf_counter()
    for sequence, score in pairs:
        began = time.perf_counter()
        result = solve_within(sequence, limit)
        if result is None:
            timed_out += 1
        else:
            solving += time.perf_counter() - began
            solved += 1
            exact += result == int(score)
        if time.perf_counter() - start > budget:
            break
    return solved, exact, timed_out, solving / max(solved, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=100, help="positions per set")
    parser.add_argument("--sets", default=",".join(REFERENCE), help="comma-separated set names")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per set at most")
    parser.add_argument(
        "--position-limit", type=float, default=20.0, help="seconds per position at most"
    )
    args = parser.parse_args(argv)
    print(
        f"{'set':<12} {'solved':>7} {'exact':>7} {'timeout':>8} {'mean time':>11} "
        f"{'C++ ref':>10} {'ratio':>7}"
    )
    all_exact = True
    for name in args.sets.split(","):
        solved, exact, timed_out, mean = run_set(
            name, args.sample, args.budget, args.position_limit
        )
        reference = REFERENCE[name]
        print(
            f"{name:<12} {solved:>7} {exact:>7} {timed_out:>8} {_duration(mean):>11} "
            f"{_duration(reference):>10} {mean / reference:>6.0f}x",
            flush=True,
        )
        all_exact &= exact == solved
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
