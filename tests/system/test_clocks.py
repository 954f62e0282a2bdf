"""Clocks and abandoned games against real servers (PROTOCOL.md "Clocks", "Abandoned games").

Real uvicorn servers, real sockets and stores. The server and the tests share the
machine's clock, so a move's charge is bracketed exactly: its frame arrived after the
client sent it and before the server stored it (the update's `server_time_ms`).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest

import agents
import agents.pool
from agents import Connect4Agent
from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult
from games import Connect4State, GameState, TicTacToeState
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from socket_server.settings import Settings
from socket_server.store.base import Actor, EventRecord
from tests.pgutil import migrated_database
from tests.server_harness import Api, Client, ServerProcess, ServerThread, connect
from tests.system.test_cluster_processes import ClusterProcess, next_update, redis_run

SLACK_MS = 2  # whole-millisecond stamps on both sides
CLOCK_KEYS = {
    "initial_ms",
    "increment_ms",
    "delay_ms",
    "per_move_ms",
    "remaining_ms",
    "running",
    "server_time_ms",
}
# Longer than the clock sweep's interval (5 s): every process has armed the timer by then.
TWO_SWEEPS = {"initial_ms": 6000}
LONE_KING = {"fen": "4k3/8/8/8/8/8/8/4K2Q w - - 0 1"}  # white to move; black has a king only


def now_ms() -> int:
    return int(time.time() * 1000)


def at_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def seated(
    api: Api, game_type: str, clock: dict[str, Any] | None, **body: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A game with a guest in each seat (the second joined by REST): (game, first, second)."""
    first, second = await api.guest(), await api.guest()
    seat = {"tictactoe": "x", "connect4": "red", "chess": "white"}[game_type]
    game = await api.create(first, game_type, seats={seat: "me"}, clock=clock, **body)
    joined = await api.http.post(f"/api/games/{game['game_id']}/join", headers=second["headers"])
    assert joined.status_code == 200, joined.text
    return joined.json(), first, second


async def seated_on_sockets(
    server: ServerThread, api: Api, game_type: str, clock: dict[str, Any] | None
) -> tuple[dict[str, Any], Client, Client]:
    """A game whose second player joined by socket: (the join's update, first, second).

    The join's update carries the clock as it started: `server_time_ms` is its start.
    """
    first, second = await api.guest(), await api.guest()
    seat = {"tictactoe": "x", "connect4": "red", "chess": "white"}[game_type]
    game = await api.create(first, game_type, seats={seat: "me"}, clock=clock)
    a, b = await sockets(server, game, first, second)
    assert (await b.request(type="join", id="sit"))["version"] == 1
    update = await a.expect("update")
    assert update["version"] == 1 and update["clock"]["running"] == seat
    return update, a, b


def flag_of(view: dict[str, Any]) -> int:
    """When the running seat's flag falls, from a clock view outside any delay."""
    clock = view["clock"]
    return int(clock["server_time_ms"] + clock["remaining_ms"][clock["running"]])


async def sockets(
    server: ServerThread | ServerProcess, game: dict[str, Any], *users: dict[str, Any]
) -> list[Client]:
    clients = []
    for user in users:
        url = server.ws_url(game["game_type"], game["game_id"], token=user["access_token"])
        client = await connect(url)
        await client.expect("hello")
        await client.expect("state")
        clients.append(client)
    return clients


async def timed_move(client: Client, move: Any, wait_s: float) -> tuple[int, dict[str, Any]]:
    """Wait, send `move`; (when it was sent, its update)."""
    await asyncio.sleep(wait_s)
    sent = now_ms()
    reply = await client.request(type="move", move=move, id=f"m-{uuid.uuid4().hex[:8]}")
    assert reply["type"] == "ack", reply
    while True:
        update = await client.expect("update")
        if update["version"] == reply["version"]:
            return sent, update


