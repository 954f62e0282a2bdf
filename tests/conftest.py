"""Shared test helpers.

Tests that need an outside tool (Stockfish, Chromium, PostgreSQL, Redis) call
`require(...)`: on a developer's machine without it they skip; in CI, where
GAMESOCKET_REQUIRE_ALL=1, a missing tool fails the test instead of hiding it.
What lives beside the project in `../shared` (the reference data sets; absent from a
fresh clone) is read through `shared_file(...)` / `shared_data(...)`, which do the same.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The real-server fixtures (`database_url`, `server`, `api`, ...) of the server tests, and
# the browser tests' (`web_server`, `browser`, `new_page`).
pytest_plugins = ["tests.server_harness", "tests.browser_harness"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


def require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("GAMESOCKET_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} is not available")


def shared_file(*parts: str) -> Path:
    """A file or folder of `../shared` (beside the project, absent from a fresh clone):
    skips the test when it is missing, fails it in CI.

    Call it inside a test or fixture, never at import time: a module-level read would
    error at collection instead of skipping.
    """
    path = SHARED.joinpath(*parts)
    require(path.exists(), f"{path} (beside the project, not in a clone)")
    return path


def shared_data(*parts: str) -> Path:
    """A reference data set of `../shared/data`, as `shared_file` finds it."""
    return shared_file("data", *parts)


def npm_ci(package: Path) -> None:
    """`npm ci` in `package` unless its node_modules already matches package-lock.json."""
    stamp = package / "node_modules" / ".gamesocket-lock-sha256"
    digest = hashlib.sha256((package / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    assert npm is not None
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=package,
        check=True,
        timeout=300,
    )
    stamp.write_text(digest)
