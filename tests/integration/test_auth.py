"""Token verification: the refusal matrix, the three accepted algorithms, guest tokens.

The JWKS is served over real HTTP by uvicorn on 127.0.0.1, counting its fetches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from socket_server.auth import (
    GUEST_SECRET_FILE,
    JWKS_MIN_REFETCH_SECONDS,
    Authenticator,
    AuthError,
)
from socket_server.settings import Settings

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
P384_KEY = ec.generate_private_key(ec.SECP384R1())


def public_jwk(private_key: Any, kid: str) -> dict[str, Any]:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@dataclass
class JwksServer:
    """A JWKS endpoint whose key list a test can change, counting the fetches."""

    keys: list[dict[str, Any]]
    fetches: int = 0
    url: str = ""
    other_paths: list[str] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        if scope["path"] != "/auth/v1/.well-known/jwks.json":
            self.other_paths.append(scope["path"])
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        self.fetches += 1
        body = json.dumps({"keys": self.keys}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class StartedServer(uvicorn.Server):
    """uvicorn's Server, with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    app = JwksServer(keys=[public_jwk(EC_KEY, "ec-1"), public_jwk(RSA_KEY, "rsa-1")])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = StartedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.wait_for(server.started_event.wait(), timeout=10)
    try:
        yield app
    finally:
        server.should_exit = True
        await task
        sock.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "6f1f9a51-8a3e-4a35-9b0e-2f4a4c1d0b11",
        "aud": "authenticated",
        "role": "authenticated",
        "iss": "https://project.supabase.co/auth/v1",
        "iat": now,
        "exp": now + 3600,
        "is_anonymous": False,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != name}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_hs256(payload: dict[str, Any], key: bytes, header: dict[str, Any]) -> str:
    """HS256 with any bytes as the key: PyJWT itself refuses to sign with a PEM key."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
async def hs_auth() -> AsyncIterator[Authenticator]:
    settings = Settings(
        supabase_jwt_secret=SECRET, jwt_issuer="https://project.supabase.co/auth/v1"
    )
    auth = Authenticator(settings)
    await auth.start()
    try:
        yield auth
    finally:
        await auth.close()


@pytest.fixture
async def jwks_auth(jwks_server: JwksServer) -> AsyncIterator[tuple[Authenticator, FakeClock]]:
    # Only the JWKS: the issuer follows from SUPABASE_URL.
    clock = FakeClock()
    auth = Authenticator(Settings(supabase_url=jwks_server.url), clock=clock)
    await auth.start()
    try:
        yield auth, clock
    finally:
        await auth.close()


def jwks_claims(server: JwksServer, **overrides: Any) -> dict[str, Any]:
    return claims(iss=f"{server.url}/auth/v1", **overrides)


async def test_valid_hs256_is_accepted(hs_auth: Authenticator) -> None:
    actor = await hs_auth.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert actor.user_id == "6f1f9a51-8a3e-4a35-9b0e-2f4a4c1d0b11"
    assert actor.claims is not None and actor.claims["role"] == "authenticated"
    assert actor.is_server is False


async def test_expiry_has_a_small_leeway(hs_auth: Authenticator) -> None:
    now = int(time.time())
    recent = jwt.encode(claims(exp=now - 3), SECRET, algorithm="HS256")
    assert (await hs_auth.verify(recent)).user_id is not None
    expired = jwt.encode(claims(exp=now - 60), SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="expired"):
        await hs_auth.verify(expired)


NONE_TOKEN = (
    f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}."
    f"{b64(json.dumps(claims()).encode())}."
)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (jwt.encode(claims(), "another-secret-that-is-32-bytes-long!!", "HS256"), "signature"),
        (jwt.encode(claims(aud="anon"), SECRET, "HS256"), "audience"),
        (jwt.encode(claims(aud=None), SECRET, "HS256"), "aud"),
        (jwt.encode(claims(iss="https://evil.example/auth/v1"), SECRET, "HS256"), "issuer"),
        (jwt.encode(claims(sub=None), SECRET, "HS256"), "sub"),
        (jwt.encode(claims(sub=""), SECRET, "HS256"), "sub"),
        (jwt.encode(claims(exp=None), SECRET, "HS256"), "exp"),
        # The issuer is required, not only compared when present.
        (jwt.encode(claims(iss=None), SECRET, "HS256"), "iss"),
        (jwt.encode(claims(iss=""), SECRET, "HS256"), "issuer"),
        # NumericDates are JSON numbers: a string (or a boolean) is no date.
        (jwt.encode(claims(exp=str(int(time.time()) + 3600)), SECRET, "HS256"), "exp must"),
        (jwt.encode(claims(iat=str(int(time.time()))), SECRET, "HS256"), "iat must"),
        (jwt.encode(claims(nbf=str(int(time.time()) - 60)), SECRET, "HS256"), "nbf must"),
        (jwt.encode(claims(nbf=False), SECRET, "HS256"), "nbf must"),
        (jwt.encode(claims(exp=float("nan")), SECRET, "HS256"), "exp"),
        (jwt.encode(claims(), SECRET, "HS384"), "HS384"),
        (NONE_TOKEN, "none"),
        ("garbage", "malformed"),
        ("a.b.c", "malformed"),
        ("", "missing"),
        ("x" * 20000, "too long"),
        # An asymmetric token where no JWKS is configured.
        (jwt.encode(claims(), EC_KEY, "ES256", headers={"kid": "ec-1"}), "no SUPABASE_URL"),
    ],
)
async def test_hs256_refusals(hs_auth: Authenticator, token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        await hs_auth.verify(token)


async def test_numeric_dates_in_any_json_number_form_are_accepted(hs_auth: Authenticator) -> None:
    # The positive control of the string refusals above: floats are NumericDates too.
    now = time.time()
    token = jwt.encode(claims(exp=now + 3600.5, iat=now, nbf=now - 1.5), SECRET, "HS256")
    assert (await hs_auth.verify(token)).user_id is not None


def test_a_jwt_secret_needs_an_issuer_to_check() -> None:
    # Only the secret: `iss` could not be checked, so the server refuses to start.
    with pytest.raises(ValueError, match="SUPABASE_JWT_ISSUER"):
        Authenticator(Settings(supabase_jwt_secret=SECRET))
    # Either setting gives the issuer.
    Authenticator(Settings(supabase_jwt_secret=SECRET, jwt_issuer="https://a/auth/v1"))
    Authenticator(Settings(supabase_jwt_secret=SECRET, supabase_url="https://a"))


def test_the_issuer_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_JWT_SECRET", SECRET)
    monkeypatch.setenv("SUPABASE_JWT_ISSUER", "https://project.supabase.co/auth/v1")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    settings = Settings.from_env()
    assert settings.effective_jwt_issuer == "https://project.supabase.co/auth/v1"
    assert Authenticator(settings).settings is settings


@pytest.mark.parametrize(("key", "kid"), [(EC_KEY, "ec-1"), (RSA_KEY, "rsa-1")])
async def test_valid_jwks_tokens_are_accepted(
    jwks_auth: tuple[Authenticator, FakeClock], jwks_server: JwksServer, key: Any, kid: str
) -> None:
    auth, _ = jwks_auth
    algorithm = "ES256" if kid.startswith("ec") else "RS256"
    anonymous_user = "0b7c2f64-3d1e-4f7a-9c55-6e2d8a1b4c90"  # a sub is a UUID
    payload = jwks_claims(jwks_server, sub=anonymous_user, is_anonymous=True)
    actor = await auth.verify(jwt.encode(payload, key, algorithm, headers={"kid": kid}))
    # Anonymous Supabase users are ordinary signed-in users.
    assert actor.user_id == anonymous_user
    assert actor.claims is not None and actor.claims["is_anonymous"] is True
    assert jwks_server.fetches == 1  # fetched on start, served from the cache since


async def test_jwks_refusals(
    jwks_auth: tuple[Authenticator, FakeClock], jwks_server: JwksServer
) -> None:
    auth, _ = jwks_auth
    good = jwks_claims(jwks_server)
    public_pem = EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refusals = [
        # HS256 where only JWKS keys are configured, even "signed" with the public key.
        (jwt.encode(good, SECRET, "HS256"), "no JWT secret"),
        (hand_made_hs256(good, public_pem, {"alg": "HS256", "kid": "ec-1"}), "no JWT secret"),
        # A key of the wrong kind for the algorithm the token names.
        (jwt.encode(good, RSA_KEY, "RS256", headers={"kid": "ec-1"}), "not RS256"),
        (jwt.encode(good, OTHER_EC_KEY, "ES256", headers={"kid": "ec-1"}), "signature"),
        (jwt.encode(good, EC_KEY, "ES256"), "no key id"),
        (jwt.encode(good, P384_KEY, "ES384", headers={"kid": "ec-1"}), "ES384"),
        (jwt.encode({**good, "aud": "x"}, EC_KEY, "ES256", headers={"kid": "ec-1"}), "audience"),
        (
            jwt.encode({**good, "iss": "https://x/auth/v1"}, EC_KEY, "ES256", {"kid": "ec-1"}),
            "issuer",
        ),
        (
            jwt.encode({**good, "exp": int(time.time()) - 60}, RSA_KEY, "RS256", {"kid": "rsa-1"}),
            "expired",
        ),
        (jwt.encode({**good, "sub": None}, EC_KEY, "ES256", headers={"kid": "ec-1"}), "sub"),
        (jwt.encode(without(good, "iss"), EC_KEY, "ES256", headers={"kid": "ec-1"}), "iss"),
        (
            jwt.encode({**good, "exp": str(good["exp"])}, EC_KEY, "ES256", {"kid": "ec-1"}),
            "exp must",
        ),
        (NONE_TOKEN, "none"),
    ]
    for token, reason in refusals:
        with pytest.raises(AuthError, match=reason):
            await auth.verify(token)
    assert jwks_server.fetches == 1
    assert jwks_server.other_paths == []


async def test_unknown_kid_refetches_at_most_every_30_seconds(
    jwks_auth: tuple[Authenticator, FakeClock], jwks_server: JwksServer
) -> None:
    auth, clock = jwks_auth
    assert jwks_server.fetches == 1
    new_key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.keys.append(public_jwk(new_key, "ec-2"))
    rotated = jwt.encode(jwks_claims(jwks_server), new_key, "ES256", headers={"kid": "ec-2"})

    # Within 30 s of the last fetch an unknown kid is refused without asking again.
    clock.now += JWKS_MIN_REFETCH_SECONDS - 1
    with pytest.raises(AuthError, match="unknown signing key"):
        await auth.verify(rotated)
    assert jwks_server.fetches == 1

    # Later, the unknown kid triggers one refetch, which finds the new key.
    clock.now += 2
    assert (await auth.verify(rotated)).user_id is not None
    assert jwks_server.fetches == 2

    # Made-up kids, even many at once, cause no fetch until 30 s have passed ...
    garbage = [
        jwt.encode(jwks_claims(jwks_server), new_key, "ES256", headers={"kid": f"junk-{i}"})
        for i in range(20)
    ]
    results = await asyncio.gather(*(auth.verify(t) for t in garbage), return_exceptions=True)
    assert all(isinstance(r, AuthError) for r in results)
    assert jwks_server.fetches == 2
    # ... and then exactly one for the whole burst.
    clock.now += JWKS_MIN_REFETCH_SECONDS
    results = await asyncio.gather(*(auth.verify(t) for t in garbage), return_exceptions=True)
    assert all(isinstance(r, AuthError) for r in results)
    assert jwks_server.fetches == 3

    # A key dropped from the JWKS stops working once the cache is refreshed.
    jwks_server.keys[:] = [public_jwk(RSA_KEY, "rsa-1")]
    clock.now += 3600
    with pytest.raises(AuthError, match="unknown signing key"):
        await auth.verify(rotated)
    assert jwks_server.fetches == 4


async def test_jwks_unreachable_at_start_recovers_later(jwks_server: JwksServer) -> None:
    clock = FakeClock()
    keys = list(jwks_server.keys)
    jwks_server.keys[:] = []
    auth = Authenticator(Settings(supabase_url=jwks_server.url), clock=clock)
    await auth.start()
    try:
        token = jwt.encode(jwks_claims(jwks_server), EC_KEY, "ES256", headers={"kid": "ec-1"})
        with pytest.raises(AuthError, match="unknown signing key"):
            await auth.verify(token)
        jwks_server.keys[:] = keys
        clock.now += JWKS_MIN_REFETCH_SECONDS
        assert (await auth.verify(token)).user_id is not None
        assert jwks_server.fetches == 2
    finally:
        await auth.close()


async def test_secret_and_jwks_together_accept_both(jwks_server: JwksServer) -> None:
    auth = Authenticator(Settings(supabase_url=jwks_server.url, supabase_jwt_secret=SECRET))
    await auth.start()
    try:
        payload = jwks_claims(jwks_server)
        hs = await auth.verify(jwt.encode(payload, SECRET, "HS256"))
        es = await auth.verify(jwt.encode(payload, EC_KEY, "ES256", headers={"kid": "ec-1"}))
        assert hs.user_id == es.user_id == payload["sub"]
        with pytest.raises(AuthError, match="guest tokens are only issued in embedded mode"):
            auth.issue_guest_token()
    finally:
        await auth.close()


# Embedded mode: guest tokens.


async def started(settings: Settings) -> Authenticator:
    auth = Authenticator(settings)
    await auth.start()
    return auth


async def test_guest_token_round_trip_and_secret_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    auth = await started(Settings(data_dir=data_dir, guest_token_ttl_seconds=3600))
    before = datetime.now(UTC)
    guest = auth.issue_guest_token()
    assert timedelta(seconds=3590) < guest.expires_at - before < timedelta(seconds=3610)
    actor = await auth.verify(guest.access_token)
    assert actor.user_id == guest.user_id
    assert actor.claims is not None
    assert actor.claims["is_anonymous"] is True
    assert actor.claims["role"] == "authenticated"
    assert actor.claims["aud"] == "authenticated"
    assert actor.claims["iss"] == "gamesocket"
    assert actor.claims["exp"] == int(guest.expires_at.timestamp())
    assert auth.issue_guest_token().user_id != guest.user_id

    secret_file = data_dir / GUEST_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    assert len(secret) >= 64
    assert [p.name for p in data_dir.iterdir()] == [GUEST_SECRET_FILE]  # no temporary left

    # A restart (a new Authenticator on the same data dir) keeps the secret.
    again = await started(Settings(data_dir=data_dir))
    assert (await again.verify(guest.access_token)).user_id == guest.user_id
    assert secret_file.read_text() == secret
    # Another data dir has another secret.
    other = await started(Settings(data_dir=tmp_path / "other"))
    with pytest.raises(AuthError, match="signature"):
        await other.verify(guest.access_token)


async def test_guest_secrets_created_concurrently_agree(tmp_path: Path) -> None:
    auths = await asyncio.gather(*(started(Settings(data_dir=tmp_path)) for _ in range(6)))
    token = auths[0].issue_guest_token().access_token
    for auth in auths:
        assert (await auth.verify(token)).user_id is not None


async def test_guest_mode_refusals(tmp_path: Path) -> None:
    auth = await started(Settings(data_dir=tmp_path, guest_token_ttl_seconds=-60))
    expired = auth.issue_guest_token().access_token
    with pytest.raises(AuthError, match="expired"):
        await auth.verify(expired)
    secret = (tmp_path / GUEST_SECRET_FILE).read_text()
    good = claims(iss="gamesocket")
    for token, reason in [
        (jwt.encode({**good, "iss": "https://project.supabase.co/auth/v1"}, secret), "issuer"),
        (jwt.encode(without(good, "iss"), secret), "iss"),
        (jwt.encode(good, EC_KEY, "ES256", headers={"kid": "ec-1"}), "ES256"),
        (jwt.encode(good, SECRET, "HS256"), "signature"),
        (NONE_TOKEN, "none"),
    ]:
        with pytest.raises(AuthError, match=reason):
            await auth.verify(token)
