"""Generate clients/js/gamesocket.d.ts from the server's message schemas.

    .venv/bin/python clients/js/scripts/gen-types.py           # write the file
    .venv/bin/python clients/js/scripts/gen-types.py --check   # exit 1 if it is stale

The message types come from `socket_server.protocol.message_schemas()` (JSON Schemas of
every client and server message, built from the server's msgspec Structs). Messages of
PROTOCOL.md that the server's schemas do not have yet (chat, rematch, announcements,
the lobby socket) are filled in from FALLBACK below, each only while it is missing. The
client's API declarations (clients/js/scripts/client-api.d.ts.in) follow; they name
messages only through the generated maps. tests/system/test_js_client.py checks that
the committed file equals this script's output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
ROOT = PACKAGE.parent.parent
OUTPUT = PACKAGE / "gamesocket.d.ts"
API_TEMPLATE = HERE / "client-api.d.ts.in"

# Names that would shadow a global of the TypeScript libraries inside the module.
GLOBAL_NAMES = frozenset(
    {
        "Array",
        "Boolean",
        "Date",
        "Error",
        "Event",
        "Function",
        "JSON",
        "Map",
        "Math",
        "Number",
        "Object",
        "Partial",
        "Promise",
        "Record",
        "RegExp",
        "Request",
        "Response",
        "Set",
        "String",
        "Symbol",
        "URL",
        "WebSocket",
    }
)

_ID = {"anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}], "default": None}
_SNAPSHOT = {"tsType": "Snapshot"}  # declared by the API part: the `state` message less `type`

# PROTOCOL.md's messages, used only while the server's schemas lack them.
FALLBACK: dict[str, dict[str, Any]] = {
    "client": {
        "chat": {
            "title": "Chat",
            "description": "Write to the game's chat.",
            "type": "object",
            "properties": {
                "type": {"enum": ["chat"]},
                "text": {"type": "string", "minLength": 1, "maxLength": 500},
                "room": {"enum": ["players", "spectators"]},
                "id": _ID,
            },
            "required": ["type", "text"],
        },
        "claim_victory": {
            "title": "ClaimVictory",
            "description": "Claim the win when every opponent seat has been offline for 60 s.",
            "type": "object",
            "properties": {"type": {"enum": ["claim_victory"]}, "id": _ID},
            "required": ["type"],
        },
    },
    "server": {
        "chat": {
            "title": "ChatMessage",
            "description": "A chat message, to every socket that reads its room.",
            "type": "object",
            "properties": {
                "type": {"enum": ["chat"]},
                "game_id": {"type": "string"},
                "room": {"enum": ["players", "spectators"]},
                "seq": {"type": "integer"},
                "user_id": {"type": "string"},
                "name": {"type": "string"},
                "text": {"type": "string"},
                "at": {"type": "string"},
            },
            "required": ["type", "game_id", "room", "seq", "user_id", "name", "text", "at"],
        },
        "rematch": {
            "title": "Rematch",
            "description": "A rematch offer (`offered_by`), or the new game (`new_game_id`).",
            "type": "object",
            "properties": {
                "type": {"enum": ["rematch"]},
                "game_id": {"type": "string"},
                "offered_by": {"type": "string"},
                "new_game_id": {"type": "string"},
            },
            "required": ["type", "game_id"],
        },
        "announcement": {
            "title": "Announcement",
            "description": "An administrator's announcement, to every open socket.",
            "type": "object",
            "properties": {
                "type": {"enum": ["announcement"]},
                "text": {"type": "string"},
                "at": {"type": "string"},
            },
            "required": ["type", "text", "at"],
        },
    },
    "lobby": {
        "hello": {
            "title": "LobbyHello",
            "type": "object",
            "properties": {
                "type": {"enum": ["hello"]},
                "protocol": {"type": "integer"},
                "you": {
                    "type": "object",
                    "properties": {"user_id": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                    "required": ["user_id"],
                },
            },
            "required": ["type", "protocol", "you"],
        },
        "lobby": {
            "title": "Lobby",
            "description": "Public waiting games and open seeks, after `hello`.",
            "type": "object",
            "properties": {
                "type": {"enum": ["lobby"]},
                "games": {"type": "array", "items": _SNAPSHOT},
                "seeks": {"type": "array", "items": {"$ref": "#/$defs/Seek"}},
            },
            "required": ["type", "games", "seeks"],
        },
        "lobby_update": {
            "title": "LobbyUpdate",
            "type": "object",
            "properties": {
                "type": {"enum": ["lobby_update"]},
                "added": {
                    "type": "array",
                    "items": {"anyOf": [_SNAPSHOT, {"$ref": "#/$defs/Seek"}]},
                },
                "removed": {
                    "description": "game or seek ids",
                    "type": "array",
                    "items": {"type": "string"},
                },
            },
            "required": ["type", "added", "removed"],
        },
        "paired": {
            "title": "Paired",
            "description": "The signed-in user's own seek was paired.",
            "type": "object",
            "properties": {
                "type": {"enum": ["paired"]},
                "seek_id": {"type": "string"},
                "game_id": {"type": "string"},
                "game_type": {"type": "string"},
            },
            "required": ["type", "seek_id", "game_id", "game_type"],
        },
    },
    "$defs": {
        "Seek": {
            "title": "Seek",
            "type": "object",
            "properties": {
                "seek_id": {"type": "string"},
                "game_type": {"type": "string"},
                "clock": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                "rated": {"type": "boolean"},
                "name": {"type": "string"},
            },
            "required": ["seek_id", "game_type", "clock", "rated", "name"],
        },
    },
}


def load_schemas() -> tuple[dict[str, Any], str]:
    """The server's schemas and where they came from."""
    sys.path.insert(0, str(ROOT))
    from socket_server import protocol

    if hasattr(protocol, "message_schemas"):
        return protocol.message_schemas(), "socket_server.protocol.message_schemas()"
    return schemas_from_structs(protocol), "the msgspec Structs of socket_server/protocol.py"


