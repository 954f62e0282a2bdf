// The client against a real gamesocket server (GAMESOCKET_URL). Run:
//   GAMESOCKET_URL=http://127.0.0.1:8000 node --test clients/js/test/
// tests/system/test_js_client.py starts a server and runs this for the Python suite.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  GameClient,
  GameSocketError,
  PROTOCOL_VERSION,
  claimVictory,
  connect,
  createGame,
  getGame,
  getMoves,
  getPgn,
  joinGame,
  listGames,
  playMove,
} from "../gamesocket.js";
import { BASE_URL, SKIP, WS, deadPort, firstSnapshot, guest, recordingWebSocket, until } from "../testlib/helpers.js";

const options = { skip: SKIP, timeout: 60000 };

function open(extra) {
  return connect({ baseUrl: BASE_URL, WebSocket: WS, ...extra });
}

/** A Connect Four game where one guest holds both seats: every move is theirs. */
async function hotSeatGame() {
  const owner = await guest();
  const game = await createGame(owner.conn, { game_type: "connect4", seats: { red: "me", yellow: "me" } });
  return { owner, game };
}

test("REST helpers: sign in, create, list, get, join, moves, PGN; errors are GameSocketErrors", options, async () => {
  const white = await guest();
  const black = await guest();
  const created = await createGame(white.conn, { game_type: "chess", seats: { white: "me" } });
  assert.equal(created.status, "waiting");
  assert.equal(created.version, 0);
  assert.equal(created.seats.white.user_id, white.userId);

  const listed = await listGames({ baseUrl: BASE_URL }, { status: "waiting", game_type: "chess", limit: 200 });
  assert.ok(listed.some((game) => game.game_id === created.game_id));

  const joined = await joinGame(black.conn, created.game_id, { seat: "black" });
  assert.equal(joined.status, "active");
  assert.equal(joined.seats.black.user_id, black.userId);

  const played = await playMove(white.conn, created.game_id, { move: "e4", version: joined.version });
  assert.equal(played.version, joined.version + 1);
  const log = await getMoves(white.conn, created.game_id);
  assert.deepEqual(
    log.filter((entry) => entry.move).map((entry) => [entry.seat, entry.move, entry.san]),
    [["white", "e2e4", "e4"]],
  );
  const snapshot = await getGame({ baseUrl: BASE_URL }, created.game_id);
  assert.equal(snapshot.version, played.version);
  assert.deepEqual(snapshot.board.san, ["e4"]);
  assert.match(await getPgn({ baseUrl: BASE_URL }, created.game_id), /1\. e4/);

  await assert.rejects(playMove(black.conn, created.game_id, { move: "e4" }), (err) => {
    assert.ok(err instanceof GameSocketError);
    assert.equal(err.code, "illegal_move");
    assert.equal(err.status >= 400 && err.status < 500, true);
    return true;
  });
  await assert.rejects(createGame({ baseUrl: BASE_URL }, { game_type: "chess" }), (err) => {
    assert.equal(err.code, "unauthorized");
    assert.equal(err.status, 401);
    return true;
  });
  await assert.rejects(getGame({ baseUrl: BASE_URL }, "00000000-0000-4000-8000-000000000000"), { code: "not_found", status: 404 });
});

test("connect as a player: hello, state, then a move resolves on its ack and arrives as an update", options, async () => {
  const { owner, game } = await hotSeatGame();
  const client = open({ gameType: "connect4", gameId: game.game_id, token: owner.token });
  try {
    assert.ok(client instanceof GameClient);
    const hello = await client.waitFor("hello");
    assert.equal(hello.protocol, PROTOCOL_VERSION);
    assert.equal(hello.game_id, game.game_id);
    assert.equal(hello.you.user_id, owner.userId);
    assert.equal(hello.you.role, "player");
    assert.equal(client.state, "open");
    const snapshot = await firstSnapshot(client);
    assert.equal(snapshot.game_id, game.game_id);
    assert.equal(snapshot.version, game.version);
    assert.equal(snapshot.turn, "red");
    assert.equal("type" in snapshot, false, "the snapshot is the message without its type");

    const updates = [];
    client.onUpdate((update) => updates.push(update));
    const ack = await client.move(3, { version: client.version });
    assert.equal(ack.type, "ack");
    assert.equal(ack.version, game.version + 1);
    await until(() => client.version === ack.version, { what: "the update" });
    assert.equal(updates.length, 1);
    assert.equal(updates[0].version, ack.version);
    assert.deepEqual(updates[0].event, { kind: "move", seat: "red", move: 3 });
    assert.equal(client.snapshot.board.cells[5][3], "red");
    assert.equal(client.snapshot.turn, "yellow");
  } finally {
    client.close();
  }
  assert.equal(client.state, "closed");
});

