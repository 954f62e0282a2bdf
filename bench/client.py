"""The load generator's client side: setting games up, sockets, statistics.

Everything here speaks PROTOCOL.md only. A `Lobby` sets games up: over REST on
gamesocket, and trivially on the reference server (which has no REST: any game id
exists once a socket opens it, and a token only marks a player).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect

from gamesocket_client.rest import IDLE_CONNECTION_SECONDS

SEATS = {"chess": ("white", "black"), "connect4": ("red", "yellow"), "tictactoe": ("x", "o")}
# Bounds for every wait on the network, so no loop of the harness can hang.
CONNECT_TIMEOUT = 30.0
REPLY_TIMEOUT = 30.0


class Message(msgspec.Struct):
    """The fields the load generator reads; msgspec skips the rest of a frame fast."""

    type: str
    version: int | None = None
    ref: str | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    you: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(Message).decode


def decode(raw: str | bytes) -> Message:
    return _decode(raw)


class Lobby(Protocol):
    """How the load generator gets players and games on one target."""

    async def guest(self) -> str:
        """An access token for a new player."""
        ...

    async def create_game(
        self, token: str, game_type: str, seats: dict[str, Any], options: dict[str, Any]
    ) -> str:
        """A new public game; returns its id."""
        ...

    async def join(self, token: str, game_id: str, seat: str) -> None: ...

    async def start_searches(self, token: str, game_type: str, level: int, count: int) -> list[str]:
        """Get `count` AI searches running non-stop; returns games to watch."""
        ...

    async def aclose(self) -> None: ...


class RestLobby:
    """gamesocket's REST API (PROTOCOL.md, "REST")."""

    def __init__(self, http_url: str) -> None:
        # Idle connections dropped before the server closes them (as gamesocket_client does).
        limits = httpx.Limits(
            max_connections=64, max_keepalive_connections=64,
            keepalive_expiry=IDLE_CONNECTION_SECONDS,
        )  # fmt: skip
        self.http = httpx.AsyncClient(base_url=http_url, timeout=REPLY_TIMEOUT, limits=limits)

    async def _post(self, path: str, body: dict[str, Any], token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(path, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    async def guest(self) -> str:
        return str((await self._post("/api/auth/guest", {}, None))["access_token"])

    async def create_game(
        self, token: str, game_type: str, seats: dict[str, Any], options: dict[str, Any]
    ) -> str:
        body = {"game_type": game_type, "seats": seats, "public": True, "options": options}
        return str((await self._post("/api/games", body, token))["game_id"])

    async def join(self, token: str, game_id: str, seat: str) -> None:
        await self._post(f"/api/games/{game_id}/join", {"seat": seat}, token)

    async def start_searches(self, token: str, game_type: str, level: int, count: int) -> list[str]:
        # AI-vs-AI games with no pause between moves: one search always under way in each.
        ai = {"kind": "ai", "level": level}
        seats = dict.fromkeys(SEATS[game_type], ai)
        return [
            await self.create_game(token, game_type, seats, {"ai_delay_ms": 0})
            for _ in range(count)
        ]

    async def aclose(self) -> None:
        await self.http.aclose()


class ReferenceLobby:
    """The reference server: games and seats come into being as sockets open."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid

    async def guest(self) -> str:
        return uuid.uuid4().hex

    async def create_game(
        self, token: str, game_type: str, seats: dict[str, Any], options: dict[str, Any]
    ) -> str:
        return str(uuid.uuid4())

    async def join(self, token: str, game_id: str, seat: str) -> None:
        return None

    async def start_searches(self, token: str, game_type: str, level: int, count: int) -> list[str]:
        # The reference has no AI: SIGUSR1 starts its stand-in CPU-bound processes.
        if self.server_pid is None:
            raise RuntimeError("ReferenceLobby needs the server's pid to start searches")
        os.kill(self.server_pid, signal.SIGUSR1)
        return [str(uuid.uuid4()) for _ in range(count)]

    async def aclose(self) -> None:
        return None


def ws_url(base: str, game_type: str, game_id: str, token: str | None = None) -> str:
    url = f"{base}/ws/{game_type}/{game_id}"
    return f"{url}?token={token}" if token else url


async def open_socket(url: str) -> ClientConnection:
    """A client socket as a browser would hold it: no compression, no library pings."""
    return await connect(
        url,
        compression=None,
        ping_interval=None,
        open_timeout=CONNECT_TIMEOUT,
        close_timeout=2,
        max_size=2**22,
        max_queue=None,
    )


async def read_until(ws: ClientConnection, wanted: str, ref: str | None = None) -> Message:
    """The next message of type `wanted` (and `ref`); fails on an `error` about `ref`."""
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            message = decode(await ws.recv())
            if message.type == "error" and (ref is None or message.ref == ref):
                raise RuntimeError(f"server error {message.code}: {message.message}")
            if message.type == wanted and (ref is None or message.ref == ref):
                return message


async def open_player(url: str) -> tuple[ClientConnection, str, Message]:
    """Open a socket; returns it, the seat from `hello`, and the first `state`."""
    ws = await open_socket(url)
    hello = await read_until(ws, "hello")
    state = await read_until(ws, "state")
    seat = (hello.you or {}).get("seat")
    return ws, str(seat), state


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest rank), plus the count."""
    if not samples_ns:
        return {"count": 0, "p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan,
                "max_ms": math.nan}  # fmt: skip
    ordered = sorted(samples_ns)

    def rank(q: float) -> float:
        index = max(0, math.ceil(q * len(ordered)) - 1)
        return round(ordered[index] / 1e6, 3)

    return {"count": len(ordered), "p50_ms": rank(0.50), "p95_ms": rank(0.95),
            "p99_ms": rank(0.99), "max_ms": round(ordered[-1] / 1e6, 3)}  # fmt: skip
