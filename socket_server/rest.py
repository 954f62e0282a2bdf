"""The REST API of PROTOCOL.md (plus small documented extensions), on Litestar.

Every change goes through the same `GameService` as the sockets. Errors are
`{"error": {"code", "message"}}` with the HTTP status of `HTTP_STATUS`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import MutableScopeHeaders
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import SecurityRequirement
from litestar.params import Dependency, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.types import BeforeRequestHookHandler, ControllerRouterHandler, Message, Scope

from games import ChessState
from socket_server.auth import Authenticator, AuthError
from socket_server.changes import Refused
from socket_server.chat import MAX_HISTORY, ChatRooms
from socket_server.fanout.base import Broker
from socket_server.limits import GUEST_LIMIT, LIMIT_OPT
from socket_server.lobby import Lobby
from socket_server.profiles import CURSOR_PATTERN, RatingView, UserReply, checked_name
from socket_server.protocol import (
    ChatMessage,
    ChatRoomName,
    ErrorCode,
    RematchReply,
    SeekReply,
    Snapshot,
    check_request_id,
    has_control_chars,
)
from socket_server.ratings import LEADERBOARD_MAX_DEVIATION
from socket_server.rematch import Rematches
from socket_server.service import GameService
from socket_server.settings import Settings
from socket_server.store.base import Actor, GameStatus, GameStore, may_see

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
    ErrorCode.UNAVAILABLE: 503,
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
    # {"initial_ms", "increment_ms"?} | {"initial_ms", "delay_ms"} | {"per_move_ms"}
    clock: dict[str, Any] | None = None
    rated: bool = False


class JoinGame(msgspec.Struct, forbid_unknown_fields=False):
    seat: str | None = None
    id: RequestId | None = None
    # The invite code of a private game (its seated players see it in their snapshot).
    invite: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None

    def __post_init__(self) -> None:
        check_request_id(self.id)  # control characters: a 400, like the socket's


class PlayMove(msgspec.Struct, forbid_unknown_fields=False):
    move: str | int
    version: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Extension: the same idempotency key as a socket message's `id`.
    id: RequestId | None = None

    def __post_init__(self) -> None:
        check_request_id(self.id)


class DrawAction(msgspec.Struct, forbid_unknown_fields=False):
    action: Literal["offer", "accept", "decline"]
    id: RequestId | None = None

    def __post_init__(self) -> None:
        check_request_id(self.id)


class PlainAction(msgspec.Struct, forbid_unknown_fields=False):
    id: RequestId | None = None

    def __post_init__(self) -> None:
        check_request_id(self.id)


class Announce(msgspec.Struct, forbid_unknown_fields=False):
    text: str


class AnnouncementReply(msgspec.Struct):
    """The announcement as every socket received it."""

    text: str
    at: str  # ISO 8601


class VersionReply(msgspec.Struct):
    version: int


class GuestToken(msgspec.Struct):
    access_token: str
    user_id: str
    expires_at: str  # ISO 8601
    name: str  # the guest's display name


class GuestBody(msgspec.Struct, forbid_unknown_fields=False):
    name: str | None = None  # none: the server picks one (`Guest 4821`)


class NameBody(msgspec.Struct, forbid_unknown_fields=False):
    name: str


class UserGames(msgspec.Struct):
    games: list[Snapshot]
    next_before: str | None  # `before` of the next page; null: this is the last


class MoveEntry(msgspec.Struct):
    """One line of the move log (`san`: chess only)."""

    version: int
    seat: str
    move: str | int  # normal form: chess UCI, grid games an integer
    at: str  # ISO 8601
    san: str | None = None


class LeaderboardEntry(msgspec.Struct):
    """One player of the leaderboard (rating and deviation to two decimals)."""

    user_id: str
    name: str
    rating: float
    deviation: float
    games: int


class HealthReply(msgspec.Struct):
    status: Literal["ok", "unavailable"]


class GameConnections(msgspec.Struct):
    players: int
    spectators: int


class ConnectionsReply(msgspec.Struct):
    games: dict[str, GameConnections]
    players: int
    spectators: int


class ConfigReply(msgspec.Struct):
    mode: Literal["embedded", "supabase"]
    supabase_url: str | None
    supabase_anon_key: str | None


class ErrorDetail(msgspec.Struct):
    code: ErrorCode
    message: str


class ErrorBody(msgspec.Struct):
    """Every error answer: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


