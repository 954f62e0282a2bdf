"""Access tokens: Supabase Auth JWTs, or guest tokens the server issues in embedded mode.

Supabase mode accepts HS256 tokens signed with the project's JWT secret (when one is
configured) and ES256/RS256 tokens signed by a key in the project's JWKS (when
SUPABASE_URL is set). Each algorithm is only ever checked against its own kind of key,
so a token cannot pick how it is verified (no `none`, no HS256 "signed" with a public
key). Embedded mode signs HS256 guest tokens with a secret kept in the data directory,
so they stay valid across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

from socket_server.settings import Settings
from socket_server.store.base import Actor

log = logging.getLogger("gamesocket.auth")

GUEST_ISSUER = "gamesocket"
GUEST_SECRET_FILE = "guest_jwt_secret"
# Seconds of clock difference tolerated on `exp` (and `iat`/`nbf`).
LEEWAY_SECONDS = 10
# An unknown `kid` refetches the JWKS at most this often, so made-up key ids
# cannot make us hammer Supabase.
JWKS_MIN_REFETCH_SECONDS = 30.0
# Known keys are refreshed this often, so a key removed from the JWKS stops working.
JWKS_MAX_AGE_SECONDS = 600.0
JWKS_ALGORITHMS = {"ES256": "EC", "RS256": "RSA"}
MAX_TOKEN_CHARS = 16 * 1024
# Registered claims that must be present in every token, and the NumericDate ones that
# must be JSON numbers when present (PyJWT alone would take "1700000000" as a date).
REQUIRED_CLAIMS = ["exp", "iss", "sub", "aud"]
DATE_CLAIMS = ("exp", "iat", "nbf")


class AuthError(Exception):
    """The token is refused; the message says why (safe to show to the client)."""


@dataclass(frozen=True)
class GuestToken:
    access_token: str
    user_id: str
    expires_at: datetime


def load_or_create_secret(path: Path) -> str:
    """The secret in `path`, created (mode 0600, atomically) if the file does not exist.

    The new secret is written to a private temporary file and hard-linked into place:
    the link fails if another process created the file first, and then its secret wins,
    so two servers starting together never end up with different secrets.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
                file.flush()
                os.fsync(file.fileno())
            # FileExistsError: another process linked its secret first; read that one.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)  # made by hand or by an older server: only this user may read it
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to have a new guest secret made")
    return secret


def _check_dates(claims: dict[str, Any]) -> None:
    """`exp`, `iat` and `nbf` are NumericDates: JSON numbers, never strings or booleans."""
    for name in DATE_CLAIMS:
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AuthError(f"invalid token: {name} must be a number")


def _jwks_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable asymmetric keys of a JWKS document, by key id (others are skipped)."""
    keys: dict[str, jwt.PyJWK] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") not in JWKS_ALGORITHMS.values():
            continue  # never let a published symmetric key become an HMAC secret
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWKError as error:
            log.warning("skipping JWKS key %s: %s", entry["kid"], error)
            continue
        if JWKS_ALGORITHMS.get(key.algorithm_name) == entry["kty"]:
            keys[entry["kid"]] = key
    return keys


def _subject(claims: dict[str, Any]) -> str:
    """The user a token names: its `sub`, a UUID (as every Supabase user id is), in the
    canonical spelling; any other `sub` is refused, so no store ever meets it."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("token names no user (empty sub)")
    try:
        return str(uuid.UUID(subject))
    except ValueError:
        raise AuthError("token names no user: its sub is not a UUID") from None


