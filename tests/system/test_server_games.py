"""Whole games over real sockets: humans, spectators, the AI, and a game added by a user."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import pytest

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from games import GameResult, GameState, IllegalMove
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from tests.server_harness import Api, Client, ServerThread, connect

FIRST_SEATS = {"tictactoe": ("x", "o"), "connect4": ("red", "yellow"), "chess": ("white", "black")}
# Few plies to the end whatever is played: rooks only, fifty-move counter at 96.
SHORT_CHESS = {"fen": "4k3/8/8/8/8/8/R7/4K2r w - - 96 60"}


async def seated_pair(
    api: Api, server: ServerThread, game_type: str, **body: Any
) -> tuple[dict[str, Any], Client, Client]:
    """A game with the creator in the first seat and a second player joined by socket."""
    alice, bob = await api.guest(), await api.guest()
    first, _ = FIRST_SEATS[game_type]
    game = await api.create(alice, game_type, seats={first: "me"}, **body)
    a = await connect(server.ws_url(game_type, game["game_id"], token=alice["access_token"]))
    b = await connect(server.ws_url(game_type, game["game_id"], token=bob["access_token"]))
    for client in (a, b):
        assert (await client.expect("hello"))["game_id"] == game["game_id"]
        assert (await client.expect("state"))["version"] == 0
    joined = await b.request(type="join", id="join-1")
    assert joined == {"type": "ack", "ref": "join-1", "version": 1}
    return game, a, b


@pytest.mark.parametrize(
    ("game_type", "moves", "result"),
    [
        ("tictactoe", [0, 3, 1, 4, 2], {"winner": "x", "reason": "three_in_a_row"}),
        ("connect4", [0, 1, "0", 1, 0, 1, 0], {"winner": "red", "reason": "four_in_a_row"}),
        ("chess", ["f2f3", "e5", "g4", "d8h4"], {"winner": "black", "reason": "checkmate"}),
    ],
)
async def test_full_game_seen_in_order_by_a_spectator(
    api: Api,
    server: ServerThread,
    game_type: str,
    moves: list[Any],
    result: dict[str, Any],
) -> None:
    game, a, b = await seated_pair(api, server, game_type)
    watcher = await connect(server.ws_url(game_type, game["game_id"]))
    hello = await watcher.expect("hello")
    assert hello["you"] == {"user_id": None, "seat": None, "role": "spectator"}
    assert (await watcher.expect("state"))["version"] == 1
    for index, move in enumerate(moves):
        player = (a, b)[index % 2]
        reply = await player.request(type="move", move=move, id=f"m{index}")
        assert reply == {"type": "ack", "ref": f"m{index}", "version": index + 2}
    updates = []
    while len(updates) < len(moves):
        updates.append(await watcher.expect("update"))
    assert [u["version"] for u in updates] == list(range(2, len(moves) + 2))
    assert all(u["event"]["kind"] == "move" for u in updates)
    final = updates[-1]
    assert final["status"] == "finished" and final["result"] == result
    assert final["turn"] is None and final["legal_moves"] == []
    assert final["moves"] == len(moves)
    if game_type == "chess":
        assert final["last_move"] == {"seat": "black", "move": "d8h4", "san": "Qh4#"}
        assert final["board"]["san"] == ["f3", "e5", "g4", "Qh4#"]
        assert updates[1]["event"] == {"kind": "move", "seat": "black", "move": "e7e5", "san": "e5"}
        pgn = await api.http.get(f"/api/games/{game['game_id']}/pgn")
        assert pgn.status_code == 200 and "1. f3 e5 2. g4 Qh4# 0-1" in pgn.text
    else:
        assert final["last_move"]["move"] == int(moves[-1])
    log = (await api.http.get(f"/api/games/{game['game_id']}/moves")).json()
    assert [entry["version"] for entry in log] == list(range(2, len(moves) + 2))
    assert await api.snapshot(game["game_id"]) == {
        k: v for k, v in final.items() if k not in ("type", "event")
    }


@pytest.mark.parametrize("game_type", ["tictactoe", "connect4", "chess"])
async def test_human_against_the_ai_to_the_end(
    api: Api, server: ServerThread, game_type: str
) -> None:
    human_seat, ai_seat = FIRST_SEATS[game_type]
    user = await api.guest()
    options = SHORT_CHESS if game_type == "chess" else None
    game = await api.create(
        user,
        game_type,
        seats={human_seat: "me", ai_seat: {"kind": "ai", "level": 1}},
        options=options,
    )
    client = await connect(server.ws_url(game_type, game["game_id"], token=user["access_token"]))
    assert (await client.expect("hello"))["you"]["role"] == "player"
    versions = []
    thinking = 0
    while True:
        message = await client.recv(wait=60)
        thinking += message["type"] == "thinking"
        if message["type"] not in ("state", "update"):
            continue
        versions.append(message["version"])
        if message["status"] == "finished":
            break
        if message["turn"] == human_seat:
            await client.send(
                type="move", move=message["legal_moves"][0], id=f"v{message['version']}"
            )
    assert versions == list(range(versions[0], versions[-1] + 1))
    ai_moves = sum(
        1 for m in client.seen if m["type"] == "update" and m["event"]["seat"] == ai_seat
    )
    assert ai_moves >= 1 and thinking >= ai_moves
    thought = next(m for m in client.seen if m["type"] == "thinking")
    assert thought["seat"] == ai_seat and isinstance(thought["pv"], list)
    assert {"depth", "score", "nodes"} <= thought.keys()


@pytest.mark.parametrize("game_type", ["tictactoe", "connect4", "chess"])
async def test_ai_against_ai_runs_to_the_end_without_watchers(
    api: Api, server: ServerThread, game_type: str
) -> None:
    user = await api.guest()
    first, second = FIRST_SEATS[game_type]
    options = {"ai_delay_ms": 5, **(SHORT_CHESS if game_type == "chess" else {})}
    seats = {first: {"kind": "ai", "level": 1}, second: {"kind": "ai", "level": 2}}
    game = await api.create(user, game_type, seats=seats, options=options)
    assert game["status"] == "active"
    final = await api.wait_for(game["game_id"], lambda s: s["status"] == "finished", wait=90)
    assert final["result"]["reason"] in {
        "three_in_a_row",
        "four_in_a_row",
        "board_full",
        "checkmate",
        "stalemate",
        "insufficient_material",
        "fifty_moves",
        "threefold_repetition",
    }
    log = (await api.http.get(f"/api/games/{game['game_id']}/moves")).json()
    assert len(log) == final["moves"] == final["version"]
    assert [entry["seat"] for entry in log[:2]] == [first, second]


async def test_ai_against_ai_is_paced_by_ai_delay_ms(api: Api, server: ServerThread) -> None:
    user = await api.guest()
    seats = {"x": {"kind": "ai", "level": 10}, "o": {"kind": "ai", "level": 10}}
    game = await api.create(user, "tictactoe", seats=seats, options={"ai_delay_ms": 150})
    await api.wait_for(game["game_id"], lambda s: s["status"] == "finished", wait=30)
    log = (await api.http.get(f"/api/games/{game['game_id']}/moves")).json()
    times = [datetime.fromisoformat(entry["at"]) for entry in log]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert len(log) == 9 and min(gaps) >= 0.14  # perfect play draws; each move waited


async def test_ai_move_plays_the_callers_seat_once(api: Api, server: ServerThread) -> None:
    game, a, _ = await seated_pair(api, server, "tictactoe")
    reply = await a.request(type="ai_move", level=10, id="help")
    assert reply == {"type": "ack", "ref": "help", "version": 2}
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["moves"] == 1 and snapshot["turn"] == "o"
    assert snapshot["last_move"]["seat"] == "x"
    refused = await a.request(type="ai_move", id="again")
    assert refused["code"] == "not_your_turn"
    assert (await api.snapshot(game["game_id"]))["version"] == 2


# -- a game added through the factory --------------------------------------------------
class NimState(GameState):
    """Take 1..3 stones; whoever takes the last stone wins."""

    game_type: ClassVar[str] = "nim"
    seats: ClassVar[tuple[str, ...]] = ("first", "second")
    stones: int = 7

    @classmethod
    def initial(cls, options: Mapping[str, Any] | None = None) -> Self:
        rules = cls._check_option_keys(options, known={"stones"})
        return cls(stones=int(rules.get("stones", 7)))

    def legal_moves(self) -> list[int]:  # type: ignore[override]
        return [] if self.result else [n for n in (1, 2, 3) if n <= self.stones]

    def parse_move(self, raw: Any) -> int:
        self._require_active()
        if not isinstance(raw, int) or raw not in self.legal_moves():
            raise IllegalMove(f"take 1..{min(3, self.stones)} stones, not {raw!r}")
        return raw

    def board(self) -> dict[str, Any]:
        return {"stones": self.stones}

    def apply(self, move: Any) -> Self:
        taken = self.parse_move(move)
        seat = self.turn
        left = self.stones - taken
        result = GameResult(winner=seat, reason="board_full") if left == 0 else None
        return self.model_copy(
            update={"stones": left, "history": (*self.history, taken), "result": result}
        )


class NimAgent(Agent):
    game_type: ClassVar[str] = "nim"

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        assert isinstance(state, NimState)
        take = state.stones % 4 or 1  # leave a multiple of four when possible
        info = SearchInfo(depth=1, score=1 if state.stones % 4 else -1, pv=[take], nodes=3)
        if on_progress is not None:
            on_progress(info)
        await asyncio.sleep(0)
        return SearchResult(move=take, info=info)


async def test_a_custom_game_added_through_the_factory(
    start_server: Callable[..., ServerThread], server_settings: Any
) -> None:
    app = create_app(server_settings)
    nim = GameSocketFactory().create_socket(app, NimAgent, NimState, "/ws/nim")
    assert app.state["gamesocket"].game_types.state_class("nim") is NimState
    server = start_server(app)
    api = Api(server.base_url)
    try:
        user = await api.guest()
        game = await api.create(
            user, "nim", seats={"first": "me", "second": {"kind": "ai", "level": 1}}
        )
        assert game["board"] == {"stones": 7} and game["turn"] == "first"
        client = await connect(server.ws_url("nim", game["game_id"], token=user["access_token"]))
        await client.expect("hello")
        await client.expect("state")
        assert len(nim.active_connections[game["game_id"]]) == 1
        bad = await client.request(type="move", move=5, id="too-many")
        assert bad["code"] == "illegal_move"
        assert (await client.request(type="move", move=3, id="m1"))["version"] == 1
        ours = await client.expect("update")
        assert ours["version"] == 1 and ours["board"] == {"stones": 4}
        after_ai = await client.expect("update")  # no winning take from 4: the AI takes 1
        assert after_ai["event"]["seat"] == "second" and after_ai["board"]["stones"] == 3
        assert (await client.request(type="move", move=3, id="m2"))["version"] == 3
        final = await client.expect("update")
        assert final["result"] == {"winner": "first", "reason": "board_full"}
        wrong_route = await connect(server.ws_url("tictactoe", game["game_id"]))
        assert await wrong_route.closed_with() == 4404

        # The seed's surface of the per-type server.
        game_id = game["game_id"]
        assert list(nim.connection_games.values()) == [game_id]
        await server.call(nim.broadcast_to_thread(game_id, {"type": "notice", "text": "hi"}))
        assert await client.expect("notice") == {"type": "notice", "text": "hi"}
        agent = nim.get_or_create_agent(game_id, {"level": 3})
        assert nim.get_or_create_agent(game_id, {"level": 3}) is agent and agent.level == 3
        nim.cleanup(game_id)
        assert game_id not in nim.agents
    finally:
        await api.close()
