"""Persistence: the `GameStore` contract and `create_store`, which picks one from settings."""

from __future__ import annotations

from pathlib import Path

from socket_server.settings import Settings
from socket_server.store.base import (
    Actor,
    DuplicateRequest,
    EventKind,
    EventRecord,
    GameRecord,
    GameStatus,
    GameStore,
    NotPermitted,
    Seat,
    StaleVersion,
    StoreError,
    utc_now,
)
from socket_server.store.memory import MemoryStore

__all__ = [
    "Actor",
    "DuplicateRequest",
    "EventKind",
    "EventRecord",
    "GameRecord",
    "GameStatus",
    "GameStore",
    "MemoryStore",
    "NotPermitted",
    "Seat",
    "StaleVersion",
    "StoreError",
    "create_store",
    "sqlite_path",
    "utc_now",
]

_SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path:
    """`sqlite:///rel/path` is relative, `sqlite:////abs/path` absolute (as in SQLAlchemy)."""
    if not url.startswith(_SQLITE_PREFIX) or len(url) == len(_SQLITE_PREFIX):
        raise ValueError(f"a SQLite URL looks like sqlite:///path/to/file, not {url!r}")
    return Path(url[len(_SQLITE_PREFIX) :])


def create_store(settings: Settings) -> GameStore:
    """The store named by `settings.effective_database_url` (not opened yet)."""
    url = settings.effective_database_url
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if url == "memory://":
        return MemoryStore()
    if scheme == "sqlite":
        from socket_server.store.sqlite import SqliteStore

        path = sqlite_path(url)
        # Private to the server's user: the database holds private games.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return SqliteStore(path)
    if scheme in ("postgresql", "postgres"):
        # Imported only when asked for, so embedded mode never loads the Postgres driver.
        from socket_server.store.postgres import PostgresStore

        return PostgresStore(url, prepared_statements=settings.database_prepared_statements)
    # Never echo the URL: a Postgres URL may carry a password.
    raise ValueError(
        f"unsupported database URL scheme {scheme or '(none)'!r}: "
        "use memory://, sqlite:///path or postgresql://..."
    )
