"""The REST API of PROTOCOL.md (plus small documented extensions), on Litestar.

Every change goes through the same `GameService` as the sockets. Errors are
`{"error": {"code", "message"}}` with the HTTP status of `HTTP_STATUS`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import Dependency, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from games import ChessState
from socket_server.auth import Authenticator, AuthError
from socket_server.changes import Refused
from socket_server.fanout.base import Broker
from socket_server.protocol import ErrorCode, Snapshot
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store.base import Actor, GameStatus, GameStore

log = logging.getLogger("gamesocket.rest")

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_YOUR_TURN: 409,
    ErrorCode.STALE_VERSION: 409,
    ErrorCode.SEAT_TAKEN: 409,
    ErrorCode.GAME_OVER: 409,
    ErrorCode.ILLEGAL_MOVE: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}
# Litestar's own errors (validation, unknown route, ...) by status, in our shape.
CODE_FOR_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_MESSAGE,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_MESSAGE,
    429: ErrorCode.RATE_LIMITED,
}

RequestId = Annotated[str, msgspec.Meta(max_length=64)]

T = TypeVar("T")
# A server part handed to a handler by Litestar's DI (`create_app` provides them by
# name); taken as it is: a part is no request data to validate.
Given = Annotated[T, Dependency(skip_validation=True)]


class CreateGame(msgspec.Struct, forbid_unknown_fields=False):
    game_type: str
    # seat -> "me" or {"kind": "ai", "level": 1..10}
    seats: dict[str, Any] | None = None
    public: bool = True
    options: dict[str, Any] | None = None


class JoinGame(msgspec.Struct, forbid_unknown_fields=False):
    seat: str | None = None
    id: RequestId | None = None


class PlayMove(msgspec.Struct, forbid_unknown_fields=False):
    move: str | int
    version: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Extension: the same idempotency key as a socket message's `id`.
    id: RequestId | None = None


class DrawAction(msgspec.Struct, forbid_unknown_fields=False):
    action: Literal["offer", "accept", "decline"]
    id: RequestId | None = None


class PlainAction(msgspec.Struct, forbid_unknown_fields=False):
    id: RequestId | None = None


class VersionReply(msgspec.Struct):
    version: int


def error_response(code: ErrorCode, message: str, status: int | None = None) -> Response[Any]:
    return Response(
        {"error": {"code": code, "message": message}},
        status_code=status or HTTP_STATUS.get(code, 400),
    )


def refusal_handler(_request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    assert isinstance(error, Refused)
    return error_response(error.code, error.message)


def http_error_handler(_request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    assert isinstance(error, HTTPException)
    status = error.status_code
    fallback = ErrorCode.INTERNAL if status >= 500 else ErrorCode.BAD_MESSAGE
    code = CODE_FOR_STATUS.get(status, fallback)
    message = str(error.detail)
    extra = getattr(error, "extra", None)
    if extra:
        message = f"{message}: {extra}"
    return error_response(code, message, status)


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.error("request failed path=%s error=%r", request.url.path, error, exc_info=error)
    return error_response(ErrorCode.INTERNAL, "internal error", 500)


async def provide_actor(request: Request[Any, Any, Any], auth: Given[Authenticator]) -> Actor:
    """The caller from `Authorization: Bearer <token>`; anonymous without the header."""
    header = request.headers.get("authorization")
    if not header:
        return Actor.ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(ErrorCode.UNAUTHORIZED, "use Authorization: Bearer <access token>")
    try:
        return await auth.verify(token.strip())
    except AuthError as error:
        raise Refused(ErrorCode.UNAUTHORIZED, str(error)) from None


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/guest", status_code=201)
    async def guest(self, settings: Given[Settings], auth: Given[Authenticator]) -> dict[str, Any]:
        """Embedded mode only: a new guest user and its access token."""
        if not settings.embedded_auth:
            raise Refused(ErrorCode.NOT_FOUND, "guest tokens exist only in embedded mode")
        token = auth.issue_guest_token()
        return {
            "access_token": token.access_token,
            "user_id": token.user_id,
            "expires_at": token.expires_at.isoformat(),
        }


class GamesController(Controller):
    path = "/api/games"
    tags = ["games"]
    dependencies = {"actor": Provide(provide_actor)}

    @post("/", status_code=201)
    async def create(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        data: JSONBody[CreateGame],
    ) -> Snapshot:
        """Create a game; both seats AI starts it playing by itself."""
        return await service.create_game(
            actor, data.game_type, data.seats, data.public, data.options
        )

    @get("/")
    async def list_games(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_type: FromQuery[str | None] = None,
        status: FromQuery[GameStatus | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[Snapshot]:
        """Snapshots of the games the caller may see, newest first."""
        return await service.list_games(actor, game_type=game_type, status=status, limit=limit)

    @get("/{game_id:str}")
    async def get_game(
        self, service: Given[GameService], actor: NamedDependency[Actor], game_id: FromPath[str]
    ) -> Snapshot:
        return await service.snapshot(game_id, actor)

    @get("/{game_id:str}/moves")
    async def moves(
        self, service: Given[GameService], actor: NamedDependency[Actor], game_id: FromPath[str]
    ) -> list[dict[str, Any]]:
        """The move log: `[{"version", "seat", "move", "san"?, "at"}]`."""
        return await service.move_log(game_id, actor)

    @get("/{game_id:str}/pgn", media_type="application/x-chess-pgn")
    async def pgn(
        self, service: Given[GameService], actor: NamedDependency[Actor], game_id: FromPath[str]
    ) -> str:
        """Chess only: the game as PGN."""
        record, state = await service.view(game_id, actor)
        if not isinstance(state, ChessState):
            raise Refused(ErrorCode.NOT_FOUND, "PGN exists only for chess games")
        headers = {"Event": "gamesocket game", "Site": game_id}
        headers["Date"] = record.created_at.strftime("%Y.%m.%d")
        for seat in ("white", "black"):
            value = record.seats.get(seat)
            headers[seat.capitalize()] = _seat_name(value)
        return state.pgn(headers)

    @post("/{game_id:str}/join", status_code=200)
    async def join(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[JoinGame | None] = None,
    ) -> Snapshot:
        """Take a seat (the first free one without `seat`); the snapshot."""
        body = data or JoinGame()
        await service.join(actor, game_id, body.seat, body.id)
        return await service.snapshot(game_id, actor)

    @post("/{game_id:str}/moves", status_code=200)
    async def play(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[PlayMove],
    ) -> VersionReply:
        version = await service.move(
            actor, game_id, data.move, version=data.version, request_id=data.id
        )
        return VersionReply(version)

    @post("/{game_id:str}/resign", status_code=200)
    async def resign(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[PlainAction | None] = None,
    ) -> VersionReply:
        """Extension: the caller's seat resigns."""
        request_id = data.id if data else None
        return VersionReply(await service.resign(actor, game_id, request_id))

    @post("/{game_id:str}/draw", status_code=200)
    async def draw(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[DrawAction],
    ) -> VersionReply:
        """Extension: offer, accept or decline a draw."""
        return VersionReply(await service.draw(actor, game_id, data.action, data.id))

    @post("/{game_id:str}/abort", status_code=200)
    async def abort(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[PlainAction | None] = None,
    ) -> VersionReply:
        """Extension: abort a game before its first move (creator or a player), or an
        AI-vs-AI game at any time (its creator)."""
        request_id = data.id if data else None
        return VersionReply(await service.abort(actor, game_id, request_id))