# -- what the OpenAPI document says of each route -----------------------------------
BEARER = "BearerToken"  # the security scheme: `Authorization: Bearer <access token>`
SIGNED_IN: list[SecurityRequirement] = [{BEARER: []}]
# Anonymous callers may read public games; a token sent must be valid all the same.
TOKEN_OPTIONAL: list[SecurityRequirement] = [{}, {BEARER: []}]
ERROR_MEANING: dict[int, str] = {
    400: "the body or a parameter is malformed, or names what the game does not have",
    401: "a token is needed and missing, or the one sent is invalid or expired",
    403: "the caller may not do this (a private game, not a seat of theirs)",
    404: "no such game (or no such thing for this game)",
    405: "the path does not take this method (`Allow` lists those it takes)",
    409: "the game's state refuses it now",
    413: "the body is larger than the server takes",
    422: "the game's rules refuse it",
    429: "too many requests: wait `Retry-After` seconds",
    503: "the store cannot write now (a full disk, say): nothing changed, try again later",
}
REST_CODES = frozenset(ErrorCode) - {ErrorCode.UNKNOWN_TYPE}  # that one is the socket's
# Litestar's own refusals by status: 413 and 405 have no code of their own.
EXTRA_CODES: dict[int, tuple[ErrorCode, ...]] = {413: (ErrorCode.BAD_MESSAGE,)}


def error_spec(status: int, meaning: str | None = None) -> ResponseSpec:
    """The documented error answer of `status`: its codes and what it means."""
    codes = [code for code, value in HTTP_STATUS.items() if value == status and code in REST_CODES]
    codes += EXTRA_CODES.get(status, ())
    names = ", ".join(f"`{code.value}`" for code in codes)
    return ResponseSpec(ErrorBody, description=f"{names}: {meaning or ERROR_MEANING[status]}")


