"""Abuse limits of one process: token buckets, WebSocket caps, the REST rate limits.

- `TokenBucket`: `rate` a second on average, `burst` at once (the per-socket message
  limit of the endpoint, and the buckets below).
- `SocketCaps` and `SocketCapLimit`: at most `GAMESOCKET_MAX_SOCKETS` WebSockets on
  this process and `GAMESOCKET_MAX_SOCKETS_PER_IP` from one address; a socket beyond
  either is accepted and closed at once with 1013 (try again later), before any token
  check or store read, so the descriptors the store, Redis and HTTP need stay free.
- `RestRateLimit`: `GAMESOCKET_REST_RATE_LIMIT` requests a minute under
  `/api/` per user (the verified token's user), or per address without a valid token,
  and `GAMESOCKET_GUEST_RATE_LIMIT` new guest tokens an hour per address: 429
  `rate_limited` with `Retry-After`.

An address is the client's as uvicorn reports it: the peer, or what a trusted proxy
(`GAMESOCKET_FORWARDED_ALLOW_IPS`) put in `X-Forwarded-For`; an IPv6 address counts by
its /64 network (one client commonly holds all of it). Every limit is per process, and
0 turns it off.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import resource
import time
from collections.abc import Coroutine
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from socket_server.auth import Authenticator, AuthError
from socket_server.protocol import CloseCode, ErrorCode
from socket_server.settings import Settings

log = logging.getLogger("gamesocket.limits")

# The default socket cap: at most this many, and never closer to the descriptor limit
# than the reserve (the store's pool, Redis, the HTTP requests, engines, logs).
MAX_SOCKETS_CEILING = 10_000
FD_RESERVE_MIN = 100
FD_RESERVE_SHARE = 4  # a quarter of the descriptor limit, when that is more
# A route handler whose `opt` carries this key is also counted by that named limit.
LIMIT_OPT = "gamesocket_limit"
GUEST_LIMIT = "guest"
REST_PREFIX = "/api/"
LOG_EVERY = 10.0  # seconds: a limit logs its refusals at most this often


class TokenBucket:
    """`rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token (0 when one is there)."""
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else math.inf


def client_key(host: str | None) -> str:
    """The address a limit counts by: IPv4 as it is, IPv6 by its /64 network."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a Unix socket's path, a test client's name)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def scope_address(scope: Scope) -> str:
    client = scope.get("client")
    return client_key(client[0] if client else None)


def default_max_sockets() -> int:
    """min(10000, the soft descriptor limit minus a reserve of max(100, a quarter))."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_SOCKETS_CEILING
    reserve = max(FD_RESERVE_MIN, soft // FD_RESERVE_SHARE)
    return max(1, min(MAX_SOCKETS_CEILING, soft - reserve))


class RefusalLog:
    """Logs a limit's refusals at most once per `LOG_EVERY` seconds, with their count."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.logged_at = -math.inf

    def note(self, key: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning(
                "limit %s refused %d since last line, latest=%s", self.what, self.count, key
            )
            self.count = 0
            self.logged_at = now


class KeyedBuckets:
    """A token bucket per key of `per_period` a `period` (seconds), bursts as large."""

    def __init__(self, per_period: int, period: float) -> None:
        self.burst = per_period
        self.rate = per_period / period
        self.period = period
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_at = time.monotonic()

    def take(self, key: str) -> float | None:
        """None when `key` may go on; else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._prune()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        if bucket.take():
            return None
        return bucket.retry_after()

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self) -> None:
        """Forget the buckets that have been full again for a while (once a period)."""
        now = time.monotonic()
        if now - self._pruned_at < self.period:
            return
        self._pruned_at = now
        idle = [key for key, b in self._buckets.items() if now - b.stamp >= self.period]
        for key in idle:
            del self._buckets[key]


class SocketCaps:
    """Open WebSockets of this process: `total` in all, `per_address` from one address."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total  # 0: no cap
        self.per_address = per_address
        self.open = 0
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> str | None:
        """Count a new socket from `address`; None if admitted, else why it is not."""
        if self.total and self.open >= self.total:
            return "the server is full: try again later"
        held = self._by_address.get(address, 0)
        if self.per_address and held >= self.per_address:
            return "too many sockets from your address: close some first"
        self.open += 1
        self._by_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        held = self._by_address[address] - 1
        if held:
            self._by_address[address] = held
        else:
            del self._by_address[address]

    def held_by(self, address: str) -> int:
        return self._by_address.get(address, 0)


class SocketCapLimit:
    """Every WebSocket route: admitted within the caps, else accepted and closed 1013."""

    def __init__(self, caps: SocketCaps) -> None:
        self.caps = caps
        self.refusals = RefusalLog("sockets")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        address = scope_address(scope)
        refusal = self.caps.admit(address)
        if refusal is not None:
            self.refusals.note(address)
            await _refuse_socket(receive, send, refusal)
            return
        try:
            await next_app(scope, receive, send)
        finally:
            self.caps.release(address)


async def _refuse_socket(receive: Receive, send: Send, reason: str) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client left during the handshake
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    await send({"type": "websocket.close", "code": CloseCode.TRY_AGAIN_LATER, "reason": reason})


class RestRateLimit:
    """Requests under `/api/`: per user or address a minute, and guest tokens an hour."""

    def __init__(self, settings: Settings, auth: Authenticator) -> None:
        self.auth = auth
        per_minute, guests = settings.rest_rate_limit, settings.guest_rate_limit
        self.requests = KeyedBuckets(per_minute, 60.0) if per_minute > 0 else None
        self.guests = KeyedBuckets(guests, 3600.0) if guests > 0 else None
        self.refusals = RefusalLog("rest")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"].startswith(REST_PREFIX):
            wait = await self._wait(scope)
            if wait is not None:
                await _too_many_requests(send, wait)
                return
        await next_app(scope, receive, send)

    async def _wait(self, scope: Scope) -> float | None:
        """None when the request may go on; else the seconds the caller should wait."""
        address = scope_address(scope)
        key = f"address {address}"
        wait = None
        if self.requests is not None:
            key = await self._caller(scope, address)
            wait = self.requests.take(key)
        if wait is None and self.guests is not None and _limit_of(scope) == GUEST_LIMIT:
            key = f"guests {address}"
            wait = self.guests.take(key)
        if wait is not None:
            self.refusals.note(key)
        return wait

    async def _caller(self, scope: Scope, address: str) -> str:
        """The key of the request's caller: its verified user, else its address."""
        token = _bearer_token(scope)
        if token is not None:
            try:
                return f"user {(await self.auth.verify(token)).user_id}"
            except AuthError:
                pass  # refused by the handler; counted by address meanwhile
        return f"address {address}"


def _limit_of(scope: Scope) -> Any:
    handler = scope.get("route_handler")
    return handler.opt.get(LIMIT_OPT) if handler is not None else None


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


async def _too_many_requests(send: Send, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    body = msgspec.json.encode(
        {
            "error": {
                "code": ErrorCode.RATE_LIMITED,
                "message": f"too many requests: retry in {seconds} s",
            }
        }
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(seconds).encode()),
    ]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 429,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def socket_caps(settings: Settings) -> SocketCaps:
    """The caps of `settings` (`max_sockets` None: `default_max_sockets()`)."""
    total = settings.max_sockets if settings.max_sockets is not None else default_max_sockets()
    return SocketCaps(total, settings.max_sockets_per_ip)


class LimitMiddleware(ASGIMiddleware):
    """The socket caps for WebSockets, the REST rate limits for HTTP: one middleware, as
    every middleware a socket passes, even one that lets it by, holds a frame for the
    socket's lifetime (about 0.4 KiB)."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, settings: Settings, auth: Authenticator) -> None:
        self.sockets = SocketCapLimit(socket_caps(settings))
        self.rest = RestRateLimit(settings, auth)

    def handle(
        self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp
    ) -> Coroutine[Any, Any, None]:
        # The limit's own coroutine, handed back rather than awaited here: no frame of
        # this method stays behind for the socket's lifetime either.
        limit = self.sockets if scope["type"] == ScopeType.WEBSOCKET else self.rest
        return limit.handle(scope, receive, send, next_app)


def limit_middleware(settings: Settings, auth: Authenticator) -> list[ASGIMiddleware]:
    """The app's middleware for the socket caps and the REST rate limits."""
    return [LimitMiddleware(settings, auth)]
