"""The REST half of the protocol: sign in, create, join, read and list games.

`GameClient` also knows the token and the base URL, so it is the natural place to open
socket sessions from (`client.session(...)`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
import msgspec

from gamesocket_client.errors import CONNECTION_FAILED, GameSocketError
from gamesocket_client.messages import Snapshot, snapshot_from
from gamesocket_client.session import GameSession, Reconnect

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# An idle connection is dropped after this long, before the server closes it (after 5 s,
# `socket_server.runner.KEEP_ALIVE_SECONDS`): with httpx's default of 5 s too, a request
# sent as the server closed its connection failed with ReadError.
IDLE_CONNECTION_SECONDS = 2.0


class Guest(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    user_id: str
    expires_at: Any = None
    name: str | None = None  # the display name (the one asked for, or the server's pick)


class MoveRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a game's move log (`GET /api/games/{id}/moves`)."""

    version: int
    seat: str | None = None
    move: Any = None
    san: str | None = None
    at: str | None = None


class GameClient:
    """httpx against one server, with the caller's bearer token once it has one.

    Use it as `async with GameClient(url) as client:`; pass `http` to share an existing
    `httpx.AsyncClient` (the caller then closes it).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        *,
        request_timeout: float = 15.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user_id: str | None = None
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=request_timeout,
            limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS),
        )

    async def __aenter__(self) -> GameClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def guest(self, name: str | None = None) -> Guest:
        """A new guest (embedded mode only); its token is used from now on."""
        body = {"name": name} if name is not None else None
        guest = msgspec.convert(await self._call("POST", "/api/auth/guest", body), Guest)
        self.token, self.user_id = guest.access_token, guest.user_id
        return guest

    async def create_game(
        self,
        game_type: str,
        seats: dict[str, Any] | None = None,
        public: bool = True,
        options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Snapshot:
        """A new game; `seats` maps a seat to `"me"` or `{"kind": "ai", "level": n}`.

        `extra` passes later additions of the protocol through (`rated`, `clock`).
        """
        body: dict[str, Any] = {"game_type": game_type, "public": public, **extra}
        if seats is not None:
            body["seats"] = seats
        if options is not None:
            body["options"] = options
        return snapshot_from(await self._call("POST", "/api/games", body))

    async def join(
        self,
        game_id: str,
        seat: str | None = None,
        *,
        invite: str | None = None,
        id: str | None = None,
    ) -> Snapshot:
        """Take `seat` (the first free one if None); `id` makes a retry safe."""
        body = _without_none({"seat": seat, "invite": invite, "id": id})
        return snapshot_from(await self._call("POST", f"/api/games/{game_id}/join", body))

    async def get_game(self, game_id: str) -> Snapshot:
        return snapshot_from(await self._call("GET", f"/api/games/{game_id}"))

    async def list_games(
        self,
        game_type: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Snapshot]:
        """The games the caller may see, newest first."""
        params = _without_none({"game_type": game_type, "status": status, "limit": limit})
        games = await self._call("GET", "/api/games", params=params)
        return [snapshot_from(game) for game in games]

    async def move(
        self, game_id: str, move: str | int, *, version: int | None = None, id: str | None = None
    ) -> int:
        """Play a move without a socket; the new version."""
        body = _without_none({"move": move, "version": version, "id": id})
        reply = await self._call("POST", f"/api/games/{game_id}/moves", body)
        return int(reply["version"])

    async def moves(self, game_id: str) -> list[MoveRecord]:
        """The game's move log, oldest first."""
        log = await self._call("GET", f"/api/games/{game_id}/moves")
        return msgspec.convert(log, list[MoveRecord])

    def session(self, game_type: str, game_id: str, **options: Any) -> GameSession:
        """A socket session on this server with this client's token (not yet connected).

        `options` go to `GameSession` (`reconnect`, `on_event`, `keepalive`, ...).
        """
        options.setdefault("token", self.token)
        return GameSession(self.base_url, game_type, game_id, **options)

    async def connect(
        self, game_type: str, game_id: str, *, reconnect: Reconnect | None = None, **options: Any
    ) -> GameSession:
        """`session(...)`, connected: `hello` and the first snapshot have arrived."""
        if reconnect is not None:
            options["reconnect"] = reconnect
        return await self.session(game_type, game_id, **options).connect()

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer, or the server's error raised as typed."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            reply = await self._http.request(
                method, path, json=body, params=params, headers=headers
            )
        except httpx.TransportError as error:
            raise GameSocketError(CONNECTION_FAILED, f"{method} {path}: {error!r}") from error
        if reply.is_error:
            raise http_error(reply)
        return reply.json()


def http_error(reply: httpx.Response) -> GameSocketError:
    """The server's `{"error": {"code", "message"}}`, or the bare status if it has none."""
    try:
        error = reply.json()["error"]
        return GameSocketError(str(error["code"]), str(error["message"]), reply.status_code)
    except (ValueError, KeyError, TypeError):
        return GameSocketError(f"http_{reply.status_code}", reply.text[:200], reply.status_code)


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
