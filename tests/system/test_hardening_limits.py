"""The abuse limits against real servers, driven the way the attacks went.

- socket caps: a server under a descriptor limit of 256 and one address opening
  hundreds of sockets (then three more addresses): refused with 1013, `/health` and
  the store keep working, the admitted sockets stay open and receive updates;
- handshake deadline: silent TCP connections and half-sent upgrades are closed, a
  16 KB request target is answered 414 at once;
- REST: 429 `rate_limited` with `Retry-After`, per user or address (as a trusted proxy
  reports it), and new guest tokens per address;
- AI: at most three AI-vs-AI games per creating user, counted over processes, and the
  creator aborts one mid-search: no move is stored after the abort.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.frames import Close

from socket_server.settings import Settings
from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerProcess, ServerThread, connect

NOFILE = 256
# limits.default_max_sockets() under that limit: min(10000, 256 - max(100, 256 // 4)).
CAP_AT_NOFILE = 156
PER_IP = Settings.max_sockets_per_ip  # 64
BATCH = 16  # sockets opened at once
TRY_AGAIN_LATER = 1013
AI_10 = {"kind": "ai", "level": 10}
AI_8 = {"kind": "ai", "level": 8}  # Stockfish, 1.2 s a move


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The store of a test that must hold on SQLite and on Postgres (under RLS) alike."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'limits.sqlite3'}"
        return
    async with migrated_database() as url:
        yield url


# -- sockets ------------------------------------------------------------------------------
async def open_socket(
    url: str, host: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> Client | Close:
    """A socket past `hello`, or the close frame it was refused with."""
    connection = await websockets.connect(
        url, max_size=None, compression=None, local_addr=(host, 0), additional_headers=headers
    )
    client = Client(connection)
    try:
        await client.expect("hello")
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd
    return client


async def open_many(url: str, count: int, host: str) -> tuple[list[Client], list[Close]]:
    """`count` sockets from `host`, `BATCH` at a time: (admitted, refusals)."""
    opened: list[Client | Close] = []
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        opened += await asyncio.gather(*(open_socket(url, host) for _ in range(size)))
    admitted = [o for o in opened if isinstance(o, Client)]
    return admitted, [o for o in opened if isinstance(o, Close)]


def low_descriptor_limit() -> None:
    """In the server's child process, before exec: the limit of the attack's machine."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


async def admitted_eventually(url: str, host: str, wait: float = 10.0) -> Client:
    """A socket from `host` once a slot is free again (a close is counted asynchronously)."""
    deadline = time.monotonic() + wait
    while True:
        opened = await open_socket(url, host)
        if isinstance(opened, Client):
            return opened
        assert time.monotonic() < deadline, f"still refused: {opened}"
        await asyncio.sleep(0.1)


async def test_socket_caps_refuse_cleanly_under_a_low_descriptor_limit(
    tmp_path: Path, store_url: str
) -> None:
    server = ServerProcess(tmp_path / "data", store_url)
    server.preexec_fn = low_descriptor_limit
    server.log_path = tmp_path / "server.log"
    server.start()
    api = Api(server.base_url)
    clients: list[Client] = []
    try:
        player = await api.guest()
        game = await api.create(player, "tictactoe", seats={"x": "me", "o": "me"})
        url = server.ws_url("tictactoe", game["game_id"])

        # One address: 64 sockets, the rest refused with 1013 (not dropped, not 1011).
        admitted, refused = await open_many(url, PER_IP + 16, "127.0.0.1")
        clients += admitted
        assert len(admitted) == PER_IP and len(refused) == 16
        assert {(r.code, r.reason) for r in refused} == {
            (TRY_AGAIN_LATER, "too many sockets from your address: close some first")
        }
        # More addresses: the process admits CAP_AT_NOFILE in all, then refuses.
        admitted, refused = await open_many(url, PER_IP, "127.0.0.2")
        clients += admitted
        assert len(admitted) == PER_IP and not refused
        admitted, refused = await open_many(url, PER_IP, "127.0.0.3")
        clients += admitted
        assert len(clients) == CAP_AT_NOFILE and len(refused) == 3 * PER_IP - CAP_AT_NOFILE
        full = await open_socket(url, "127.0.0.4")
        assert isinstance(full, Close) and full.code == TRY_AGAIN_LATER
        assert full.reason == "the server is full: try again later"

        # HTTP and the store still answer, and every admitted socket gets the update.
        started = time.monotonic()
        health = await api.http.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        health_ms = (time.monotonic() - started) * 1000
        moved = await api.http.post(
            f"/api/games/{game['game_id']}/moves", json={"move": 4}, headers=player["headers"]
        )
        assert moved.status_code == 200, moved.text
        updates = await asyncio.gather(*(c.expect("update") for c in clients))
        assert {u["version"] for u in updates} == {1}

        # A closed socket frees its slot (global and per address) for the next one.
        await clients.pop().connection.close()
        clients.append(await admitted_eventually(url, "127.0.0.4"))
        print(f"admitted {len(clients)} at NOFILE={NOFILE}, /health {health_ms:.1f} ms")
    finally:
        await asyncio.gather(*(c.connection.close() for c in clients), return_exceptions=True)
        await api.close()
        server.stop()
    log = server.log_path.read_text()
    assert "Too many open files" not in log
    assert "socket admission failed" not in log and "socket failed" not in log