def errors(*statuses: int, notes: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """The error answers of a route under /api/: `statuses`, and 429 (rate limits);
    `notes` says what a status means on this route where that is more than usual."""
    notes = notes or {}
    return {status: error_spec(status, notes.get(status)) for status in sorted({*statuses, 429})}


def error_response(
    code: ErrorCode,
    message: str,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return Response(
        {"error": {"code": code, "message": message}},
        status_code=status or HTTP_STATUS.get(code, 400),
        headers=headers,
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
    # A 405 keeps its `Allow` header (the methods the path takes).
    return error_response(code, message, status, dict(error.headers or {}))


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    refused = _undecodable_body(error)
    if refused is not None:
        return error_response(ErrorCode.BAD_MESSAGE, refused, 400)
    log.error("request failed path=%s error=%r", request.url.path, error, exc_info=error)
    return error_response(ErrorCode.INTERNAL, "internal error", 500)


def _undecodable_body(error: BaseException) -> str | None:
    """Why a request body could not be read, if that is what `error` is: invalid UTF-8,
    or JSON nested deeper than the decoder goes (both escape Litestar's own 400)."""
    if isinstance(error, RecursionError):
        return "the body is nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    return None


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


async def provide_signed_in(request: Request[Any, Any, Any], auth: Given[Authenticator]) -> Actor:
    """The caller of a route that needs a token (`SIGNED_IN`): 401 before anything else."""
    actor = await provide_actor(request, auth)
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in: send Authorization: Bearer <access token>")
    return actor


SIGNED_IN_ACTOR = {"actor": Provide(provide_signed_in)}


def single_values(*names: str) -> BeforeRequestHookHandler:
    """Refuse what the query parsing would hide: one of `names` given twice (the last
    would win) or as `null` (it would read as absent)."""

    async def check(request: Request[Any, Any, Any]) -> None:
        for name in names:
            values = request.query_params.getall(name, [])
            if len(values) > 1:
                raise Refused(ErrorCode.BAD_MESSAGE, f"query parameter {name} given twice")
            if values and values[0].lower() == "null":
                raise Refused(ErrorCode.BAD_MESSAGE, f"query parameter {name}: leave it out")

    return check


async def complete_allow(message: Message, scope: Scope) -> None:
    """`Allow` of an OPTIONS answer: every method of the path.

    (Litestar's automatic answer lists those of the path's last registered handler only.)
    """
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = MutableScopeHeaders.from_message(message)
    handler = scope.get("route_handler")
    if "allow" not in headers or handler is None:
        return
    routes = scope["app"].route_handler_method_map
    methods = {method for path in handler.paths for method in routes.get(path, {})}
    if methods:
        headers["allow"] = ", ".join(sorted(methods))


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """A JSON body is read as strictly as a socket message: no `0` for `false`, no `"1"`
    for `1` (Litestar's own conversion is lax; it reads the body after this check)."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return  # a route without a body (the reads)
    body = await request.body()
    if not body.strip():
        return
    try:
        msgspec.json.decode(body, type=data.annotation)
    except msgspec.ValidationError as error:
        raise Refused(ErrorCode.BAD_MESSAGE, f"the body: {error}") from None
    except msgspec.DecodeError:
        return  # not JSON at all: Litestar says so


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    # Counted by the guest-token limit too (GAMESOCKET_GUEST_RATE_LIMIT, per address).
    @post(
        "/guest",
        status_code=201,
        opt={LIMIT_OPT: GUEST_LIMIT},
        before_request=strict_body,
        responses=errors(400, 404, 413, 503),
    )
    async def guest(
        self,
        settings: Given[Settings],
        auth: Given[Authenticator],
        service: Given[GameService],
        data: JSONBody[GuestBody | None] = None,
    ) -> GuestToken:
        """Embedded mode only: a new guest user, its display name and its access token."""
        if not settings.embedded_auth:
            raise Refused(ErrorCode.NOT_FOUND, "guest tokens exist only in embedded mode")
        name = None if data is None or data.name is None else checked_name(data.name)
        token = auth.issue_guest_token()
        profile = await service.profiles.welcome(await auth.verify(token.access_token), name)
        return GuestToken(
            token.access_token, token.user_id, token.expires_at.isoformat(), profile.name
        )


class MeController(Controller):
    """The caller's own profile (PROTOCOL.md "Players and names")."""

    path = "/api/me"
    tags = ["players"]
    dependencies = SIGNED_IN_ACTOR
    before_request = staticmethod(strict_body)

    @get("/", security=SIGNED_IN, responses=errors(401, 503))
    async def me(self, service: Given[GameService], actor: NamedDependency[Actor]) -> UserReply:
        """The caller's profile (made on first sight, named from the token if it can be)."""
        return await rated_profile(service, await service.profiles.me(actor))

    @patch("/", security=SIGNED_IN, responses=errors(400, 401, 413, 503))
    async def rename(
        self, service: Given[GameService], actor: NamedDependency[Actor], data: JSONBody[NameBody]
    ) -> UserReply:
        """Change the caller's display name (1..32 characters after trimming, no control
        characters); games already joined keep the name their seat was taken with."""
        return await rated_profile(service, await service.profiles.rename(actor, data.name))


async def rated_profile(service: GameService, reply: UserReply) -> UserReply:
    """A profile with the user's ratings per game type."""
    reply.ratings = {
        row.game_type: RatingView(
            round(row.rating.rating, 2), round(row.rating.deviation, 2), row.games
        )
        for row in await service.ratings.user_ratings(reply.user_id)
    }
    return reply


class UsersController(Controller):
    """Public profiles and game histories."""

    path = "/api/users"
    tags = ["players"]
    dependencies = {"actor": Provide(provide_actor)}

    @get("/{user_id:str}", security=TOKEN_OPTIONAL, responses=errors(401, 404))
    async def user(
        self, service: Given[GameService], actor: NamedDependency[Actor], user_id: FromPath[str]
    ) -> UserReply:
        """A user's public profile: id, display name, ratings per game type."""
        # Public to anyone; `actor` is asked for so that a token sent must verify (401).
        return await rated_profile(service, await service.profiles.public_profile(user_id))

    @get(
        "/{user_id:str}/games",
        security=TOKEN_OPTIONAL,
        before_request=single_values("limit", "before"),
        responses=errors(400, 401, 404),
    )
    async def games(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        user_id: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        before: Annotated[str | None, QueryParameter(pattern=CURSOR_PATTERN)] = None,
    ) -> UserGames:
        """The user's games that the caller may see, newest first; the next page with
        `before` set to this page's `next_before`."""
        records, next_before = await service.profiles.games_page(user_id, actor, limit, before)
        shown = [
            (r, None) for r in records if r.game_type in service.game_types and may_see(r, actor)
        ]
        return UserGames(await service.snapshots_for(shown), next_before)


class GamesController(Controller):
    path = "/api/games"
    tags = ["games"]
    dependencies = {"actor": Provide(provide_actor)}
    before_request = staticmethod(strict_body)

    @post(
        "/",
        status_code=201,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 413, 503),
    )
    async def create(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        data: JSONBody[CreateGame],
    ) -> Snapshot:
        """Create a game; both seats AI starts it playing by itself."""
        return await service.create_game(
            actor, data.game_type, data.seats, data.public, data.options, data.clock, data.rated
        )

    @get(
        "/",
        security=TOKEN_OPTIONAL,
        before_request=single_values("game_type", "status", "limit"),
        responses=errors(400, 401),
    )
    async def list_games(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_type: FromQuery[str | None] = None,
        status: FromQuery[GameStatus | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[Snapshot]:
        """Snapshots of the games the caller may see, newest first."""
        if game_type is not None and has_control_chars(game_type):
            raise Refused(ErrorCode.BAD_MESSAGE, "game_type must not contain control characters")
        return await service.list_games(actor, game_type=game_type, status=status, limit=limit)

    @get("/{game_id:str}", security=TOKEN_OPTIONAL, responses=errors(401, 403, 404))
    async def get_game(
        self, service: Given[GameService], actor: NamedDependency[Actor], game_id: FromPath[str]
    ) -> Snapshot:
        return await service.snapshot(game_id, actor)

    @get(
        "/{game_id:str}/moves",
        security=TOKEN_OPTIONAL,
        responses={
            200: ResponseSpec(list[MoveEntry], description="the move log, oldest first"),
            **errors(401, 403, 404),
        },
    )
    async def moves(
        self, service: Given[GameService], actor: NamedDependency[Actor], game_id: FromPath[str]
    ) -> list[dict[str, Any]]:
        """The move log: `[{"version", "seat", "move", "san"?, "at"}]`."""
        return await service.move_log(game_id, actor)

    @get(
        "/{game_id:str}/pgn",
        media_type="application/x-chess-pgn",
        security=TOKEN_OPTIONAL,
        responses=errors(401, 403, 404, notes={404: "no such game, or not a chess game"}),
    )
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

    @post(
        "/{game_id:str}/join",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 503),
    )
    async def join(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[JoinGame | None] = None,
    ) -> Snapshot:
        """Take a seat (the first free one without `seat`); the snapshot."""
        body = data or JoinGame()
        await service.join(actor, game_id, body.seat, body.id, invite=body.invite)
        return await service.snapshot(game_id, actor)

    @post(
        "/{game_id:str}/moves",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 422, 503),
    )
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

    @post(
        "/{game_id:str}/resign",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 503),
    )
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

    @post(
        "/{game_id:str}/draw",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def draw(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[DrawAction],
    ) -> VersionReply:
        """Extension: offer, accept or decline a draw."""
        return VersionReply(await service.draw(actor, game_id, data.action, data.id))

    @post(
        "/{game_id:str}/abort",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 503),
    )
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

    @post(
        "/{game_id:str}/claim",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(400, 401, 403, 404, 409, 413, 503),
    )
    async def claim(
        self,
        service: Given[GameService],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[PlainAction | None] = None,
    ) -> VersionReply:
        """Win a game whose every opponent has been offline (every process) long enough."""
        request_id = data.id if data else None
        return VersionReply(await service.claim_victory(actor, game_id, request_id))

    @post(
        "/{game_id:str}/rematch",
        status_code=200,
        security=SIGNED_IN,
        dependencies=SIGNED_IN_ACTOR,
        responses=errors(
            400, 401, 403, 404, 409, 413, 503, notes={409: "the game is not finished"}
        ),
    )
    async def rematch(
        self,
        rematches: Given[Rematches],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        data: JSONBody[PlainAction | None] = None,
    ) -> RematchReply:
        """Ask for a rematch of a finished game: `offered` until the opponent (or an AI)
        asks too, then `created` with the new game's id (seats swapped)."""
        return await rematches.ask(actor, game_id)

    @get(
        "/{game_id:str}/chat",
        security=TOKEN_OPTIONAL,
        before_request=single_values("room", "after", "limit"),
        responses={
            200: ResponseSpec(list[ChatMessage], description="the room's messages, by seq"),
            **errors(
                400,
                401,
                403,
                404,
                notes={403: "a private game, or a player asking for the spectators' room"},
            ),
        },
    )
    async def chat(
        self,
        chat: Given[ChatRooms],
        actor: NamedDependency[Actor],
        game_id: FromPath[str],
        room: FromQuery[ChatRoomName] = "players",
        after: Annotated[int, QueryParameter(ge=0, le=2**31 - 1)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_HISTORY)] = 50,
    ) -> list[ChatMessage]:
        """The stored chat messages of `room` with a seq above `after`, oldest first."""
        return await chat.history(actor, game_id, room, after, limit)


