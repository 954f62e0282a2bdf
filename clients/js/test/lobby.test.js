// The lobby socket (PROTOCOL.md, "The lobby socket"). It runs only against a server that
// serves /ws/lobby; against one that does not yet, it is skipped with that reason.

import assert from "node:assert/strict";
import { test } from "node:test";

import { LobbyClient, connectLobby, createGame, joinGame } from "../gamesocket.js";
import { BASE_URL, SKIP, WS, guest, until } from "../testlib/helpers.js";

/** Whether the server answers /ws/lobby with a `hello`. */
function servesLobby() {
  return new Promise((resolve) => {
    const url = new URL("/ws/lobby", BASE_URL);
    url.protocol = "ws:";
    const socket = new WS(url);
    const done = (answer) => {
      clearTimeout(timer);
      socket.terminate();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), 5000);
    socket.on("message", (data) => done(JSON.parse(String(data)).type === "hello"));
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

test("the lobby lists public waiting games and follows them as they come and go", { skip: SKIP, timeout: 30000 }, async (t) => {
  if (!(await servesLobby())) {
    t.skip("this server does not serve /ws/lobby yet");
    return;
  }
  const owner = await guest();
  const lobby = connectLobby({ baseUrl: BASE_URL, token: owner.token, WebSocket: WS });
  try {
    assert.ok(lobby instanceof LobbyClient);
    // Both waits first: `lobby` may arrive in the same read as `hello`.
    const [hello, first] = await Promise.all([lobby.waitFor("hello"), lobby.waitFor("lobby")]);
    assert.equal(hello.protocol, 1);
    assert.equal(hello.you.user_id, owner.userId);
    assert.ok(Array.isArray(first.games) && Array.isArray(first.seeks));

    const game = await createGame(owner.conn, { game_type: "tictactoe", seats: { x: "me" } });
    await until(() => lobby.games.has(game.game_id), { what: "the new game in the lobby" });
    assert.equal(lobby.games.get(game.game_id).status, "waiting");

    const other = await guest();
    await joinGame(other.conn, game.game_id, { seat: "o" });
    await until(() => !lobby.games.has(game.game_id), { what: "the started game to leave the lobby" });
  } finally {
    lobby.close();
  }
});
