"""Every error code and close code of PROTOCOL.md, provoked against a real server.

After each refusal the game is fetched again and compared: a rejected message changes
nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, ClassVar

from games import TicTacToeState
from socket_server.app import create_app
from socket_server.factory import GameSocketFactory
from socket_server.protocol import ErrorCode
from socket_server.rest import HTTP_STATUS
from tests.server_harness import Api, Client, ServerThread, connect


async def tictactoe_pair(
    api: Api, server: ServerThread, game_type: str = "tictactoe"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Client, Client]:
    """An active game: alice (x) and bob (o), both connected and past hello/state."""
    alice, bob = await api.guest(), await api.guest()
    game = await api.create(alice, game_type, seats={"x": "me"})
    game_id = game["game_id"]
    a = await connect(server.ws_url(game_type, game_id, token=alice["access_token"]))
    b = await connect(server.ws_url(game_type, game_id, token=bob["access_token"]))
    for client in (a, b):
        await client.expect("hello")
        await client.expect("state")
    assert (await b.request(type="join", seat="o", id="sit"))["version"] == 1
    return game, alice, bob, a, b


async def test_every_error_code_leaves_the_game_unchanged(api: Api, server: ServerThread) -> None:
    game, _alice, _bob, a, b = await tictactoe_pair(api, server)
    game_id = game["game_id"]
    assert (await a.request(type="move", move=4, id="first"))["version"] == 2
    before = await api.snapshot(game_id)
    stranger = await api.guest()
    s = await connect(server.ws_url("tictactoe", game_id, token=stranger["access_token"]))
    await s.expect("state")
    anon = await connect(server.ws_url("tictactoe", game_id))
    await anon.expect("state")

    async def refused(client: Client, code: str, **message: Any) -> None:
        reply = await client.request(**message)
        assert reply["type"] == "error" and reply["code"] == code, (message, reply)
        assert reply["ref"] == message["id"] and reply["message"]

    await refused(b, "bad_message", type="move", move=[1], id="wrong-type")
    await refused(b, "bad_message", type="move", move=1, version="2", id="str-version")
    await refused(b, "bad_message", type="draw", action="maybe", id="bad-action")
    await refused(b, "unknown_type", type="teleport", id="what")
    await refused(anon, "unauthorized", type="move", move=0, id="anon-move")
    await refused(anon, "unauthorized", type="join", id="anon-join")
    await refused(s, "seat_taken", type="join", id="full")
    await refused(s, "seat_taken", type="join", seat="x", id="taken")
    await refused(s, "forbidden", type="move", move=0, id="not-seated")
    await refused(a, "not_your_turn", type="move", move=0, id="twice")
    await refused(b, "illegal_move", type="move", move=4, id="occupied")
    await refused(b, "illegal_move", type="move", move=9, id="off-board")
    await refused(b, "stale_version", type="move", move=0, version=1, id="old")
    await refused(b, "illegal_move", type="draw", action="accept", id="no-offer")
    await refused(s, "forbidden", type="abort", id="abort-stranger")
    await refused(a, "forbidden", type="abort", id="abort-started")

    # Frames that cannot carry a usable id: answered without `ref`.
    for frame, code in [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"type": 5}', "bad_message"),
        (json.dumps({"type": "ping", "id": "x" * 65}), "bad_message"),
    ]:
        await b.connection.send(frame)
        reply = await b.expect("error")
        assert reply["code"] == code and "ref" not in reply
    await b.send(type="ping")
    assert (await b.expect("pong")) == {"type": "pong"}
    assert await api.snapshot(game_id) == before

    # not_found over REST; game_over after the end.
    missing = await api.http.get("/api/games/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for cell, client in ((0, b), (1, a), (2, b), (7, a)):
        await client.request(type="move", move=cell, id=f"play{cell}")
    finished = await api.snapshot(game_id)
    assert finished["result"] == {"winner": "x", "reason": "three_in_a_row"}
    await refused(b, "game_over", type="move", move=8, id="late")
    await refused(b, "game_over", type="resign", id="late-resign")
    assert await api.snapshot(game_id) == finished


async def test_rest_errors_use_the_protocol_codes_and_statuses(
    api: Api, server: ServerThread
) -> None:
    alice, bob = await api.guest(), await api.guest()
    game = await api.create(alice, "tictactoe", seats={"x": "me"})
    url = f"/api/games/{game['game_id']}"
    cases = [
        ("post", "/api/games", {"game_type": "go"}, alice, 400, "bad_message"),
        ("post", "/api/games", {"game_type": 3}, alice, 400, "bad_message"),
        ("post", "/api/games", {"game_type": "tictactoe"}, None, 401, "unauthorized"),
        ("post", f"{url}/moves", {"move": 0}, bob, 403, "forbidden"),
        ("post", f"{url}/moves", {"move": 0}, alice, 409, "not_your_turn"),
    ]
    for method, path, body, user, status, code in cases:
        headers = user["headers"] if user else {}
        reply = await api.http.request(method, path, json=body, headers=headers)
        assert reply.status_code == status, (path, body, reply.text)
        assert reply.json()["error"]["code"] == code
    bad_token = await api.http.get(url, headers={"Authorization": "Bearer nonsense"})
    assert bad_token.status_code == 401 and bad_token.json()["error"]["code"] == "unauthorized"
    joined = await api.http.post(f"{url}/join", headers=bob["headers"])  # no body: first free
    assert joined.status_code == 200 and joined.json()["status"] == "active"
    again = await api.http.post(f"{url}/join", json={"seat": "x"}, headers=bob["headers"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "seat_taken"
    play = await api.http.post(f"{url}/moves", json={"move": 9}, headers=alice["headers"])
    assert play.status_code == 422 and play.json()["error"]["code"] == "illegal_move"
    play = await api.http.post(f"{url}/moves", json={"move": "4"}, headers=alice["headers"])
    assert play.status_code == 200 and play.json() == {"version": 2}
    stale = await api.http.post(
        f"{url}/moves", json={"move": 0, "version": 1}, headers=bob["headers"]
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_version"
    pgn = await api.http.get(f"{url}/pgn")
    assert pgn.status_code == 404 and pgn.json()["error"]["code"] == "not_found"
    resign = await api.http.post(f"{url}/resign", json={}, headers=bob["headers"])
    assert resign.status_code == 200 and resign.json() == {"version": 3}
    over = await api.snapshot(game["game_id"])
    assert over["result"] == {"winner": "x", "reason": "resignation"}
    late = await api.http.post(f"{url}/moves", json={"move": 0}, headers=bob["headers"])
    assert late.status_code == 409 and late.json()["error"]["code"] == "game_over"
    assert set(HTTP_STATUS) == set(ErrorCode)  # every protocol error has its HTTP status
    schema = (await api.http.get("/schema")).json()
    assert "/api/games/{game_id}/moves" in schema["paths"]
    assert "CreateGame" in json.dumps(schema["components"])
    assert (await api.http.get("/health")).json() == {"status": "ok"}
    assert (await api.http.get("/api/config")).json()["mode"] == "embedded"


async def test_close_codes(api: Api, start_server: Callable[..., ServerThread]) -> None:
    server = start_server(idle_timeout_seconds=0.6, max_message_bytes=2048)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        public = await api.create(alice, "tictactoe", seats={"x": "me"})
        private = await api.create(alice, "tictactoe", seats={"x": "me"}, public=False)
        stranger = await api.guest()

        async def close_code(url: str, *frames: str) -> int | None:
            client = await connect(url)
            for frame in frames:
                await client.connection.send(frame)
            return await client.closed_with()

        unknown = "00000000-0000-0000-0000-000000000000"
        assert await close_code(server.ws_url("tictactoe", unknown)) == 4404
        assert await close_code(server.ws_url("tictactoe", "not-a-uuid")) == 4404
        assert await close_code(server.ws_url("chess", public["game_id"])) == 4404
        assert await close_code(server.ws_url("go", public["game_id"])) == 4404
        assert (
            await close_code(server.ws_url("tictactoe", public["game_id"], token="x.y.z")) == 4401
        )
        assert await close_code(server.ws_url("tictactoe", private["game_id"])) == 4401
        token = stranger["access_token"]
        assert await close_code(server.ws_url("tictactoe", private["game_id"], token=token)) == 4403
        # Idle: hello and state arrive, then nothing is sent for longer than the limit.
        assert await close_code(server.ws_url("tictactoe", public["game_id"])) == 4408
        big = json.dumps({"type": "ping", "pad": "x" * 4096})
        assert await close_code(server.ws_url("tictactoe", public["game_id"]), big) == 1009
        listed = (await api.http.get("/api/games", headers=stranger["headers"])).json()
        assert private["game_id"] not in {g["game_id"] for g in listed}
        assert public["game_id"] in {g["game_id"] for g in listed}
        mine = (await api.http.get("/api/games", headers=alice["headers"])).json()
        assert private["game_id"] in {g["game_id"] for g in mine}
        hidden = await api.http.get(f"/api/games/{private['game_id']}", headers=stranger["headers"])
        assert hidden.status_code == 403
        assert await api.snapshot(public["game_id"]) == public
    finally:
        await api.close()


async def test_flooding_is_refused_then_closed(
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(rate_limit_per_second=1.0, rate_limit_burst=5)
    api = Api(server.base_url)
    try:
        alice = await api.guest()
        game = await api.create(alice, "tictactoe", seats={"x": "me"})
        client = await connect(server.ws_url("tictactoe", game["game_id"]))
        for _ in range(30):
            await client.send(type="ping")
        code = await client.closed_with()
        pongs = sum(1 for m in client.seen if m["type"] == "pong")
        limited = [m for m in client.seen if m["type"] == "error"]
        assert code == 4429
        assert 5 <= pongs <= 6
        assert limited and all(m["code"] == "rate_limited" for m in limited)
        assert await api.snapshot(game["game_id"]) == game
    finally:
        await api.close()


async def test_a_move_resent_after_reconnect_is_applied_once(
    api: Api, server: ServerThread
) -> None:
    game, alice, _bob, a, _b = await tictactoe_pair(api, server)
    url = server.ws_url("tictactoe", game["game_id"], token=alice["access_token"], since=1)
    assert (await a.request(type="move", move=4, id="once")) == {
        "type": "ack",
        "ref": "once",
        "version": 2,
    }
    await a.connection.close()
    again = await connect(url)
    assert (await again.expect("hello"))["you"]["seat"] == "x"
    assert (await again.expect("update"))["version"] == 2  # the missed update, not a state
    assert [m["type"] for m in again.seen if m["type"] != "presence"] == ["hello", "update"]
    reply = await again.request(type="move", move=4, id="once")
    assert reply == {"type": "ack", "ref": "once", "version": 2}
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["version"] == 2 and snapshot["moves"] == 1


async def test_eight_racing_moves_on_one_version(
    api: Api, start_server: Callable[..., ServerThread]
) -> None:
    # Two servers on one store: the store's version check decides, not the faster process.
    first, second = start_server(), start_server()
    game, alice, _bob, a, _b = await tictactoe_pair(Api(first.base_url), first)
    clients = [a]
    for index in range(7):
        host = (first, second)[index % 2]
        client = await connect(
            host.ws_url("tictactoe", game["game_id"], token=alice["access_token"])
        )
        await client.expect("state")
        clients.append(client)
    replies = await asyncio.gather(
        *(
            client.request(type="move", move=cell, version=1, id=f"race-{cell}")
            for cell, client in enumerate(clients)
        )
    )
    acks = [r for r in replies if r["type"] == "ack"]
    assert len(acks) == 1 and acks[0]["version"] == 2
    assert sorted(r.get("code") for r in replies if r["type"] == "error") == ["stale_version"] * 7
    snapshot = await Api(second.base_url).snapshot(game["game_id"])
    assert snapshot["version"] == 2 and snapshot["moves"] == 1


async def test_since_replays_missed_updates(
    api: Api, start_server: Callable[..., ServerThread]
) -> None:
    server = start_server()
    api = Api(server.base_url)
    try:
        game, _alice, _bob, a, b = await tictactoe_pair(api, server)
        game_id = game["game_id"]
        watcher = await connect(server.ws_url("tictactoe", game_id))
        await watcher.expect("state")
        for index, cell in enumerate([4, 0, 8, 2]):
            await (a, b)[index % 2].request(type="move", move=cell, id=f"c{cell}")
        live = [await watcher.expect("update") for _ in range(4)]
        assert [u["version"] for u in live] == [2, 3, 4, 5]

        late = await connect(server.ws_url("tictactoe", game_id, since=3))
        await late.expect("hello")
        replayed = [await late.expect("update", "state") for _ in range(2)]
        assert replayed == live[2:]
        assert "state" not in {m["type"] for m in late.seen}
        current = await connect(server.ws_url("tictactoe", game_id, since=5))
        await current.expect("hello")
        await current.send(type="ping")
        assert (await current.expect("pong", "state", "update"))["type"] == "pong"
        assert {m["type"] for m in current.seen} <= {"hello", "presence", "pong"}
        await current.send(type="sync", since=1)
        assert [await current.expect("update") for _ in range(4)] == live
        await current.send(type="sync")
        state = await current.expect("state")
        assert state["version"] == 5 and state["board"] == live[-1]["board"]
    finally:
        await api.close()
    # A fresh server holds no history: the updates are rebuilt from the stored events.
    fresh = start_server()
    rebuilt = await connect(fresh.ws_url("tictactoe", game_id, since=0))
    await rebuilt.expect("hello")
    updates = [await rebuilt.expect("update") for _ in range(5)]
    assert updates[0]["event"] == {"kind": "join", "seat": "o"}
    assert updates[0]["seats"]["o"] is not None and updates[0]["status"] == "active"
    assert updates[1:] == live


async def test_draw_offer_decline_and_accept(api: Api, server: ServerThread) -> None:
    game, _alice, _bob, a, b = await tictactoe_pair(api, server)
    assert (await a.request(type="draw", action="offer", id="o1"))["version"] == 1
    offer = await b.expect("draw_offer")
    assert offer["seat"] == "x"
    assert (await b.request(type="draw", action="decline", id="d1"))["version"] == 1
    assert (await a.expect("draw_declined"))["seat"] == "o"
    rejected = await a.request(type="draw", action="accept", id="a0")
    assert rejected["code"] == "illegal_move"
    await b.request(type="draw", action="offer", id="o2")
    await a.expect("draw_offer")
    assert (await a.request(type="draw", action="accept", id="a1"))["version"] == 2
    snapshot = await api.snapshot(game["game_id"])
    assert snapshot["status"] == "finished"
    assert snapshot["result"] == {"winner": None, "reason": "draw_agreed"}


async def test_abort_before_the_first_move(api: Api, server: ServerThread) -> None:
    alice = await api.guest()
    game = await api.create(alice, "connect4", seats={"red": "me"})
    client = await connect(server.ws_url("connect4", game["game_id"], token=alice["access_token"]))
    await client.expect("state")
    assert (await client.request(type="abort", id="stop"))["version"] == 1
    update = await client.expect("update")
    assert update["event"] == {"kind": "abort", "seat": "red"}
    assert update["status"] == "aborted" and update["turn"] is None
    assert update["result"] == {"winner": None, "reason": "aborted"}


async def test_presence_counts_players_and_spectators(api: Api, server: ServerThread) -> None:
    game, _alice, _bob, a, _b = await tictactoe_pair(api, server)
    watcher = await connect(server.ws_url("tictactoe", game["game_id"]))
    await watcher.expect("state")
    presence = await a.recv()
    while presence["type"] != "presence" or presence["spectators"] != 1:
        presence = await a.recv(wait=5)
    assert presence["online"] == {"x": True, "o": True} and presence["spectators"] == 1
    counts = (await api.http.get("/api/connections")).json()
    assert counts["games"][game["game_id"]] == {"players": 2, "spectators": 1}


async def test_graceful_shutdown_closes_sockets_with_1001(
    api: Api, start_server: Callable[..., ServerThread]
) -> None:
    server = start_server()
    api = Api(server.base_url)
    alice = await api.guest()
    game = await api.create(alice, "chess", seats={"white": "me"})
    client = await connect(server.ws_url("chess", game["game_id"], token=alice["access_token"]))
    await client.expect("state")
    await api.close()
    await asyncio.get_running_loop().run_in_executor(None, server.stop)
    assert await client.closed_with() == 1001


# -- a buggy game: the server answers `internal` / closes with 1011 and stays up -------------
class GlitchState(TicTacToeState):
    """Tic-tac-toe whose rules crash on cell 8 and whose board cannot show cell 7."""

    game_type: ClassVar[str] = "glitch"

    def apply(self, move: Any) -> GlitchState:
        if move == 8:
            raise RuntimeError("the rules crashed")
        return super().apply(move)

    def board(self) -> dict[str, Any]:
        if self.cells[7] is not None:
            raise RuntimeError("the board crashed")
        return super().board()


async def test_internal_errors_keep_the_server_up(
    start_server: Callable[..., ServerThread], server_settings: Any
) -> None:
    app = create_app(server_settings)
    GameSocketFactory().create_socket(app, None, GlitchState, "/ws/glitch")
    server = start_server(app)
    api = Api(server.base_url)
    try:
        game, _alice, _bob, a, _b = await tictactoe_pair(api, server, "glitch")
        before = await api.snapshot(game["game_id"])
        crashed = await a.request(type="move", move=8, id="boom")
        assert crashed["code"] == "internal"
        await a.send(type="ping")
        assert (await a.expect("pong")) == {"type": "pong"}
        assert await api.snapshot(game["game_id"]) == before
        await a.request(type="move", move=7, id="unshowable")
        late = await connect(server.ws_url("glitch", game["game_id"]))
        assert await late.closed_with() == 1011
        assert (await api.http.get("/health")).json() == {"status": "ok"}
    finally:
        await api.close()


async def test_unknown_routes_answer_in_the_error_shape(api: Api, server: ServerThread) -> None:
    reply = await api.http.get("/api/nothing-here")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"
    page = await api.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_a_skipped_version_is_filled_from_the_store(
    start_server: Callable[..., ServerThread],
) -> None:
    # Two servers on one store but no shared broker: each misses the other's updates,
    # as when a broker message is lost. The next update reveals the gap.
    one, two = start_server(), start_server()
    api = Api(one.base_url)
    try:
        game, _alice, bob, a, _b = await tictactoe_pair(api, one)
        game_id = game["game_id"]
        watcher = await connect(one.ws_url("tictactoe", game_id))
        assert (await watcher.expect("state"))["version"] == 1
        elsewhere = await connect(two.ws_url("tictactoe", game_id, token=bob["access_token"]))
        await elsewhere.expect("state")
        assert (await a.request(type="move", move=4, id="a1"))["version"] == 2
        assert (await elsewhere.request(type="move", move=0, id="b1"))["version"] == 3
        assert (await a.request(type="move", move=8, id="a2"))["version"] == 4
        updates = [await watcher.expect("update") for _ in range(3)]
        assert [u["version"] for u in updates] == [2, 3, 4]
        assert updates[1]["event"] == {"kind": "move", "seat": "o", "move": 0}
        assert updates[2]["board"]["cells"][:1] == ["o"]
    finally:
        await api.close()
