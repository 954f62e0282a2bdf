"""The OpenAPI document at `/schema`: Litestar's, finished so that it says what the
server does.

Litestar builds the document from the route handlers (their `responses` and
`security`, rest.py). Before it is served it is finished once:

- every msgspec struct the REST API takes or answers is described by msgspec's own
  JSON Schema, the schema of the very decoder and encoder that handle it (Litestar's
  loses constraints such as `version >= 0` inside an optional field);
- `CreateGame` is one branch per game type this server plays, with its seat names,
  whether its seats may be AI, from the registry (so it follows the mounted games);
- every error answer is `ErrorBody`: Litestar's own validation-error description (its
  `{status_code, detail}` shape, which the server never sends) is dropped, and so a
  route documents exactly the error statuses its `responses` list;
- a query parameter is never `null` (it is a string or absent);
- a 429 carries `Retry-After`.

The Swagger page loads Swagger UI from static/vendor/swagger/ (no CDN).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, get_args

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from socket_server.changes import DEFAULT_AI_LEVEL, MAX_AI_DELAY_MS
from socket_server.rest import BEARER

if TYPE_CHECKING:
    from litestar import Litestar

    from socket_server.registry import GameType

SCHEMAS = "#/components/schemas/"
SWAGGER_ASSETS = "/vendor/swagger"  # socket_server/static/vendor/swagger/
DESCRIPTION = """\
The REST API of gamesocket (wire protocol version 1). Every error is
`{"error": {"code", "message"}}`; the codes are those of the socket protocol.

The WebSocket protocol (`/ws/{game_type}/{game_id}`) is described by the AsyncAPI
document at `/asyncapi.json`."""


def openapi_config() -> OpenAPIConfig:
    """`/schema` (the JSON), `/schema/openapi.json`, and the page `/schema/swagger`."""
    document = FinishedDocument()
    return OpenAPIConfig(
        title="gamesocket",
        version="1.0.0",
        description=DESCRIPTION,
        path="/schema",
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="an access token: a Supabase Auth token, or in embedded mode "
                    "one from `POST /api/auth/guest`",
                )
            }
        ),
        # GET /schema is the document itself (PROTOCOL.md); the UI sits beside it.
        render_plugins=[
            FinishedJson(document, path=["/", "/openapi.json"]),
            LocalSwagger(document),
        ],
    )


class FinishedDocument:
    """Litestar's document of one app, finished once and shared by its render plugins."""

    def __init__(self) -> None:
        self._source: dict[str, Any] | None = None
        self._finished: dict[str, Any] = {}

    def of(self, app: Litestar, schema: dict[str, Any]) -> dict[str, Any]:
        if self._source is not schema:
            self._finished = finish(schema, app)
            self._source = schema
        return self._finished


class FinishedJson(JsonRenderPlugin):
    def __init__(self, document: FinishedDocument, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.document.of(request.app, openapi_schema))


class LocalSwagger(SwaggerRenderPlugin):
    """Swagger UI from the server's own static files."""

    def __init__(self, document: FinishedDocument) -> None:
        super().__init__(
            path="/swagger",
            js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
        )
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.document.of(request.app, openapi_schema))


