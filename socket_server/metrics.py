"""Prometheus metrics of one server process, served at `GET /metrics`.

Each app owns its `CollectorRegistry` (never the global default), so several apps in
one process (the tests) keep separate counts. The hot path pays one counter or
histogram update per message, never one per recipient. Games by status are counted
by the store when the endpoint is scraped, so they cover every process of a cluster.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from socket_server.store.base import GameStatus, GameStore

GAME_STATUSES: tuple[GameStatus, ...] = ("waiting", "active", "finished", "aborted")
# Seconds: a move is stored and published in about a millisecond when all is well.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SEARCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections = Gauge(
            "gamesocket_connections",
            "Open game sockets on this process, by the role their user has now",
            ["role"],
            registry=registry,
        )
        self.games = Gauge(
            "gamesocket_games", "Games in the store, by status", ["status"], registry=registry
        )
        self.moves = Counter(
            "gamesocket_moves", "Moves stored by this process", ["game_type"], registry=registry
        )
        self.move_latency = Histogram(
            "gamesocket_move_latency_seconds",
            "A socket move from its frame's arrival to its update being published",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fanout = Histogram(
            "gamesocket_fanout_seconds",
            "Handing one published message to every socket of its game on this process",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ai_search = Histogram(
            "gamesocket_ai_search_seconds",
            "One AI search, from start to chosen move",
            ["game_type"],
            buckets=SEARCH_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "gamesocket_rejected_messages",
            "Socket messages answered with an error, by error code",
            ["code"],
            registry=registry,
        )
        self._moves_of: dict[str, Any] = {}  # game type -> its child of `moves`
        for status in GAME_STATUSES:
            self.games.labels(status)
        for role in ("player", "spectator"):
            self.connections.labels(role)

    def count_move(self, game_type: str) -> None:
        """One more move stored (`labels` is looked up once per game type, not per move)."""
        counter = self._moves_of.get(game_type)
        if counter is None:
            counter = self._moves_of[game_type] = self.moves.labels(game_type)
        counter.inc()

    async def render(self, store: GameStore, sockets: tuple[int, int]) -> bytes:
        """The exposition text, with the games counted now and `sockets` as (players,
        spectators) counted by the hub now: not on open and close, because a spectator
        who takes a seat becomes a player without reconnecting.
        """
        counts = await store.count_games()
        for status in GAME_STATUSES:
            self.games.labels(status).set(counts.get(status, 0))
        players, spectators = sockets
        self.connections.labels("player").set(players)
        self.connections.labels("spectator").set(spectators)
        return generate_latest(self.registry)


@route(
    "/metrics",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["server"],
    include_in_schema=False,
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format; HEAD answers with GET's headers and no body."""
    context = request.app.state["gamesocket"]
    body = await context.metrics.render(context.store, context.hub.socket_counts())
    # The header as prometheus_client spells it: given as a text/* media type, Litestar
    # would append a second "; charset=utf-8".
    headers = {"content-type": CONTENT_TYPE_LATEST}
    if request.method == HttpMethod.HEAD:
        return Response(b"", headers={**headers, "content-length": str(len(body))})
    return Response(body, headers=headers)