async def provide_admin(
    request: Request[Any, Any, Any], auth: Given[Authenticator], settings: Given[Settings]
) -> None:
    """Only an administrator passes: the bearer token is `GAMESOCKET_ADMIN_TOKEN`, or a
    verified Supabase token whose `role` claim is `service_role`; 401 or 403 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <admin token>")
    admin_token = settings.admin_token
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return
    try:
        actor = await auth.verify(token)
    except AuthError as error:
        raise Refused(ErrorCode.UNAUTHORIZED, str(error)) from None
    if (actor.claims or {}).get("role") != "service_role":
        raise Refused(ErrorCode.FORBIDDEN, "administrators only")


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]
    before_request = staticmethod(strict_body)

    @post(
        "/announce",
        status_code=200,
        security=SIGNED_IN,
        dependencies={"admin": Provide(provide_admin)},
        responses=errors(400, 401, 403, 413),
    )
    async def announce(
        self, chat: Given[ChatRooms], admin: NamedDependency[None], data: JSONBody[Announce]
    ) -> AnnouncementReply:
        """Send `{"type": "announcement", "text", "at"}` to every open socket of every
        process (text: 1..500 characters after trimming)."""
        sent = await chat.announce(data.text)
        return AnnouncementReply(sent["text"], sent["at"])


def _seat_name(seat: dict[str, Any] | None) -> str:
    if seat is None:
        return "?"
    if seat.get("kind") == "ai":
        return f"gamesocket AI level {seat.get('level')}"
    # A seat taken before names existed has none: its user id stands in.
    return str(seat.get("name", seat.get("user_id")))


@get(
    "/health",
    tags=["server"],
    responses={503: ResponseSpec(HealthReply, description="the store does not answer")},
)
async def health(store: Given[GameStore]) -> Response[HealthReply]:
    """`{"status": "ok"}` when the server and its store answer."""
    try:
        healthy = await store.health()
    except Exception:
        healthy = False
    if healthy:
        return Response(HealthReply("ok"))
    return Response(HealthReply("unavailable"), status_code=503)


@get("/api/connections", tags=["server"], responses=errors())
async def connections(broker: Given[Broker], store: Given[GameStore]) -> ConnectionsReply:
    """Open sockets over every process: per public game, and in total.

    A private game's id is nobody's business: its sockets count in the totals only.
    """
    presence = await broker.all_presence()
    games = {
        game_id: GameConnections(sum(p.players.values()), p.spectators)
        for game_id, p in presence.items()
        if not p.is_empty()
    }
    public = await store.public_game_ids(list(games))
    return ConnectionsReply(
        games={game_id: counts for game_id, counts in games.items() if game_id in public},
        players=sum(g.players for g in games.values()),
        spectators=sum(g.spectators for g in games.values()),
    )


@get("/api/config", tags=["server"], responses=errors())
async def config(settings: Given[Settings]) -> ConfigReply:
    """What the web page needs to know: embedded guest mode or Supabase sign-in."""
    return ConfigReply(
        mode="embedded" if settings.embedded_auth else "supabase",
        supabase_url=settings.supabase_url,
        supabase_anon_key=settings.supabase_anon_key,
    )


@get(
    "/api/leaderboard",
    tags=["ratings"],
    before_request=single_values("game_type", "limit"),
    responses=errors(400),
)
async def leaderboard(
    service: Given[GameService],
    game_type: FromQuery[str],
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
) -> list[LeaderboardEntry]:
    """The best rated players of `game_type`, best first (a deviation above 150 left out)."""
    if game_type not in service.game_types:
        raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {game_type!r}")
    rows = await service.ratings.leaderboard(game_type, limit, LEADERBOARD_MAX_DEVIATION)
    # A rated player has a profile (made when they took their seat); the id stands in else.
    names = await service.profiles.names([row.user_id for row in rows])
    return [
        LeaderboardEntry(
            row.user_id,
            names.get(row.user_id, row.user_id),
            round(row.rating.rating, 2),
            round(row.rating.deviation, 2),
            row.games,
        )
        for row in rows
    ]


class SeekBody(msgspec.Struct, forbid_unknown_fields=False):
    game_type: str
    clock: dict[str, Any] | None = None
    rated: bool = False


class SeeksController(Controller):
    """Quick pairing (PROTOCOL.md "Seeks"): socket_server/lobby.py does the work."""

    path = "/api/seeks"
    tags = ["seeks"]
    dependencies = SIGNED_IN_ACTOR
    before_request = staticmethod(strict_body)

    @post("/", status_code=201, security=SIGNED_IN, responses=errors(400, 401, 413, 503))
    async def create(
        self, lobby: Given[Lobby], actor: NamedDependency[Actor], data: JSONBody[SeekBody]
    ) -> SeekReply:
        """Seek a game: paired at once with a compatible waiting seek, or waiting."""
        return await lobby.seek(actor, data.game_type, data.clock, data.rated)

    @get("/{seek_id:str}", security=SIGNED_IN, responses=errors(401, 404, 503))
    async def read(
        self, lobby: Given[Lobby], actor: NamedDependency[Actor], seek_id: FromPath[str]
    ) -> SeekReply:
        """The caller's seek (reading it keeps it alive)."""
        return await lobby.get_seek(actor, seek_id)

    @delete("/{seek_id:str}", status_code=200, security=SIGNED_IN, responses=errors(401, 404, 503))
    async def withdraw(
        self, lobby: Given[Lobby], actor: NamedDependency[Actor], seek_id: FromPath[str]
    ) -> SeekReply:
        """Withdraw the caller's seek (a paired one stays paired)."""
        return await lobby.withdraw(actor, seek_id)


ROUTES: list[ControllerRouterHandler] = [
    AuthController,
    MeController,
    UsersController,
    GamesController,
    SeeksController,
    AdminController,
    health,
    connections,
    config,
    leaderboard,
]
