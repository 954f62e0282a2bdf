"""The ratings suite (tests/system/test_ratings.py) on a real server on Postgres: every
store call made as the players under row-level security, the ratings written by the
server's role in the final event's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.pgutil import migrated_database
from tests.system.test_ratings import *  # noqa: F403


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with migrated_database() as url:
        yield url