test("a spectator: role spectator, presence of the player, no moves allowed", options, async () => {
  const { owner, game } = await hotSeatGame();
  // The watcher signs in first: a hello that came while this awaited would be missed.
  const watcher = await guest();
  const player = open({ gameType: "connect4", gameId: game.game_id, token: owner.token });
  const spectator = open({ gameType: "connect4", gameId: game.game_id, token: watcher.token });
  try {
    // Both waits first: the spectator's hello may come while the player's is awaited.
    const [, hello] = await Promise.all([player.waitFor("hello"), spectator.waitFor("hello")]);
    assert.equal(hello.you.role, "spectator");
    assert.equal(hello.you.seat, null);
    // The latest presence message is kept (it may have come before this line ran).
    const presence = await until(() => {
      const p = spectator.presence;
      return p && p.online.red === true && p.spectators >= 1 && p;
    }, { what: "presence with the player online" });
    assert.equal(presence.type, "presence");
    assert.equal(presence.online.yellow, true);
    await assert.rejects(spectator.move(3), { name: "GameSocketError", code: "forbidden" });
  } finally {
    player.close();
    spectator.close();
  }
});

test("errors reject the call with that ref; the socket stays open; unclaimed errors go to onError", options, async () => {
  const owner = await guest();
  const waiting = await createGame(owner.conn, { game_type: "connect4", seats: { red: "me" } });
  const client = open({ gameType: "connect4", gameId: waiting.game_id, token: owner.token });
  const unclaimed = [];
  client.onError((err) => unclaimed.push(err));
  try {
    await firstSnapshot(client);
    const check = (code) => (err) => {
      assert.ok(err instanceof GameSocketError, String(err));
      assert.equal(err.code, code);
      assert.match(err.ref, /^c/);
      assert.ok(err.message.length > 0);
      return true;
    };
    // Nobody's turn while a seat is empty.
    await assert.rejects(client.move(3), check("not_your_turn"));
    await assert.rejects(client.call({ type: "move" }), check("bad_message"));
    await assert.rejects(client.call({ type: "frobnicate" }), check("unknown_type"));
    await assert.rejects(client.call({ type: "move", move: 3, id: "my-own-id" }), (err) => err.ref === "my-own-id");
    assert.equal(client.pending.length, 0);

    const { owner: other, game } = await hotSeatGame();
    const hot = open({ gameType: "connect4", gameId: game.game_id, token: other.token });
    try {
      await firstSnapshot(hot);
      await assert.rejects(hot.move(7), check("illegal_move"));
      await assert.rejects(hot.move(3, { version: hot.version + 5 }), check("stale_version"));
      const ack = await hot.move(3, { version: hot.version });
      assert.equal(ack.version, game.version + 1);
    } finally {
      hot.close();
    }

    assert.equal(unclaimed.length, 0, "errors answered to a call are not reported twice");
    assert.equal(client.send({ type: "frobnicate" }), true); // no id: nobody waits for it
    await until(() => unclaimed.length === 1, { what: "the unclaimed error" });
    assert.equal(unclaimed[0].code, "unknown_type");
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("resume with since after a forced disconnect: the missed updates are replayed in order", options, async () => {
  const { owner, game } = await hotSeatGame();
  const { RecordingWebSocket, log } = recordingWebSocket();
  // A long back-off: the client stays away until `resume()`, so the moves below are
  // certainly made while it is disconnected.
  const client = open({ gameType: "connect4", gameId: game.game_id, WebSocket: RecordingWebSocket, backoffMinMs: 60000, backoffMaxMs: 60000 });
  try {
    await firstSnapshot(client);
    const before = client.version;
    const seen = [];
    client.on("message", (message) => seen.push(message));
    client.dropConnection();
    const drop = await client.waitFor("connection", (c) => c.state === "reconnecting" && c.delayMs > 0);
    assert.equal(drop.code, 4000);
    assert.ok(drop.delayMs >= 45000, `back-off ${drop.delayMs} ms`);

    const first = await playMove(owner.conn, game.game_id, { move: 0 });
    const second = await playMove(owner.conn, game.game_id, { move: 6 });
    assert.deepEqual([first.version, second.version], [before + 1, before + 2]);
    assert.equal(client.version, before, "nothing arrived while disconnected");

    client.resume();
    await until(() => client.version === before + 2, { what: "the replayed updates" });
    assert.equal(log.urls.length, 2);
    assert.equal(new URL(log.urls[0]).searchParams.get("since"), null);
    assert.equal(new URL(log.urls[1]).searchParams.get("since"), String(before));
    const replay = seen.filter((m) => m.type === "state" || m.type === "update");
    assert.deepEqual(
      replay.map((m) => [m.type, m.version, m.event && m.event.move]),
      [
        ["update", before + 1, 0],
        ["update", before + 2, 6],
      ],
    );
    const server = await getGame({ baseUrl: BASE_URL }, game.game_id);
    assert.deepEqual(client.snapshot.board, server.board);
  } finally {
    client.close();
  }
});

test("reconnects by itself after a drop, with a back-off that grows while the server is away", options, async () => {
  const { game } = await hotSeatGame();
  const client = open({ gameType: "connect4", gameId: game.game_id, backoffMinMs: 100 });
  try {
    await firstSnapshot(client);
    const states = [];
    client.onConnection((c) => states.push(c));
    client.dropConnection();
    await client.waitFor("connection", (c) => c.state === "open");
    const retry = states.find((c) => c.state === "reconnecting" && c.delayMs);
    assert.ok(retry.delayMs >= 75 && retry.delayMs <= 125, `first delay ${retry.delayMs}`);
    assert.equal(client.you.role, "spectator");
  } finally {
    client.close();
  }

  // Nothing listens on this port: each attempt fails and the wait doubles.
  const port = await deadPort();
  const away = connect({ baseUrl: `http://127.0.0.1:${port}`, WebSocket: WS, gameType: "chess", gameId: "x", backoffMinMs: 40, backoffMaxMs: 1000 });
  const delays = [];
  away.onConnection((c) => c.delayMs && delays.push(c.delayMs));
  try {
    await until(() => delays.length >= 4, { what: "four retries" });
  } finally {
    away.close();
  }
  const expected = [40, 80, 160, 320];
  delays.slice(0, 4).forEach((delay, i) => {
    assert.ok(delay >= expected[i] * 0.75 && delay <= expected[i] * 1.25, `retry ${i + 1}: ${delay} ms`);
  });
});

test("a request whose answer was lost is resent with the same id after reconnecting, and applied once", options, async () => {
  const { owner, game } = await hotSeatGame();
  const { RecordingWebSocket, log } = recordingWebSocket();
  const player = open({ gameType: "connect4", gameId: game.game_id, token: owner.token, WebSocket: RecordingWebSocket, backoffMinMs: 60000, backoffMaxMs: 60000 });
  const watcher = open({ gameType: "connect4", gameId: game.game_id });
  try {
    await firstSnapshot(player);
    await firstSnapshot(watcher);
    const version = player.version;
    // Sent, then the socket is dropped in the same tick: the ack cannot reach this
    // socket any more (a closing socket is not read).
    const pending = player.move(3, { version });
    player.dropConnection();
    // The server applied the first send (the spectator sees it) before the resend.
    await watcher.waitFor("update", (u) => u.version === version + 1);
    assert.equal(player.pending.length, 1);

    player.resume();
    const ack = await pending;
    assert.equal(ack.version, version + 1, "the original ack, not a second application");
    const moves = log.sent.filter((s) => s.message.type === "move");
    assert.deepEqual(
      moves.map((s) => s.socket),
      [0, 1],
      "sent once on each socket",
    );
    assert.equal(moves[0].message.id, moves[1].message.id);
    assert.equal(moves[0].message.id, ack.ref);

    // In this hot-seat game a second application would have been legal (yellow, same
    // column): the log and the board show one move.
    const server = await getGame({ baseUrl: BASE_URL }, game.game_id);
    assert.equal(server.version, version + 1);
    assert.deepEqual(
      server.board.cells.map((row) => row[3]),
      [null, null, null, null, null, "red"],
    );
    const entries = (await getMoves(owner.conn, game.game_id)).filter((e) => e.move !== undefined && e.move !== null);
    assert.equal(entries.length, 1);

    // A call made while offline waits for the connection and is sent once.
    player.dropConnection();
    await player.waitFor("connection", (c) => c.state === "reconnecting" && c.delayMs);
    const offline = player.move(4);
    assert.equal(log.sent.filter((s) => s.message.id === player.pending[0].id).length, 0);
    player.resume();
    assert.equal((await offline).version, version + 2);
  } finally {
    player.close();
    watcher.close();
  }
});

test("draw offers pass through as extension messages; accepting ends the game", options, async () => {
  const white = await guest();
  const black = await guest();
  const game = await createGame(white.conn, { game_type: "chess", seats: { white: "me" } });
  await joinGame(black.conn, game.game_id, { seat: "black" });
  const a = open({ gameType: "chess", gameId: game.game_id, token: white.token });
  const b = open({ gameType: "chess", gameId: game.game_id, token: black.token });
  try {
    await firstSnapshot(a);
    await firstSnapshot(b);
    const offered = b.waitFor("draw_offer");
    const ack = await a.draw("offer");
    assert.equal(ack.version, a.version);
    assert.equal((await offered).seat, "white");
    const declined = a.waitFor("draw_declined");
    await b.draw("decline");
    assert.equal((await declined).seat, "black");

    const again = b.waitFor("draw_offer");
    await a.draw("offer");
    await again;
    const finished = a.waitFor("update", (u) => u.event.kind === "draw");
    await b.draw("accept");
    const update = await finished;
    assert.equal(update.status, "finished");
    assert.deepEqual(update.result, { winner: null, reason: "draw_agreed" });
    await assert.rejects(a.resign(), { code: "game_over" });
  } finally {
    a.close();
    b.close();
  }
});

test("claiming the win: refused (forbidden) while the opponent is online, and against the AI", options, async () => {
  const white = await guest();
  const black = await guest();
  const game = await createGame(white.conn, { game_type: "chess", seats: { white: "me" } });
  await joinGame(black.conn, game.game_id, { seat: "black" });
  const a = open({ gameType: "chess", gameId: game.game_id, token: white.token });
  const b = open({ gameType: "chess", gameId: game.game_id, token: black.token });
  try {
    await firstSnapshot(a);
    await firstSnapshot(b);
    await until(() => a.presence && a.presence.online.black === true, { what: "Black online" });
    await assert.rejects(a.claimVictory(), (err) => {
      assert.ok(err instanceof GameSocketError);
      assert.equal(err.code, "forbidden");
      assert.match(err.message, /online|recently/);
      return true;
    });
    await assert.rejects(claimVictory(white.conn, game.game_id), { code: "forbidden", status: 403 });
    assert.equal((await getGame(white.conn, game.game_id)).status, "active");
  } finally {
    a.close();
    b.close();
  }
  const solo = await createGame(white.conn, { game_type: "chess", seats: { white: "me", black: { kind: "ai", level: 1 } } });
  await assert.rejects(claimVictory(white.conn, solo.game_id), (err) => {
    assert.equal(err.code, "forbidden");
    assert.match(err.message, /AI/);
    return true;
  });
});

test("AI thinking and every update of an AI-vs-AI game, in version order, each once", options, async () => {
  const owner = await guest();
  const game = await createGame(owner.conn, {
    game_type: "connect4",
    seats: { red: { kind: "ai", level: 3 }, yellow: { kind: "ai", level: 2 } },
    options: { ai_delay_ms: 100 },
  });
  const client = open({ gameType: "connect4", gameId: game.game_id });
  const versions = [];
  const thinking = [];
  client.onState((snapshot) => versions.push(snapshot.version));
  client.onThinking((info) => thinking.push(info));
  try {
    const done = await client.waitFor("snapshot", (s) => s.status === "finished", { timeoutMs: 50000 });
    assert.ok(thinking.length >= 1, "the AI's search was shown");
    for (const info of thinking) {
      assert.ok(["red", "yellow"].includes(info.seat));
      assert.ok(Number.isInteger(info.depth) && info.depth >= 1);
      assert.ok(Array.isArray(info.pv));
      assert.equal(typeof info.score, "number");
    }
    assert.deepEqual(versions, Array.from({ length: versions.length }, (_, i) => versions[0] + i));
    assert.equal(versions.at(-1), done.version);
    const server = await getGame({ baseUrl: BASE_URL }, game.game_id);
    assert.equal(server.version, done.version);
    assert.deepEqual(done.board, server.board);
  } finally {
    client.close();
  }
});

test("close codes: 4404 ends the connection for good and rejects what was waiting", options, async () => {
  const client = open({ gameType: "chess", gameId: "00000000-0000-4000-8000-000000000000" });
  const queued = client.move("e4"); // made before the socket opened: waits for hello
  const fatal = await client.waitFor("fatal");
  assert.equal(fatal.code, "close_4404");
  assert.equal(fatal.closeCode, 4404);
  assert.match(fatal.message, /no such game/);
  await assert.rejects(queued, { code: "closed" });
  assert.equal(client.state, "closed");
  assert.equal(client.lastClose.code, 4404);
  await assert.rejects(client.move("e4"), { code: "closed" });
});

test("close codes: a refused token (4401) is replaced once through refreshToken", options, async () => {
  const owner = await guest();
  const game = await createGame(owner.conn, { game_type: "chess", seats: { white: "me" } });
  let refreshed = 0;
  const client = open({
    gameType: "chess",
    gameId: game.game_id,
    token: "not-a-token",
    refreshToken: async () => {
      refreshed += 1;
      return (await guest()).token;
    },
  });
  const states = [];
  client.onConnection((c) => states.push(c));
  try {
    await client.waitFor("hello");
    assert.equal(refreshed, 1);
    assert.ok(states.some((c) => c.state === "reconnecting" && c.code === 4401));
    assert.notEqual(client.token, "not-a-token");
    assert.equal(client.you.role, "spectator");
    const ack = await client.join("black");
    assert.equal(ack.version, game.version + 1);
  } finally {
    client.close();
  }
});

test("chat, when the server has it, arrives as a chat message", options, async (t) => {
  const { owner, game } = await hotSeatGame();
  const client = open({ gameType: "connect4", gameId: game.game_id, token: owner.token });
  try {
    await firstSnapshot(client);
    const chats = [];
    client.onChat((message) => chats.push(message));
    try {
      await client.chat("hello there");
    } catch (err) {
      if (err.code === "unknown_type") {
        t.skip("this server has no chat yet");
        return;
      }
      throw err;
    }
    const [message] = await until(() => chats.length && chats, { what: "the chat message" });
    assert.equal(message.text, "hello there");
    assert.equal(message.user_id, owner.userId);
    assert.equal(message.game_id, game.game_id);
  } finally {
    client.close();
  }
});

test("the global WebSocket, or a clear error where there is none", options, async () => {
  if (typeof globalThis.WebSocket !== "function") {
    assert.throws(
      () => connect({ baseUrl: BASE_URL, gameType: "chess", gameId: "x" }),
      (err) => err instanceof TypeError && /WebSocket/.test(err.message),
    );
    return;
  }
  const { game } = await hotSeatGame();
  const client = connect({ baseUrl: BASE_URL, gameType: "connect4", gameId: game.game_id });
  try {
    assert.equal((await firstSnapshot(client)).game_id, game.game_id);
  } finally {
    client.close();
  }
});