class Authenticator:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not settings.embedded_auth and settings.effective_jwt_issuer is None:
            # Without an issuer to compare with, any project's (or anybody's) `iss` would do.
            raise ValueError(
                "SUPABASE_JWT_SECRET is set without SUPABASE_URL or SUPABASE_JWT_ISSUER:"
                " set one, so that the tokens' issuer (iss) can be checked"
            )
        self.settings = settings
        self._clock = clock  # monotonic seconds; tests pass their own to skip ahead
        self._guest_secret: str | None = None
        self._http: httpx.AsyncClient | None = None
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._jwks_fetched_at: float | None = None  # last attempt, successful or not
        self._jwks_loaded_at: float | None = None  # last successful fetch
        self._jwks_lock = asyncio.Lock()

    @property
    def jwks_url(self) -> str | None:
        if self.settings.embedded_auth or not self.settings.supabase_url:
            return None
        return self.settings.supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"

    async def start(self) -> None:
        if self.settings.embedded_auth:
            path = self.settings.data_dir / GUEST_SECRET_FILE
            self._guest_secret = await asyncio.to_thread(load_or_create_secret, path)
        elif self.jwks_url and self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
            # Warm the cache; a failure here is logged and retried on the first token.
            async with self._jwks_lock:
                await self._fetch_jwks()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def issue_guest_token(self) -> GuestToken:
        if not self.settings.embedded_auth:
            raise AuthError("guest tokens are only issued in embedded mode (no Supabase)")
        if self._guest_secret is None:
            raise RuntimeError("Authenticator.start() was not awaited")
        now = datetime.now(UTC).replace(microsecond=0)
        expires_at = now + timedelta(seconds=self.settings.guest_token_ttl_seconds)
        user_id = str(uuid.uuid4())
        claims = {
            "sub": user_id,
            "aud": self.settings.jwt_audience,
            "role": "authenticated",
            "iss": GUEST_ISSUER,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "is_anonymous": True,
        }
        token = jwt.encode(claims, self._guest_secret, algorithm="HS256")
        return GuestToken(access_token=token, user_id=user_id, expires_at=expires_at)

    async def verify(self, token: str) -> Actor:
        """The signed-in user the token names, or AuthError saying why it is refused."""
        if not token:
            raise AuthError("missing token")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise AuthError(f"malformed token: {error}") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise AuthError("token names no algorithm")
        key, issuer = await self._key_for(algorithm, header.get("kid"))
        claims = self._decode(token, key, algorithm, issuer)
        return Actor(user_id=_subject(claims), claims=claims)

    def _decode(self, token: str, key: Any, algorithm: str, issuer: str) -> dict[str, Any]:
        """The verified claims: signature, audience, issuer, required claims and dates."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.jwt_audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token has the wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token: {error}") from None
        _check_dates(claims)
        return claims

    def _issuer(self) -> str:
        """The `iss` Supabase tokens must carry (`__init__` made sure there is one)."""
        issuer = self.settings.effective_jwt_issuer
        if issuer is None:
            raise AuthError("no token issuer is configured")
        return issuer

    async def _key_for(self, algorithm: str, kid: Any) -> tuple[Any, str]:
        """The key a token with this header must verify against, and the issuer it needs."""
        if self.settings.embedded_auth:
            if algorithm != "HS256":
                raise AuthError(f"algorithm {algorithm!r} is not accepted for guest tokens")
            if self._guest_secret is None:
                raise RuntimeError("Authenticator.start() was not awaited")
            return self._guest_secret, GUEST_ISSUER
        issuer = self._issuer()
        if algorithm == "HS256":
            if not self.settings.supabase_jwt_secret:
                raise AuthError("HS256 tokens are not accepted: no JWT secret is configured")
            return self.settings.supabase_jwt_secret, issuer
        if algorithm not in JWKS_ALGORITHMS:
            raise AuthError(f"algorithm {algorithm!r} is not accepted")
        if self.jwks_url is None:
            raise AuthError(f"{algorithm} tokens are not accepted: no SUPABASE_URL for the JWKS")
        if not isinstance(kid, str):
            raise AuthError("token has no key id (kid)")
        key = await self._jwks_key(kid)
        if key.algorithm_name != algorithm:
            raise AuthError(f"key {kid} is a {key.algorithm_name} key, not {algorithm}")
        return key, issuer

    async def _jwks_key(self, kid: str) -> jwt.PyJWK:
        async with self._jwks_lock:
            now = self._clock()
            stale = self._jwks_loaded_at is None or now - self._jwks_loaded_at > (
                JWKS_MAX_AGE_SECONDS
            )
            if (kid not in self._jwks or stale) and self._may_fetch(now):
                await self._fetch_jwks()
            key = self._jwks.get(kid)
        if key is None:
            raise AuthError(f"unknown signing key {kid!r}")
        return key

    def _may_fetch(self, now: float) -> bool:
        last = self._jwks_fetched_at
        return last is None or now - last >= JWKS_MIN_REFETCH_SECONDS

    async def _fetch_jwks(self) -> None:
        """Replace the cached keys with the JWKS; on failure keep the old ones. Hold the lock."""
        if self._http is None or self.jwks_url is None:
            raise RuntimeError("Authenticator.start() was not awaited")
        self._jwks_fetched_at = self._clock()
        try:
            response = await self._http.get(self.jwks_url)
            response.raise_for_status()
            keys = _jwks_keys(response.json())
        except (httpx.HTTPError, ValueError) as error:
            log.warning("could not fetch the JWKS from %s: %s", self.jwks_url, error)
            return
        self._jwks = keys
        self._jwks_loaded_at = self._jwks_fetched_at