def charged_between(before: dict[str, Any], sent: int, after: dict[str, Any]) -> tuple[int, int]:
    """The least and most time the mover can have used: from the clock's start (the
    previous update's `server_time_ms`) to the frame's arrival, which lies between the
    client's send and the server's store (this update's `server_time_ms`)."""
    since = before["clock"]["server_time_ms"]
    return sent - since - SLACK_MS, after["clock"]["server_time_ms"] - since + SLACK_MS


async def stored_events(server: ServerThread, game_id: str) -> list[EventRecord]:
    return await server.call(server.context.store.events_after(game_id, 0, Actor.SERVER))


async def wait_finished(api: Api, game_id: str, wait: float = 20) -> dict[str, Any]:
    return await api.wait_for(game_id, lambda s: s["status"] == "finished", wait=wait)


@pytest.fixture
async def api(server: ServerThread) -> AsyncIterator[Api]:
    client = Api(server.base_url)
    yield client
    await client.close()


# -- creating and reading ------------------------------------------------------------
@pytest.mark.parametrize(
    ("clock", "start"),
    [
        ({"initial_ms": 60_000, "increment_ms": 2000}, 60_000),
        ({"initial_ms": 30_000}, 30_000),
        ({"initial_ms": 45_000, "delay_ms": 3000}, 45_000),
        ({"per_move_ms": 86_400_000}, 86_400_000),
    ],
)
async def test_each_clock_kind_in_the_snapshot(api: Api, clock: dict[str, Any], start: int) -> None:
    alice = await api.guest()
    created = await api.create(alice, "chess", seats={"white": "me"}, clock=clock)
    view = created["clock"]
    assert set(view) == CLOCK_KEYS
    assert view["remaining_ms"] == {"white": start, "black": start}
    assert view["running"] is None  # waiting: no clock runs
    for name in ("initial_ms", "increment_ms", "delay_ms", "per_move_ms"):
        assert view[name] == clock.get(name, 0)

    bob = await api.guest()
    game_id = created["game_id"]
    joined = await api.http.post(f"/api/games/{game_id}/join", headers=bob["headers"])
    assert joined.status_code == 200
    first = joined.json()["clock"]
    await asyncio.sleep(0.3)
    before = now_ms()
    read = (await api.snapshot(game_id))["clock"]
    after = now_ms()
    assert read["running"] == first["running"] == "white"
    assert before - SLACK_MS <= read["server_time_ms"] <= after + SLACK_MS
    # Exact at server_time_ms: white's time went down by exactly the time between reads
    # (none of it within a delay).
    between = read["server_time_ms"] - first["server_time_ms"]
    assert between >= 300
    spent = first["remaining_ms"]["white"] - read["remaining_ms"]["white"]
    if clock.get("delay_ms"):
        assert read["remaining_ms"] == {"white": start, "black": start}
    else:
        assert spent == between
        assert read["remaining_ms"]["black"] == start


async def test_untimed_game_has_no_clock(api: Api) -> None:
    alice = await api.guest()
    assert (await api.create(alice, "tictactoe", seats={"x": "me"}))["clock"] is None


