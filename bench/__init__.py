"""Load generator and benchmarks for gamesocket; see docs/benchmarks.md. Run: python -m bench."""
