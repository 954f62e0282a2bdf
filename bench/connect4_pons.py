"""Accuracy and speed of the Connect4 solver on Pascal Pons' test sets.

    python -m bench.connect4_pons [--sample N] [--sets Test_L3_R1,...] [--budget SECONDS]

Solves the first N positions of each set (all 1000 with --sample 1000) and prints,
per set, how many scores were exact, the mean time per position and the reference
C++ solver's published mean. A set stops early once it has used --budget seconds,
so the slow sets (L1_R2, L1_R3) report on the positions they reached.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.connect4 import solve

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


def run_set(name: str, sample: int, budget: float) -> tuple[int, int, float]:
    """(positions solved, exact scores, mean seconds per position)."""
    lines = (DATA / name).read_text().split("\n")
    pairs = [line.split() for line in lines if line.strip()][:sample]
    exact = solved = 0
    start = time.perf_counter()
    for sequence, score in pairs:
        exact += solve(sequence) == int(score)
        solved += 1
        if time.perf_counter() - start > budget:
            break
    elapsed = time.perf_counter() - start
    return solved, exact, elapsed / max(solved, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=100, help="positions per set")
    parser.add_argument("--sets", default=",".join(REFERENCE), help="comma-separated set names")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per set at most")
    args = parser.parse_args(argv)
    print(f"{'set':<12} {'solved':>7} {'exact':>7} {'mean time':>11} {'C++ ref':>10} {'ratio':>7}")
    all_exact = True
    for name in args.sets.split(","):
        solved, exact, mean = run_set(name, args.sample, args.budget)
        reference = REFERENCE[name]
        print(
            f"{name:<12} {solved:>7} {exact:>7} {_duration(mean):>11} "
            f"{_duration(reference):>10} {mean / reference:>6.0f}x",
            flush=True,
        )
        all_exact &= exact == solved
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
