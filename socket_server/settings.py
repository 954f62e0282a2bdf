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


def _env_list(name: str) -> tuple[str, ...]:
    """A comma-separated variable as its non-empty items, stripped."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


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
    # Network lag credited to each human move on a clock (ms): the frame left the
    # player at least this long before it arrived (lichess credits lag similarly).
    lag_credit_ms: int = 100
    # Start the AI's search workers with the server (else on the first search).
    ai_warm_up: bool = True
    # An opponent offline this long (every socket, every process) lets a player claim.
    claim_after_seconds: float = 60.0
    # A seek neither fetched nor watched on a lobby socket for this long lapses.
    seek_ttl_seconds: float = 60.0
    # A socket resuming (or catching up) more versions behind than this gets one
    # `state` instead of the updates in between.
    max_replay_updates: int = 128
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
    # Origins (scheme://host[:port]) whose pages may call the REST API (CORS) and open
    # sockets; "*" allows any. Empty: no CORS headers, and sockets are not checked.
    cors_origins: tuple[str, ...] = ()
    # A bearer token that makes its holder an administrator (POST /api/admin/announce);
    # None: only a Supabase service_role token does.
    admin_token: str | None = None
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
        """Settings from the environment variables of `ENVIRONMENT` (below), then
        `overrides` (CLI flags) where they are not None."""
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
            max_replay_updates=_env_int("GAMESOCKET_MAX_REPLAY", cls.max_replay_updates),
            ai_lock_ttl_seconds=_env_float("GAMESOCKET_AI_LOCK_TTL", cls.ai_lock_ttl_seconds),
            ai_search_timeout_seconds=_env_float(
                "GAMESOCKET_AI_SEARCH_TIMEOUT", cls.ai_search_timeout_seconds
            ),
            lag_credit_ms=_env_int("GAMESOCKET_LAG_CREDIT_MS", cls.lag_credit_ms),
            ai_warm_up=env("GAMESOCKET_AI_WARM_UP", "1") != "0",
            claim_after_seconds=_env_float("GAMESOCKET_CLAIM_AFTER", cls.claim_after_seconds),
            seek_ttl_seconds=_env_float("GAMESOCKET_SEEK_TTL", cls.seek_ttl_seconds),
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
            cors_origins=_env_list("GAMESOCKET_CORS_ORIGINS"),
            admin_token=env("GAMESOCKET_ADMIN_TOKEN") or None,
            # Keeps deployments (or test runs) sharing one Redis apart.
            extra={"redis_prefix": prefix} if (prefix := env("GAMESOCKET_REDIS_PREFIX")) else {},
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


# Every environment variable the server reads and what it sets: `Settings.from_env`
# reads these (all but GAMESOCKET_LOG_FORMAT, which socket_server.logs reads) and
# `gamesocket serve --help` lists them. The one list: add a variable here as well.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("GAMESOCKET_HOST", f"address to listen on (default {Settings.host}; --host overrides)"),
    ("GAMESOCKET_PORT", f"port (default {Settings.port}; --port overrides)"),
    (
        "GAMESOCKET_DATA_DIR",
        f"embedded mode's SQLite file and guest-token secret (default ./{Settings.data_dir})",
    ),
    (
        "DATABASE_URL",
        "sqlite:///path, postgresql://... or memory:// (default: SQLite in the data dir)",
    ),
    ("DATABASE_PREPARED_STATEMENTS", "0 for Supabase's transaction-mode pooler (default 1)"),
    ("REDIS_URL", "redis://...: fan-out, AI locks and presence shared by several processes"),
    ("GAMESOCKET_REDIS_PREFIX", "prefix of the Redis keys and channels (default gamesocket)"),
    (
        "GAMESOCKET_AI_LOCK_TTL",
        "seconds until a dead process's AI games are taken over"
        f" (default {Settings.ai_lock_ttl_seconds:g})",
    ),
    (
        "GAMESOCKET_AI_SEARCH_TIMEOUT",
        "seconds an AI search may take before it is cancelled and retried"
        f" (default {Settings.ai_search_timeout_seconds:g})",
    ),
    (
        "GAMESOCKET_AI_WARM_UP",
        "0: start the AI's search workers on the first search, not with the server (default 1)",
    ),
    (
        "GAMESOCKET_LAG_CREDIT_MS",
        "network lag credited to each human move on a clock, in ms"
        f" (default {Settings.lag_credit_ms})",
    ),
    (
        "GAMESOCKET_CLAIM_AFTER",
        "seconds every opponent must be offline before a player may claim victory"
        f" (default {Settings.claim_after_seconds:g})",
    ),
    (
        "GAMESOCKET_SEEK_TTL",
        "seconds after which a seek neither fetched nor watched on a lobby socket lapses"
        f" (default {Settings.seek_ttl_seconds:g})",
    ),
    ("SUPABASE_URL", "the Supabase project URL: tokens are verified against its JWKS"),
    ("SUPABASE_JWT_SECRET", "the Supabase project's JWT secret, for HS256 tokens"),
    ("SUPABASE_ANON_KEY", "handed to the web page so that it can sign in with supabase-js"),
    ("SUPABASE_JWT_ISSUER", "expected iss of access tokens (default SUPABASE_URL/auth/v1)"),
    (
        "GAMESOCKET_MAX_MESSAGE_BYTES",
        f"larger frames close the socket with 1009 (default {Settings.max_message_bytes})",
    ),
    (
        "GAMESOCKET_IDLE_TIMEOUT",
        f"seconds without any message before 4408 (default {Settings.idle_timeout_seconds:g})",
    ),
    (
        "GAMESOCKET_RATE_LIMIT",
        f"messages a second per socket, sustained (default {Settings.rate_limit_per_second:g})",
    ),
    (
        "GAMESOCKET_RATE_BURST",
        f"burst of that per-socket limit (default {Settings.rate_limit_burst})",
    ),
    (
        "GAMESOCKET_MAX_REPLAY",
        "most updates replayed to a socket resuming with since; further behind, one state"
        f" (default {Settings.max_replay_updates})",
    ),
    (
        "GAMESOCKET_CORS_ORIGINS",
        "comma-separated origins (or *) whose pages may call the API and open sockets"
        " (default: none)",
    ),
    (
        "GAMESOCKET_MAX_SOCKETS",
        "WebSockets on this process; one more is closed with 1013"
        " (default min(10000, the descriptor limit minus a reserve); 0: no cap)",
    ),
    (
        "GAMESOCKET_MAX_SOCKETS_PER_IP",
        f"WebSockets from one address (default {Settings.max_sockets_per_ip}; 0: no cap)",
    ),
    (
        "GAMESOCKET_HANDSHAKE_TIMEOUT",
        "seconds a connection may take to send a whole request or WebSocket upgrade"
        f" (default {Settings.handshake_timeout_seconds:g}; 0: no limit)",
    ),
    (
        "GAMESOCKET_REST_RATE_LIMIT",
        "requests under /api/ a minute per user, or per address without a token"
        f" (default {Settings.rest_rate_limit}; 0: no limit)",
    ),
    (
        "GAMESOCKET_GUEST_RATE_LIMIT",
        f"new guest tokens an hour per address (default {Settings.guest_rate_limit}; 0: no limit)",
    ),
    (
        "GAMESOCKET_MAX_AI_GAMES_PER_USER",
        "active AI-vs-AI games one user may have created"
        f" (default {Settings.max_ai_games_per_user}; 0: no limit)",
    ),
    (
        "GAMESOCKET_FORWARDED_ALLOW_IPS",
        "proxies trusted for X-Forwarded-For, comma-separated or *"
        f" (default {Settings.forwarded_allow_ips})",
    ),
    (
        "GAMESOCKET_ADMIN_TOKEN",
        "a bearer token that may POST /api/admin/announce (default: none; a Supabase"
        " service_role token always may)",
    ),
    ("GAMESOCKET_LOG_FORMAT", "text, or json for one JSON object per log line (default text)"),
)