def _seat_name(seat: dict[str, Any] | None) -> str:
    if seat is None:
        return "?"
    if seat.get("kind") == "ai":
        return f"gamesocket AI level {seat.get('level')}"
    return str(seat.get("user_id"))


@get("/health", tags=["server"])
async def health(store: Given[GameStore]) -> Response[dict[str, str]]:
    """`{"status": "ok"}` when the server and its store answer."""
    try:
        healthy = await store.health()
    except Exception:
        healthy = False
    if healthy:
        return Response({"status": "ok"})
    return Response({"status": "unavailable"}, status_code=503)


@get("/api/connections", tags=["server"])
async def connections(broker: Given[Broker]) -> dict[str, Any]:
    """Open sockets per game over every process: players and spectators."""
    presence = await broker.all_presence()
    games = {
        game_id: {"players": sum(p.players.values()), "spectators": p.spectators}
        for game_id, p in presence.items()
        if not p.is_empty()
    }
    return {
        "games": games,
        "players": sum(g["players"] for g in games.values()),
        "spectators": sum(g["spectators"] for g in games.values()),
    }


@get("/api/config", tags=["server"])
async def config(settings: Given[Settings]) -> dict[str, Any]:
    """What the web page needs to know: embedded guest mode or Supabase sign-in."""
    return {
        "mode": "embedded" if settings.embedded_auth else "supabase",
        "supabase_url": settings.supabase_url,
        "supabase_anon_key": settings.supabase_anon_key,
    }


ROUTES: list[ControllerRouterHandler] = [
    AuthController,
    GamesController,
    health,
    connections,
    config,
]
