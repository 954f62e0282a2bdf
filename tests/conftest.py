"""Shared test helpers.

Tests that need an outside tool (Stockfish, Chromium, PostgreSQL, Redis) call
`require(...)`: on a developer's machine without it they skip; in CI, where
GAMESOCKET_REQUIRE_ALL=1, a missing tool fails the test instead of hiding it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The real-server fixtures (`database_url`, `server`, `api`, ...) of the server tests.
pytest_plugins = ["tests.server_harness"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("GAMESOCKET_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} is not available")