async def test_the_socket_cap_counts_the_address_a_trusted_proxy_reports(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(max_sockets_per_ip=2)
    api = Api(server.base_url)
    clients: list[Client] = []
    try:
        guest = await api.guest()
        game = await api.create(guest, "tictactoe", seats={"x": "me"})
        url = server.ws_url("tictactoe", game["game_id"])
        one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
        for headers in (one, one, two):
            opened = await open_socket(url, headers=headers)
            assert isinstance(opened, Client), opened
            clients.append(opened)
        third = await open_socket(url, headers=one)
        assert isinstance(third, Close) and third.code == TRY_AGAIN_LATER
    finally:
        await asyncio.gather(*(c.connection.close() for c in clients), return_exceptions=True)
        await api.close()


# -- handshakes ---------------------------------------------------------------------------
UPGRADE_HEADERS = (
    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def seconds_until_closed(
    port: int, payload: bytes, wait: float = 30.0
) -> tuple[float, bytes]:
    """Open a connection, send `payload`, read until the server closes: (seconds, reply)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        reply = await asyncio.wait_for(reader.read(), wait)
        return time.monotonic() - started, reply
    finally:
        writer.close()


async def test_silent_and_half_sent_connections_are_closed_after_the_handshake_timeout(
    server: ServerThread, api: Api
) -> None:
    timeout = Settings.handshake_timeout_seconds  # the default: 10 s
    port = server.settings.port
    half_sent = b"GET /ws/tictactoe/" + b"0" * 36 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    probes = [seconds_until_closed(port, b"") for _ in range(20)]
    probes += [seconds_until_closed(port, half_sent) for _ in range(20)]
    closing = asyncio.gather(*probes)
    await asyncio.sleep(1.0)
    # Meanwhile the server serves as usual.
    assert (await api.http.get("/health")).status_code == 200
    guest = await api.guest()
    game = await api.create(guest, "tictactoe", seats={"x": "me"})
    client = await connect(server.ws_url("tictactoe", game["game_id"]))
    await client.expect("state")
    results = await closing
    silent, half = [s for s, _ in results[:20]], [s for s, _ in results[20:]]
    assert all(reply == b"" for _, reply in results)  # closed without an answer
    assert timeout - 0.5 <= min(silent + half) and max(silent + half) <= timeout + 2.0
    print(
        f"silent closed after {min(silent):.2f}-{max(silent):.2f} s,"
        f" half-sent after {min(half):.2f}-{max(half):.2f} s"
    )
    await client.connection.close()


async def test_a_request_must_be_complete_within_the_timeout_on_a_kept_alive_connection(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(handshake_timeout_seconds=1.0)
    port = server.settings.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readexactly(len(b'{"status":"ok"}'))
        # The next request, half-sent at once: closed a second later, not kept alive.
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert 0.8 <= time.monotonic() - started <= 3.0
    finally:
        writer.close()
    # A body announced and never sent holds the connection no longer either.
    slow_body = b"POST /api/games HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
    seconds, _ = await seconds_until_closed(port, slow_body)
    assert 0.8 <= seconds <= 3.0


async def test_oversized_request_heads_get_an_http_error_at_once(server: ServerThread) -> None:
    port = server.settings.port
    target = b"/ws/tictactoe/" + b"a" * 16 * 1024
    cases = {
        b"GET " + target + b" HTTP/1.1\r\n" + UPGRADE_HEADERS + b"\r\n": b"414",
        b"GET /api/games/" + b"a" * 16 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n": b"414",
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20 * 1024 + b"\r\n\r\n": b"431",
        b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n": (
            b"431"
        ),
    }
    for payload, status in cases.items():
        seconds, reply = await seconds_until_closed(port, payload)
        assert reply.startswith(b"HTTP/1.1 " + status), reply[:80]
        assert b'"code":"bad_message"' in reply
        assert seconds < 1.0, seconds
    # An ordinary upgrade still works.
    seconds, reply = await seconds_until_closed(
        port, b"GET /ws/nosuchgame/x HTTP/1.1\r\n" + UPGRADE_HEADERS + b"\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 101")


# -- REST ---------------------------------------------------------------------------------
def assert_refused_429(reply: httpx.Response) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"]["code"] == "rate_limited"
    assert reply.json()["error"]["message"]


async def spend(http: httpx.AsyncClient, count: int, **request: Any) -> list[httpx.Response]:
    """`count` GET /api/games at once (50 in flight at a time)."""
    replies: list[httpx.Response] = []
    for start in range(0, count, 50):
        batch = min(50, count - start)
        replies += await asyncio.gather(*(http.get("/api/games", **request) for _ in range(batch)))
    return replies


def assert_rate_limited(reply: httpx.Response, at_least: int = 1) -> int:
    """A 429 `rate_limited` with `Retry-After` (seconds, at least `at_least`)."""
    assert_refused_429(reply)
    retry_after = int(reply.headers["retry-after"])
    assert retry_after >= at_least
    return retry_after


async def test_the_rest_limit_answers_429_with_retry_after(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(rest_rate_limit=Settings.rest_rate_limit)  # the default: 600
    async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
        started = time.monotonic()
        first = await spend(http, Settings.rest_rate_limit)
        assert [r.status_code for r in first] == [200] * Settings.rest_rate_limit
        extra = await spend(http, 100)
        limited = [r for r in extra if r.status_code == 429]
        # Refilled at 10 a second meanwhile: a few more pass, then 429.
        assert limited and len(extra) - len(limited) <= 10 * (time.monotonic() - started) + 1
        retry_after = assert_rate_limited(limited[0])
        print(f"{Settings.rest_rate_limit + 100 - len(limited)} requests passed, then 429")
        await asyncio.sleep(retry_after)
        assert (await http.get("/api/games")).status_code == 200
        # Outside /api/ nothing is limited: a health check is no REST call.
        assert (await http.get("/health")).status_code == 200


async def test_users_and_addresses_are_limited_separately(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(rest_rate_limit=20)
    api = Api(server.base_url)
    try:
        alice, bob = await api.guest(), await api.guest()  # two of the 20 for the address
        spent = await spend(api.http, 20, headers=alice["headers"])
        assert {r.status_code for r in spent} == {200}
        assert_rate_limited(await api.http.get("/api/games", headers=alice["headers"]))
        # Bob on the same address has his own 20, and so has the address without a token.
        assert (await api.http.get("/api/games", headers=bob["headers"])).status_code == 200
        assert (await api.http.get("/api/games")).status_code == 200
        # A token that does not verify is counted by address, then refused as before.
        forged = {"Authorization": "Bearer not-a-token"}
        assert (await api.http.get("/api/games", headers=forged)).status_code == 401
    finally:
        await api.close()


async def test_forwarded_addresses_from_a_trusted_proxy_are_limited_separately(
    start_server: Callable[..., ServerThread],
) -> None:
    one, two = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
    trusted = start_server(rest_rate_limit=10)  # 127.0.0.1 is the trusted proxy
    async with httpx.AsyncClient(base_url=trusted.base_url, timeout=15) as http:
        assert {r.status_code for r in await spend(http, 10, headers=one)} == {200}
        assert_rate_limited(await http.get("/api/games", headers=one))
        assert (await http.get("/api/games", headers=two)).status_code == 200
        assert (await http.get("/api/games")).status_code == 200  # the proxy itself
    # The same requests from a peer that is not trusted: its own address counts.
    untrusted = start_server(rest_rate_limit=10, forwarded_allow_ips="192.0.2.1")
    async with httpx.AsyncClient(base_url=untrusted.base_url, timeout=15) as http:
        assert {r.status_code for r in await spend(http, 10, headers=one)} == {200}
        assert_rate_limited(await http.get("/api/games", headers=two))


async def test_new_guest_tokens_are_limited_per_address(
    start_server: Callable[..., ServerThread],
) -> None:
    limit = Settings.guest_rate_limit  # the default: 30 an hour
    server = start_server(guest_rate_limit=limit)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
        made = await asyncio.gather(*(http.post("/api/auth/guest") for _ in range(limit)))
        assert [r.status_code for r in made] == [201] * limit
        refused = await http.post("/api/auth/guest")
        # One token comes back every 3600 / 30 = 120 s.
        assert 100 <= assert_rate_limited(refused) <= 120
        other = {"X-Forwarded-For": "198.51.100.9"}
        assert (await http.post("/api/auth/guest", headers=other)).status_code == 201
        # The guests already made keep working.
        token = {"Authorization": f"Bearer {made[0].json()['access_token']}"}
        created = await http.post("/api/games", json={"game_type": "tictactoe"}, headers=token)
        assert created.status_code == 201


# -- AI games -----------------------------------------------------------------------------
async def create_ai_game(api: Api, user: dict[str, Any], **seats: Any) -> httpx.Response:
    """A chess game with these seats whose AI waits a minute before each move."""
    body = {"game_type": "chess", "seats": seats, "options": {"ai_delay_ms": 60_000}}
    return await api.http.post("/api/games", json=body, headers=user["headers"])


async def test_one_user_runs_at_most_three_ai_games_over_every_process(
    start_server: Callable[..., ServerThread], store_url: str
) -> None:
    one, two = (start_server(database_url=store_url) for _ in range(2))  # one store
    api_one, api_two = Api(one.base_url), Api(two.base_url)
    try:
        user, other = await api_one.guest(), await api_one.guest()
        games = []
        for api in (api_one, api_two, api_one):
            reply = await create_ai_game(api, user, white=AI_10, black=AI_10)
            assert reply.status_code == 201, reply.text
            games.append(reply.json()["game_id"])
        for api in (api_one, api_two):  # the fourth, on either process
            refused = await create_ai_game(api, user, white=AI_10, black=AI_10)
            assert_refused_429(refused)  # no Retry-After: it lifts when a game ends
        # Games with a human seat, and other users' AI games, are not counted.
        assert (await create_ai_game(api_two, user, white="me", black=AI_10)).status_code == 201
        assert (await create_ai_game(api_two, other, white=AI_10, black=AI_10)).status_code == 201
        # Once one of the three is over, the user may start another.
        aborted = await api_two.http.post(
            f"/api/games/{games[0]}/abort", json={}, headers=user["headers"]
        )
        assert aborted.status_code == 200, aborted.text
        assert (await create_ai_game(api_one, user, white=AI_10, black=AI_10)).status_code == 201
    finally:
        await api_one.close()
        await api_two.close()


async def next_search(watcher: Client, after: int) -> int:
    """Wait until a search is under way at a version >= `after`, well before its end.

    Returns the version it searches from: a `thinking` that arrives within 0.6 s of that
    version's update leaves at least 0.6 s of the 1.2 s search to run.
    """
    version, updated_at = -1, 0.0
    while True:
        message = await watcher.expect("update", "thinking", "state")
        now = time.monotonic()
        if message["type"] in ("update", "state"):
            version, updated_at = message["version"], now
        elif version >= after and now - updated_at < 0.6:
            return version


async def test_the_creator_aborts_an_ai_game_mid_search_and_no_move_follows(
    start_server: Callable[..., ServerThread], store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gamesocket.ai")
    server = start_server(database_url=store_url)
    api = Api(server.base_url)
    try:
        owner, stranger = await api.guest(), await api.guest()
        game = await api.create(
            owner, "chess", seats={"white": AI_8, "black": AI_8}, options={"ai_delay_ms": 0}
        )
        game_id = game["game_id"]
        watcher = await connect(server.ws_url("chess", game_id))
        searched_from = await next_search(watcher, after=3)
        refused = await api.http.post(
            f"/api/games/{game_id}/abort", json={}, headers=stranger["headers"]
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        aborted = await api.http.post(
            f"/api/games/{game_id}/abort", json={"id": "stop"}, headers=owner["headers"]
        )
        assert aborted.status_code == 200, aborted.text
        version = aborted.json()["version"]
        assert version == searched_from + 1  # the search's move never landed before it
        update = await watcher.expect("update")
        assert update["version"] == version and update["event"]["kind"] == "abort"
        assert update["status"] == "aborted"
        assert update["result"] == {"winner": None, "reason": "aborted"}
        # The search under way ends (1.2 s) and its move is dropped: no later version.
        with pytest.raises(TimeoutError):
            await watcher.expect("update", wait=3.0)
        final = await api.snapshot(game_id)
        assert final["version"] == version and final["status"] == "aborted"
        moves = (await api.http.get(f"/api/games/{game_id}/moves")).json()
        assert len(moves) == version - 1
        dropped = [r for r in caplog.records if r.getMessage().startswith("ai move dropped")]
        assert any(game_id in r.getMessage() for r in dropped)
        await watcher.connection.close()
    finally:
        await api.close()