# -- finishing ---------------------------------------------------------------------------
def finish(schema: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """A copy of Litestar's document made exact (see the module's docstring)."""
    document = copy.deepcopy(schema)
    handlers = dict(_operations(app))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(struct_schemas(handlers.values()))
    game_types = list(app.state["gamesocket"].game_types)
    if "CreateGame" in schemas:
        schemas["CreateGame"] = create_game_schema(schemas["CreateGame"], game_types)
    paths = document.get("paths", {})
    leaderboard = paths.get("/api/leaderboard", {}).get("get")
    if leaderboard is not None:
        choose_game_type(leaderboard, [game_type.name for game_type in game_types])
    for (path, method), handler in handlers.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            _finish_operation(operation, handler)
    return document


def choose_game_type(operation: dict[str, Any], names: list[str]) -> None:
    """The operation's `game_type` query parameter: one of the registered game types."""
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "game_type":
            parameter["schema"] = {"type": "string", "enum": names}


def _operations(app: Litestar) -> Iterator[tuple[tuple[str, str], HTTPRouteHandler]]:
    """((path, method), handler) of every documented operation."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                for method in handler.http_methods:
                    yield (route.path_format or "/", method.lower()), handler


def struct_schemas(handlers: Iterable[HTTPRouteHandler]) -> dict[str, Any]:
    """msgspec's schemas of every struct the handlers take or answer, and their parts."""
    found: dict[type[msgspec.Struct], None] = {}
    for handler in handlers:
        signature = handler.parsed_fn_signature
        annotations = [signature.return_type.annotation]
        if "data" in signature.parameters:
            annotations.append(signature.parameters["data"].annotation)
        annotations += [spec.data_container for spec in (handler.responses or {}).values()]
        for annotation in annotations:
            found.update(dict.fromkeys(_structs_in(annotation)))
    _, components = msgspec.json.schema_components(list(found), ref_template=SCHEMAS + "{name}")
    return components


def _structs_in(annotation: Any) -> Iterator[type[msgspec.Struct]]:
    if inspect.isclass(annotation) and issubclass(annotation, msgspec.Struct):
        yield annotation
    for argument in get_args(annotation):
        yield from _structs_in(argument)


def _finish_operation(operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    body = operation.get("requestBody")
    data = handler.parsed_fn_signature.parameters.get("data")
    if body is not None and data is not None:
        body["required"] = not data.has_default  # `JSONBody[X | None] = None`: optional
    responses = operation.get("responses", {})
    for status in list(responses):
        # Litestar's own validation-error description is inline (`{status_code, detail}`,
        # never sent); a route's `responses` are structs: references.
        if int(status) >= 400 and "$ref" not in _json_schema(responses[status]):
            del responses[status]
    if "429" in responses:
        responses["429"]["headers"] = {
            "Retry-After": {
                "description": "seconds to wait (sent by the request rate limits; a cap such "
                "as the number of AI games has none)",
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query":
            parameter["schema"] = _not_null(parameter["schema"])


def _json_schema(response: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = (
        response.get("content", {}).get("application/json", {}).get("schema", {})
    )
    return schema


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without `null`: absent is how a query says none."""
    schema = dict(schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if b != {"type": "null"}]
            if len(branches) == 1:
                del schema[key]
                schema.update(branches[0])
            else:
                schema[key] = branches
    if isinstance(schema.get("type"), list):
        kinds = [kind for kind in schema["type"] if kind != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]
    return schema


# -- creating a game, per game type ------------------------------------------------------
AI_SEAT = {
    "type": "object",
    "properties": {
        "kind": {"const": "ai"},
        "level": {"type": "integer", "minimum": 1, "maximum": 10, "default": DEFAULT_AI_LEVEL},
    },
    "required": ["kind"],
}
HUMAN_OR_EMPTY = [
    {"const": "me", "description": "the caller takes the seat"},
    {"type": "null", "description": "left empty (someone joins later)"},
]
OPTIONS = {
    "anyOf": [
        {
            "type": "object",
            "description": "the game's own options (chess `fen`; connect4 `columns`, "
            "`rows`), checked by its rules; an unknown key is refused",
            "properties": {
                "ai_delay_ms": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_AI_DELAY_MS,
                    "description": "pause before each AI move",
                }
            },
        },
        {"type": "null"},
    ],
    "default": None,
}


def create_game_schema(base: dict[str, Any], game_types: list[GameType]) -> dict[str, Any]:
    """`CreateGame` as one branch per game type: its seat names, AI seats if it has AI."""
    return {
        "title": base.get("title", "CreateGame"),
        "description": "a new game: `seats` maps seat names to who sits there",
        "oneOf": [_create_branch(base, game_type) for game_type in game_types],
    }


def _create_branch(base: dict[str, Any], game_type: GameType) -> dict[str, Any]:
    branch = copy.deepcopy(base)
    branch.pop("title", None)
    seat_choices = [*HUMAN_OR_EMPTY, *([AI_SEAT] if game_type.agent_builder else [])]
    seat = {"anyOf": seat_choices}
    seats = {
        "type": "object",
        "properties": {name: seat for name in game_type.state_class.seats},
        "additionalProperties": False,
    }
    properties = branch.setdefault("properties", {})
    properties["game_type"] = {"const": game_type.name}
    properties["seats"] = {"anyOf": [seats, {"type": "null"}], "default": None}
    properties["options"] = OPTIONS
    return branch