@pytest.mark.parametrize(
    "clock",
    [
        {"initial_ms": 999},
        {"per_move_ms": 500},
        {"initial_ms": 30 * 24 * 3600 * 1000 + 1},
        {"initial_ms": "60000"},
        {"initial_ms": True},
        {"initial_ms": 60_000, "increment_ms": 1000, "delay_ms": 1000},
        {"initial_ms": 60_000, "per_move_ms": 60_000},
        {"initial_ms": 60_000, "byoyomi_ms": 1000},
        {},
        [60_000],
        "blitz",
    ],
)
async def test_bad_clocks_are_refused_with_bad_message(api: Api, clock: Any) -> None:
    alice = await api.guest()
    reply = await api.http.post(
        "/api/games",
        json={"game_type": "tictactoe", "seats": {"x": "me"}, "clock": clock},
        headers=alice["headers"],
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "bad_message"


# -- arithmetic ----------------------------------------------------------------------
async def test_fischer_increment_charges_the_time_used(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(lag_credit_ms=0)
    api = Api(server.base_url)
    game, a, b = await seated_on_sockets(
        server, api, "tictactoe", {"initial_ms": 10_000, "increment_ms": 2000}
    )
    before = game
    for seat, client, move, wait in (("x", a, 4, 0.4), ("o", b, 0, 0.25), ("x", a, 8, 0.1)):
        had = before["clock"]["remaining_ms"][seat]
        sent, update = await timed_move(client, move, wait)
        least, most = charged_between(before, sent, update)
        assert least >= wait * 1000 - SLACK_MS
        left = update["clock"]["remaining_ms"][seat]
        assert had + 2000 - most <= left <= had + 2000 - least, (seat, least, most, left)
        assert update["clock"]["running"] != seat
        before = update
    assert before["clock"]["remaining_ms"]["x"] > 10_000 + 2 * 2000 - 600
    await api.close()


async def test_lag_credit_is_taken_off_each_human_move(api: Api, server: ServerThread) -> None:
    credit = server.settings.lag_credit_ms
    assert credit == 100
    game, a, _ = await seated_on_sockets(server, api, "connect4", {"initial_ms": 10_000})
    sent, update = await timed_move(a, 3, 0.3)
    least, most = charged_between(game, sent, update)
    left = update["clock"]["remaining_ms"]["red"]
    assert 10_000 - (most - credit) <= left <= 10_000 - (least - credit)


async def test_delay_is_not_counted_and_the_clock_stands_through_it(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(lag_credit_ms=0)
    api = Api(server.base_url)
    game, a, b = await seated_on_sockets(
        server, api, "tictactoe", {"initial_ms": 10_000, "delay_ms": 1000}
    )
    # Within the delay: remaining_ms stands at the full time, the move costs nothing.
    assert (await api.snapshot(game["game_id"]))["clock"]["remaining_ms"]["x"] == 10_000
    _, first = await timed_move(a, 4, 0.4)
    assert first["clock"]["remaining_ms"] == {"x": 10_000, "o": 10_000}
    assert first["clock"]["running"] == "o"
    # Past the delay: only the time beyond it is charged.
    sent, second = await timed_move(b, 0, 1.3)
    least, most = charged_between(first, sent, second)
    left = second["clock"]["remaining_ms"]["o"]
    assert 10_000 - (most - 1000) <= left <= 10_000 - (least - 1000)
    assert left < 10_000 - 250
    # x spent nothing beyond its delay, and o's move charged only o.
    assert second["clock"]["remaining_ms"]["x"] == 10_000
    await api.close()


async def test_per_move_allowance_is_fresh_for_each_move(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(lag_credit_ms=0)
    api = Api(server.base_url)
    game, a, b = await seated_on_sockets(server, api, "tictactoe", {"per_move_ms": 5000})
    sent, first = await timed_move(a, 4, 0.3)
    least, most = charged_between(game, sent, first)
    assert 5000 - most <= first["clock"]["remaining_ms"]["x"] <= 5000 - least
    assert first["clock"]["remaining_ms"]["o"] == 5000
    _, second = await timed_move(b, 0, 0.2)
    # x's allowance is whole again as its clock starts.
    assert second["clock"]["remaining_ms"]["x"] == 5000
    assert second["clock"]["running"] == "x"
    await api.close()


# -- flags ---------------------------------------------------------------------------
async def test_flag_with_nobody_connected(api: Api, server: ServerThread) -> None:
    game, alice, bob = await seated(api, "tictactoe", {"initial_ms": 1000})
    a, b = await sockets(server, game, alice, bob)
    _, moved = await timed_move(a, 4, 0)
    await a.connection.close()
    await b.connection.close()
    flag_at = moved["clock"]["server_time_ms"] + moved["clock"]["remaining_ms"]["o"]
    await asyncio.sleep(max(0, flag_at - now_ms() - 150) / 1000)
    assert (await api.snapshot(game["game_id"]))["status"] == "active"
    final = await wait_finished(api, game["game_id"])
    assert final["result"] == {"winner": "x", "reason": "timeout"}
    assert final["clock"]["remaining_ms"]["o"] == 0 and final["clock"]["running"] is None
    events = await stored_events(server, game["game_id"])
    assert [e.version for e in events] == [1, 2, 3]
    timeout = events[-1]
    assert (timeout.kind, timeout.seat, timeout.user_id) == ("timeout", "o", None)
    assert timeout.data == {"result": {"winner": "x", "reason": "timeout"}}
    assert 0 <= int(timeout.at.timestamp() * 1000) - flag_at <= 250


@pytest.mark.parametrize(
    ("flagged", "result"),
    [
        ("white", {"winner": None, "reason": "timeout_vs_insufficient_material"}),
        ("black", {"winner": "white", "reason": "timeout"}),
    ],
)
async def test_chess_flag_against_a_lone_king(
    api: Api, server: ServerThread, flagged: str, result: dict[str, Any]
) -> None:
    game, alice, _ = await seated(api, "chess", {"initial_ms": 1000}, options=LONE_KING)
    watcher = await connect(server.ws_url("chess", game["game_id"]))
    await watcher.expect("state")
    if flagged == "black":
        (a,) = await sockets(server, game, alice)
        await timed_move(a, "h1h2", 0)
        await a.connection.close()
    update = await watcher.expect("update")
    while update["event"]["kind"] != "timeout":
        update = await watcher.expect("update")
    assert update["event"] == {"kind": "timeout", "seat": flagged}
    assert update["result"] == result and update["status"] == "finished"


async def test_flag_during_a_restart_is_stored_on_start(tmp_path: Path, database_url: str) -> None:
    process = ServerProcess(tmp_path / "data", database_url)
    process.start()
    try:
        api = Api(process.base_url)
        game, _, _ = await seated(api, "tictactoe", {"initial_ms": 1500})
        await api.close()
        flag_at = flag_of(game)
        assert process.signal(signal.SIGKILL) == -signal.SIGKILL
        await asyncio.sleep(max(0, flag_at - now_ms() + 300) / 1000)
        started = now_ms()
        process.start()
        ready = now_ms()  # /health answers
        api = Api(process.base_url)
        final = await wait_finished(api, game["game_id"], wait=5)
        assert final["result"] == {"winner": "o", "reason": "timeout"}
        await api.close()
    finally:
        process.stop()
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT version, kind, seat, at FROM events WHERE game_id = ? ORDER BY version",
            (game["game_id"],),
        ).fetchall()
    assert [(v, k, s) for v, k, s, _ in rows] == [(1, "join", "o"), (2, "timeout", "x")]
    # Stored by the restarted server as it started (its timers armed from the store
    # before it serves), not at some later sweep.
    assert started <= at_ms(rows[-1][3]) <= ready + 500


async def test_a_late_move_stores_the_timeout_and_is_refused(
    api: Api, server: ServerThread
) -> None:
    """The move's frame arrived after the mover's flag, before the timer fired."""
    game, alice, _ = await seated(api, "tictactoe", {"initial_ms": 2000})
    flag_at = flag_of(game)
    late = server.context.service.move(
        Actor(user_id=alice["user_id"]), game["game_id"], 4, at_ms=flag_at + 1, request_id="late"
    )
    with pytest.raises(Exception, match="time ran out") as refused:
        await server.call(late)
    assert getattr(refused.value, "code", None) == "game_over"
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["result"] == {"winner": "o", "reason": "timeout"}
    assert snapshot["board"]["cells"][4] is None and snapshot["moves"] == 0
    # The timer that fires later finds nothing to store.
    await asyncio.sleep(max(0, flag_at - now_ms() + 300) / 1000)
    events = await stored_events(server, game["game_id"])
    assert [(e.version, e.kind) for e in events] == [(1, "join"), (2, "timeout")]


async def test_a_move_sent_at_the_flag_is_never_applied(api: Api, server: ServerThread) -> None:
    game, alice, bob = await seated(api, "tictactoe", {"initial_ms": 1000})
    a, b = await sockets(server, game, alice, bob)
    flag_at = flag_of(game)
    await asyncio.sleep(max(0, flag_at - now_ms()) / 1000)
    reply = await a.request(type="move", move=4, id="at-the-flag")
    assert reply["type"] == "error" and reply["code"] == "game_over", reply
    update = await b.expect("update")
    assert update["event"] == {"kind": "timeout", "seat": "x"}
    assert update["version"] == 2 and update["board"]["cells"][4] is None
    events = await stored_events(server, game["game_id"])
    assert [e.kind for e in events] == ["join", "timeout"]


# -- AI on a clock -------------------------------------------------------------------
@pytest.fixture
async def warm_search_pool(server: ServerThread) -> None:
    """The search pool's worker processes start on first use, and spawning one (seconds
    on a loaded machine) would count against the first AI move of a 3 s clock: the
    tests start one first, as any search since the process started would have."""
    await server.call(Connect4Agent(1).search(Connect4State.initial()))


async def test_a_server_starts_its_search_workers_with_it(
    start_server: Callable[..., ServerThread],
) -> None:
    agents.shutdown()  # no worker left from an earlier test
    start_server(ai_warm_up=True)
    pool = agents.pool.get_pool()
    for _ in range(300):
        if pool.started == pool.size:
            break
        await asyncio.sleep(0.05)
    assert pool.started == pool.size  # before any game asked for a search


@pytest.mark.parametrize(("game_type", "levels"), [("tictactoe", (5, 10)), ("connect4", (5, 10))])
@pytest.mark.usefixtures("warm_search_pool")
async def test_ai_vs_ai_on_a_3s_clock_never_flags(
    api: Api, game_type: str, levels: tuple[int, int]
) -> None:
    seats = dict(
        zip(
            {"tictactoe": ("x", "o"), "connect4": ("red", "yellow")}[game_type],
            ({"kind": "ai", "level": level} for level in levels),
            strict=True,
        )
    )
    alice = await api.guest()
    game = await api.create(
        alice, game_type, seats=seats, clock={"initial_ms": 3000}, options={"ai_delay_ms": 300}
    )
    final = await wait_finished(api, game["game_id"], wait=30)
    assert final["result"]["reason"] not in ("timeout", "timeout_vs_insufficient_material")
    assert all(0 < left < 3000 for left in final["clock"]["remaining_ms"].values())


@pytest.mark.usefixtures("warm_search_pool")
async def test_human_vs_ai_on_a_3s_clock_the_ai_does_not_flag(
    api: Api, server: ServerThread
) -> None:
    alice = await api.guest()
    game = await api.create(
        alice,
        "connect4",
        seats={"red": "me", "yellow": {"kind": "ai", "level": 7}},
        clock={"initial_ms": 3000, "increment_ms": 100},
    )
    (a,) = await sockets(server, game, alice)
    snapshot = game
    while snapshot["status"] == "active":
        if snapshot["turn"] == "red":
            reply = await a.request(
                type="move", move=snapshot["legal_moves"][0], id=uuid.uuid4().hex
            )
            if reply["type"] == "error":
                assert reply["code"] == "game_over"  # the AI's last move came first
        snapshot = await a.expect("update", wait=15)
    assert snapshot["result"]["reason"] not in ("timeout", "timeout_vs_insufficient_material")


class SlowTicTacToe(TicTacToeState):
    game_type: ClassVar[str] = "slow_tictactoe"


class LoopBlockingAgent(Agent):
    """A user's agent that ignores its time limit and blocks the event loop meanwhile:
    its move reaches the store after its flag, before the flag's timer could run."""

    game_type: ClassVar[str] = "slow_tictactoe"
    block_s: ClassVar[float] = 1.4

    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        time.sleep(self.block_s)  # noqa: ASYNC251 - the point: the loop cannot fire the timer
        move = state.legal_moves()[0]
        return SearchResult(move=move, info=SearchInfo(depth=1, score=0, pv=[move], nodes=1))


async def test_an_ai_move_after_its_flag_is_never_applied(
    start_server: Callable[..., ServerThread], server_settings: Settings
) -> None:
    app = create_app(server_settings)
    GameSocketFactory().create_socket(app, LoopBlockingAgent, SlowTicTacToe, "/ws/slow_tictactoe")
    server = start_server(app)
    api = Api(server.base_url)
    alice = await api.guest()
    game = await api.create(
        alice,
        "slow_tictactoe",
        seats={"x": "me", "o": {"kind": "ai", "level": 1}},
        clock={"initial_ms": 1000},
    )
    (a,) = await sockets(server, game, alice)
    assert (await a.request(type="move", move=4, id="m1"))["version"] == 1
    final = await a.expect("update", wait=10)
    while final["version"] < 2:
        final = await a.expect("update", wait=10)
    assert final["event"] == {"kind": "timeout", "seat": "o"}
    assert final["result"] == {"winner": "x", "reason": "timeout"}
    await asyncio.sleep(0.3)
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["version"] == 2 and snapshot["moves"] == 1
    assert [e.kind for e in await stored_events(server, game["game_id"])] == ["move", "timeout"]
    await api.close()


# -- claims --------------------------------------------------------------------------
async def test_claim_after_the_opponent_left_long_enough(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(claim_after_seconds=2)
    api = Api(server.base_url)
    game, alice, bob = await seated(api, "tictactoe", None)
    a, b = await sockets(server, game, alice, bob)
    await b.connection.close()
    left = time.monotonic()
    await api.wait_for_connections(game["game_id"], players=1, spectators=0)
    early = await a.request(type="claim_victory", id="too-soon")
    assert early["type"] == "error" and early["code"] == "forbidden", early
    await asyncio.sleep(max(0, 2.1 - (time.monotonic() - left)))
    claimed = await a.request(type="claim_victory", id="claim")
    assert claimed == {"type": "ack", "ref": "claim", "version": 2}
    update = await a.expect("update")
    assert update["event"] == {"kind": "claim", "seat": "x"}
    assert update["result"] == {"winner": "x", "reason": "abandoned"}
    claim = (await stored_events(server, game["game_id"]))[-1]
    assert (claim.kind, claim.seat, claim.user_id) == ("claim", "x", alice["user_id"])
    await api.close()


async def test_claim_is_refused_while_the_opponent_is_online(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(claim_after_seconds=1)
    api = Api(server.base_url)
    game, alice, bob = await seated(api, "tictactoe", None)
    a, _b = await sockets(server, game, alice, bob)
    await asyncio.sleep(1.3)
    refused = await a.request(type="claim_victory", id="online")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    assert (await api.snapshot(game["game_id"]))["status"] == "active"
    await api.close()


async def test_claim_against_an_ai_is_refused(start_server: Callable[..., ServerThread]) -> None:
    server = start_server(claim_after_seconds=0)
    api = Api(server.base_url)
    alice = await api.guest()
    game = await api.create(alice, "tictactoe", seats={"x": "me", "o": {"kind": "ai", "level": 1}})
    (a,) = await sockets(server, game, alice)
    refused = await a.request(type="claim_victory", id="vs-ai")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    await api.close()


async def test_claim_with_every_seat_held_by_the_caller_is_refused(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(claim_after_seconds=0)
    api = Api(server.base_url)
    alice = await api.guest()
    game = await api.create(alice, "tictactoe", seats={"x": "me"})
    path = f"/api/games/{game['game_id']}"
    joined = await api.http.post(f"{path}/join", json={"seat": "o"}, headers=alice["headers"])
    assert joined.status_code == 200 and joined.json()["status"] == "active"
    refused = await api.http.post(f"{path}/claim", headers=alice["headers"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await api.snapshot(game["game_id"]))["status"] == "active"
    await api.close()


async def test_rest_claim_counts_from_the_games_last_change(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(claim_after_seconds=1.5)
    api = Api(server.base_url)
    game, _, bob = await seated(api, "tictactoe", None)  # nobody ever connected
    path = f"/api/games/{game['game_id']}/claim"
    early = await api.http.post(path, headers=bob["headers"])
    assert early.status_code == 403 and early.json()["error"]["code"] == "forbidden"
    stranger = await api.guest()
    await asyncio.sleep(1.6)
    assert (await api.http.post(path, headers=stranger["headers"])).status_code == 403
    claimed = await api.http.post(path, headers=bob["headers"], json={"id": "c1"})
    assert claimed.status_code == 200 and claimed.json() == {"version": 2}
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["result"] == {"winner": "o", "reason": "abandoned"}
    again = await api.http.post(path, headers=bob["headers"], json={"id": "c1"})
    assert again.status_code == 200 and again.json() == {"version": 2}  # a retry lands once
    await api.close()


# -- Postgres, one process and two -----------------------------------------------------
@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with migrated_database() as url:
        yield url


async def postgres_events(url: str, game_id: str) -> list[tuple[int, str, str | None]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select version, kind, seat from public.game_events where game_id = $1"
            " order by version",
            uuid.UUID(game_id),
        )
    finally:
        await conn.close()
    return [(row["version"], row["kind"], row["seat"]) for row in rows]


async def test_late_move_on_postgres_stores_the_timeout_as_the_server(
    postgres_url: str, start_server: Callable[..., ServerThread]
) -> None:
    server = start_server(database_url=postgres_url)
    api = Api(server.base_url)
    game, alice, _ = await seated(api, "tictactoe", {"initial_ms": 2000})
    flag_at = flag_of(game)
    late = server.context.service.move(
        Actor(user_id=alice["user_id"]), game["game_id"], 4, at_ms=flag_at + 1
    )
    with pytest.raises(Exception, match="time ran out") as refused:
        await server.call(late)
    assert getattr(refused.value, "code", None) == "game_over"
    assert await postgres_events(postgres_url, game["game_id"]) == [
        (1, "join", "o"),
        (2, "timeout", "x"),
    ]
    await api.close()


async def test_flag_seen_by_two_processes_is_stored_once(tmp_path: Path) -> None:
    """Both processes arm the game's timer (one by its own commit, the other by its
    sweep, within SWEEP_INTERVAL of 5 s); both fire at the flag; one timeout lands."""
    async with redis_run() as (_redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        servers[0].start()  # creates the guest secret the second one reads
        servers[1].start()
        apis = [Api(server.base_url) for server in servers]
        try:
            alice, bob = await apis[0].guest(), await apis[1].guest()
            game = await apis[0].create(alice, "tictactoe", seats={"x": "me"}, clock=TWO_SWEEPS)
            (a,) = await sockets(servers[0], game, alice)
            (b,) = await sockets(servers[1], game, bob)
            assert (await b.request(type="join", id="sit"))["version"] == 1
            assert (await a.request(type="move", move=4, id="m1"))["version"] == 2
            for client in (a, b):
                moved = await next_update(client, 2)
            await asyncio.sleep(max(0, flag_of(moved) - now_ms() + 1000) / 1000)
            finals = [await next_update(client, 3) for client in (a, b)]
            assert finals[0] == finals[1]
            assert finals[0]["event"] == {"kind": "timeout", "seat": "o"}
            assert finals[0]["result"] == {"winner": "x", "reason": "timeout"}
            for client in (a, b):  # nothing after it
                with pytest.raises(TimeoutError):
                    await client.expect("update", wait=0.5)
            assert await postgres_events(url, game["game_id"]) == [
                (1, "join", "o"),
                (2, "move", "x"),
                (3, "timeout", "o"),
            ]
        finally:
            for api in apis:
                await api.close()
            for server in servers:
                server.stop()
