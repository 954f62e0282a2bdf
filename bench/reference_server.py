"""The reference: the fastest plain-Python server for the same load, to compare against.

A bare `websockets` server that speaks just enough of PROTOCOL.md for the load
generator: `hello` and `state` on connect, `move` -> one `update` serialised once and
written to every socket of the game with `websockets.broadcast`, `ack` to the sender,
`ping` -> `pong`, and `GET /health`. No rules, no store, no auth: a token only marks
a player, and players take the seats in the order they connect. `--update-bytes`
pads each update to the size of the real server's snapshots, so both push the same
bytes. `--busy-workers K` readies K CPU-bound processes that start on SIGUSR1: the
ceiling for "searches run off the event loop" in the loop-health scenario.

Run: python -m bench.reference_server --port 8765 [--update-bytes 900] [--busy-workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import signal
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Request, Response, ServerConnection, broadcast, serve
from websockets.datastructures import Headers

from bench.client import SEATS


@dataclass
class Game:
    game_id: str
    game_type: str
    version: int = 0
    moves: int = 0
    players: list[str] = field(default_factory=list)
    sockets: set[ServerConnection] = field(default_factory=set)

    def snapshot(self) -> dict[str, Any]:
        seats = SEATS[self.game_type]
        return {
            "game_id": self.game_id,
            "game_type": self.game_type,
            "version": self.version,
            "status": "active",
            "turn": seats[self.moves % 2],
            "moves": self.moves,
            "public": True,
        }


class ReferenceServer:
    def __init__(self, update_bytes: int) -> None:
        self.games: dict[str, Game] = {}
        self.update_bytes = update_bytes

    def _encode(self, message: dict[str, Any]) -> str:
        """Serialise once, padded with an ignored field to `update_bytes`."""
        message["pad"] = ""
        missing = self.update_bytes - len(json.dumps(message, separators=(",", ":")))
        message["pad"] = "x" * max(0, missing)
        return json.dumps(message, separators=(",", ":"))

    async def handle(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request else "/")
        segments = parts.path.strip("/").split("/")
        if len(segments) != 3 or segments[0] != "ws" or segments[1] not in SEATS:
            await ws.close(4404, "no such game")
            return
        game_type, game_id = segments[1], segments[2]
        game = self.games.setdefault(game_id, Game(game_id, game_type))
        token = parse_qs(parts.query).get("token", [""])[0]
        seat = None
        if token and len(game.players) < len(SEATS[game_type]):
            seat = SEATS[game_type][len(game.players)]
            game.players.append(token)
        you = {"user_id": token or None, "seat": seat, "role": "player" if seat else "spectator"}
        await ws.send(json.dumps({"type": "hello", "protocol": 1, "game_id": game_id, "you": you}))
        await ws.send(self._encode({"type": "state", **game.snapshot()}))
        game.sockets.add(ws)
        try:
            async for raw in ws:
                await self._on_message(ws, game, seat, raw)
        finally:
            game.sockets.discard(ws)
            if not game.sockets:
                self.games.pop(game_id, None)

    async def _on_message(
        self, ws: ServerConnection, game: Game, seat: str | None, raw: str | bytes
    ) -> None:
        try:
            message = json.loads(raw)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            await ws.send(json.dumps({"type": "error", "code": "bad_message", "message": "?"}))
            return
        ref = message.get("id")
        if kind == "ping":
            await ws.send('{"type":"pong"}')
        elif kind == "move" and seat is not None:
            game.version += 1
            game.moves += 1
            event = {"kind": "move", "seat": seat, "move": message.get("move")}
            update = self._encode({"type": "update", "event": event, **game.snapshot()})
            broadcast(game.sockets, update)
            await ws.send(json.dumps({"type": "ack", "ref": ref, "version": game.version}))
        else:
            error = {"type": "error", "code": "unknown_type", "message": kind, "ref": ref}
            await ws.send(json.dumps(error))


def _health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/health":
        return Response(
            HTTPStatus.OK, "OK", Headers({"Content-Type": "application/json"}), b'{"status":"ok"}'
        )
    return None


def _burn() -> None:
    """A stand-in search: pure CPU in its own process until terminated."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for n in itertools.count():
        uuid.uuid5(uuid.NAMESPACE_DNS, str(n))


async def run(host: str, port: int, update_bytes: int, busy_workers: int) -> None:
    server = ReferenceServer(update_bytes)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    # The stand-in searches start on SIGUSR1, so the idle phase is measured without them.
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(busy_workers)]
    loop.add_signal_handler(signal.SIGUSR1, _start_once, burners)
    try:
        async with serve(
            server.handle,
            host,
            port,
            compression=None,
            ping_interval=None,
            max_size=64 * 1024,
            process_request=_health,
            backlog=4096,
        ):
            await stop
    finally:
        for burner in burners:
            if burner.pid is not None:
                burner.terminate()
                burner.join(timeout=2)


def _start_once(burners: list[multiprocessing.Process]) -> None:
    for burner in burners:
        if burner.pid is None:
            burner.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--update-bytes", type=int, default=900)
    parser.add_argument("--busy-workers", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port, args.update_bytes, args.busy_workers))


if __name__ == "__main__":
    main()
