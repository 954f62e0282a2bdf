"""Server configuration, read from the environment (and CLI flags, which override it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Where embedded mode keeps its SQLite file and the guest-token secret.
    data_dir: Path = Path("gamesocket-data")
    # sqlite:///path, postgresql://..., or memory:// ; None: SQLite in data_dir.
    database_url: str | None = None
    # Supabase's transaction-mode pooler does not support prepared statements.
    database_prepared_statements: bool = True
    redis_url: str | None = None
    supabase_url: str | None = None
    supabase_anon_key: str | None = None
    supabase_jwt_secret: str | None = None
    # Expected `iss` of access tokens; defaults to SUPABASE_URL + "/auth/v1" when set.
    jwt_issuer: str | None = None
    jwt_audience: str = "authenticated"
    guest_token_ttl_seconds: int = 7 * 24 * 3600
    max_message_bytes: int = 64 * 1024
    idle_timeout_seconds: float = 60.0
    # Token bucket per connection: sustained messages per second and burst size.
    rate_limit_per_second: float = 20.0
    rate_limit_burst: int = 40
    # A spectator socket more than this many messages behind is closed.
    max_send_backlog: int = 256
    default_ai_delay_ms: int = 500
    # The AI-turn lock between processes lapses this long after its holder died.
    ai_lock_ttl_seconds: float = 10.0
    # An AI search still unanswered after this long (every level's budget is at most
    # 3 s) is cancelled, logged as an error and tried again.
    ai_search_timeout_seconds: float = 40.0
    # Abuse limits (socket_server/limits.py, http_protocol.py); 0 turns one off.
    # WebSockets on this process; None: min(10000, the descriptor limit minus a reserve).
    max_sockets: int | None = None
    max_sockets_per_ip: int = 64
    # Seconds a connection may take to send a whole request (a WebSocket's upgrade too).
    handshake_timeout_seconds: float = 10.0
    rest_rate_limit: int = 600  # requests under /api/ a minute, per user or address
    guest_rate_limit: int = 30  # new guest tokens an hour per address
    max_ai_games_per_user: int = 3  # active games with only AI seats, per creating user
    # Peers whose X-Forwarded-For / X-Forwarded-Proto uvicorn trusts (comma-separated, "*").
    forwarded_allow_ips: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def embedded_auth(self) -> bool:
        """No Supabase configured: the server issues guest tokens itself."""
        return not (self.supabase_jwt_secret or self.supabase_url)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gamesocket.sqlite3'}"

    @property
    def effective_jwt_issuer(self) -> str | None:
        if self.jwt_issuer:
            return self.jwt_issuer
        if self.supabase_url:
            return self.supabase_url.rstrip("/") + "/auth/v1"
        return None

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ.get
        settings = cls(
            host=env("GAMESOCKET_HOST", cls.host),
            port=_env_int("GAMESOCKET_PORT", cls.port),
            data_dir=Path(env("GAMESOCKET_DATA_DIR", str(cls.data_dir))),
            database_url=env("DATABASE_URL") or None,
            database_prepared_statements=env("DATABASE_PREPARED_STATEMENTS", "1") != "0",
            redis_url=env("REDIS_URL") or None,
            supabase_url=env("SUPABASE_URL") or None,
            supabase_anon_key=env("SUPABASE_ANON_KEY") or None,
            supabase_jwt_secret=env("SUPABASE_JWT_SECRET") or None,
            jwt_issuer=env("SUPABASE_JWT_ISSUER") or None,
            max_message_bytes=_env_int("GAMESOCKET_MAX_MESSAGE_BYTES", cls.max_message_bytes),
            idle_timeout_seconds=_env_float("GAMESOCKET_IDLE_TIMEOUT", cls.idle_timeout_seconds),
            rate_limit_per_second=_env_float("GAMESOCKET_RATE_LIMIT", cls.rate_limit_per_second),
            rate_limit_burst=_env_int("GAMESOCKET_RATE_BURST", cls.rate_limit_burst),
            ai_lock_ttl_seconds=_env_float("GAMESOCKET_AI_LOCK_TTL", cls.ai_lock_ttl_seconds),
            ai_search_timeout_seconds=_env_float(
                "GAMESOCKET_AI_SEARCH_TIMEOUT", cls.ai_search_timeout_seconds
            ),
            max_sockets=_env_optional_int("GAMESOCKET_MAX_SOCKETS"),
            max_sockets_per_ip=_env_int("GAMESOCKET_MAX_SOCKETS_PER_IP", cls.max_sockets_per_ip),
            handshake_timeout_seconds=_env_float(
                "GAMESOCKET_HANDSHAKE_TIMEOUT", cls.handshake_timeout_seconds
            ),
            rest_rate_limit=_env_int("GAMESOCKET_REST_RATE_LIMIT", cls.rest_rate_limit),
            guest_rate_limit=_env_int("GAMESOCKET_GUEST_RATE_LIMIT", cls.guest_rate_limit),
            max_ai_games_per_user=_env_int(
                "GAMESOCKET_MAX_AI_GAMES_PER_USER", cls.max_ai_games_per_user
            ),
            forwarded_allow_ips=env("GAMESOCKET_FORWARDED_ALLOW_IPS", cls.forwarded_allow_ips),
            # Keeps deployments (or test runs) sharing one Redis apart.
            extra={"redis_prefix": prefix} if (prefix := env("GAMESOCKET_REDIS_PREFIX")) else {},
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