def schemas_from_structs(module: Any) -> dict[str, Any]:
    """The same shape as `message_schemas()`, from the module's tagged Structs."""
    import msgspec

    def tagged(base_name: str) -> dict[str, type[msgspec.Struct]]:
        base = getattr(module, base_name, None)
        found: dict[str, type[msgspec.Struct]] = {}
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and base is not None
                and issubclass(value, base)
                and value is not base
            ):
                config = getattr(value, "__struct_config__", None)
                if config is not None and isinstance(config.tag, str):
                    found[config.tag] = value
        return found

    client, server = tagged("ClientMessage"), tagged("ServerMessage")
    schemas, defs = msgspec.json.schema_components(
        (*client.values(), *server.values()), ref_template="#/$defs/{name}"
    )
    return {
        "client": dict(zip(client, schemas[: len(client)], strict=True)),
        "server": dict(zip(server, schemas[len(client) :], strict=True)),
        "$defs": defs,
    }


def declared_names(template: str) -> set[str]:
    """The names the API part declares (a generated type must not take them)."""
    pattern = r"^export\s+(?:declare\s+)?(?:type|interface|class|function|const)\s+(\w+)"
    return set(re.findall(pattern, template, flags=re.MULTILINE))


class Emitter:
    def __init__(self, defs: dict[str, Any], taken: set[str]) -> None:
        self.defs = defs
        reserved = GLOBAL_NAMES | taken
        self.names = {name: (f"Wire{name}" if name in reserved else name) for name in defs}

    def ref_name(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        if name not in self.names:
            raise KeyError(f"unknown schema reference {ref}")
        return self.names[name]

    def type_of(self, schema: Any, indent: str) -> str:
        if schema is True or schema == {} or schema is None:
            return "unknown"
        if "tsType" in schema:
            return str(schema["tsType"])
        if "$ref" in schema:
            return self.ref_name(schema["$ref"])
        if "const" in schema:
            return json.dumps(schema["const"])
        if "enum" in schema:
            return " | ".join(json.dumps(value) for value in schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return " | ".join(self.type_of(part, indent) for part in schema[key])
        return self.typed(schema, indent)

    def typed(self, schema: dict[str, Any], indent: str) -> str:
        """A schema by its `type` keyword."""
        kind = schema.get("type")
        if isinstance(kind, list):
            return " | ".join(self.type_of({**schema, "type": one}, indent) for one in kind)
        if kind in ("integer", "number"):
            return "number"
        if kind in ("string", "boolean", "null"):
            return str(kind)
        if kind == "array":
            return self.array_type(schema, indent)
        if kind == "object" or "properties" in schema or "additionalProperties" in schema:
            return self.object_type(schema, indent)
        return "unknown"

    def array_type(self, schema: dict[str, Any], indent: str) -> str:
        if "prefixItems" in schema:
            items = ", ".join(self.type_of(item, indent) for item in schema["prefixItems"])
            return f"[{items}]"
        item = schema.get("items")
        return f"{self.member(item, indent)}[]" if item else "unknown[]"

    def member(self, schema: Any, indent: str) -> str:
        """An array's item type: a union in parentheses."""
        text = self.type_of(schema, indent)
        union = isinstance(schema, dict) and (
            len(schema.get("enum", ())) > 1
            or any(len(schema.get(key, ())) > 1 for key in ("anyOf", "oneOf"))
            or isinstance(schema.get("type"), list)
        )
        return f"({text})" if union else text

    def object_type(self, schema: dict[str, Any], indent: str) -> str:
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if not properties:
            if isinstance(extra, dict) and extra:
                return f"{{ [key: string]: {self.type_of(extra, indent)} }}"
            return "Record<string, unknown>"
        return "{\n" + self.body(schema, indent + "  ") + indent + "}"

    def body(self, schema: dict[str, Any], indent: str) -> str:
        required = set(schema.get("required", []))
        lines = []
        for name, part in schema.get("properties", {}).items():
            doc = describe(part)
            if doc:
                lines.append(f"{indent}/** {doc} */\n")
            optional = "" if name in required else "?"
            key = name if name.isidentifier() else json.dumps(name)
            lines.append(f"{indent}{key}{optional}: {self.type_of(part, indent)};\n")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            lines.append(f"{indent}[key: string]: {self.type_of(extra, indent)};\n")
        return "".join(lines)

    def declaration(self, name: str, schema: dict[str, Any], note: str = "") -> str:
        ts_name = self.names[name]
        doc = " ".join(part for part in (schema.get("description", ""), note) if part)
        head = f"/** {doc} */\n" if doc else ""
        is_object = schema.get("type") == "object" or "properties" in schema
        if is_object and schema.get("properties"):
            return f"{head}export interface {ts_name} {{\n{self.body(schema, '  ')}}}\n"
        return f"{head}export type {ts_name} = {self.type_of(schema, '')};\n"


def describe(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    parts = [schema["description"]] if schema.get("description") else []
    for part in [schema, *schema.get("anyOf", [])]:
        if isinstance(part, dict):
            parts.extend(bounds(part, "minimum", "maximum", ""))
            parts.extend(bounds(part, "minLength", "maxLength", " characters"))
    return "; ".join(parts).replace("*/", "* /")


def bounds(schema: dict[str, Any], low: str, high: str, unit: str) -> list[str]:
    if low in schema and high in schema:
        return [f"{schema[low]}..{schema[high]}{unit}"]
    if low in schema:
        return [f"at least {schema[low]}{unit}"]
    if high in schema:
        return [f"at most {schema[high]}{unit}"]
    return []


def message_map(
    emitter: Emitter, name: str, messages: dict[str, Any], doc: str, extra: str = ""
) -> str:
    lines = [f"/** {doc} */\n", f"export interface {name} {{\n"]
    for tag, schema in messages.items():
        lines.append(f"  {json.dumps(tag)}: {emitter.type_of(schema, '  ')};\n")
    lines.append(extra)
    lines.append("}\n")
    return "".join(lines)


def generate() -> str:
    schemas, source = load_schemas()
    defs: dict[str, Any] = dict(schemas["$defs"])
    sections = {key: dict(schemas.get(key, {})) for key in ("client", "server", "lobby")}
    fallback_note = "(From PROTOCOL.md: the server's schemas do not have it yet.)"
    added: list[tuple[str, dict[str, Any]]] = []
    for section in ("client", "server", "lobby"):
        for tag, schema in FALLBACK[section].items():
            if tag in sections[section]:
                continue
            name = schema["title"]
            if section == "lobby" and name in defs:
                raise ValueError(f"a fallback name clashes with the server's {name}")
            while name in defs:
                name = f"{name}Fallback"
            defs[name] = schema
            added.append((name, schema))
            sections[section][tag] = {"$ref": f"#/$defs/{name}"}
    for name, schema in FALLBACK["$defs"].items():
        if name not in defs:
            defs[name] = schema
            added.append((name, schema))
    template = API_TEMPLATE.read_text(encoding="utf-8")
    emitter = Emitter(defs, declared_names(template))
    fallback_names = {name for name, _ in added}

    out = [
        "// gamesocket-client: TypeScript declarations for gamesocket.js.\n",
        f"// GENERATED by clients/js/scripts/gen-types.py from {source};\n",
        "// do not edit: change the server's message structs (or the API part,\n",
        "// clients/js/scripts/client-api.d.ts.in) and run the script again.\n",
        "\n",
        "// -- messages " + "-" * 73 + "\n",
        "\n",
    ]
    for name, schema in defs.items():
        note = fallback_note if name in fallback_names else ""
        out.append(emitter.declaration(name, schema, note))
        out.append("\n")
    out.append(
        message_map(
            emitter, "ClientMessages", sections["client"], "Every client message, by `type`."
        )
    )
    out.append("\n")
    out.append(
        message_map(
            emitter,
            "ServerMessages",
            sections["server"],
            "Every message a game socket sends, by `type`.",
        )
    )
    out.append("\n")
    shared = "".join(
        f'  {json.dumps(tag)}: ServerMessages["{tag}"];\n'
        for tag in ("error", "pong", "announcement")
        if tag not in sections["lobby"]
    )
    out.append(
        message_map(
            emitter,
            "LobbyServerMessages",
            sections["lobby"],
            "Every message the lobby socket (`/ws/lobby`) sends, by `type`.",
            shared,
        )
    )
    out.append("\n")
    out.append("export type ClientMessage = ClientMessages[keyof ClientMessages];\n")
    out.append("export type ServerMessage = ServerMessages[keyof ServerMessages];\n")
    out.append("export type LobbyServerMessage = LobbyServerMessages[keyof LobbyServerMessages];\n")
    out.append("\n")
    out.append(template)
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args()
    text = generate()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
