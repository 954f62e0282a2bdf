/**
 * gamesocket-client: the client of the gamesocket wire protocol, version 1 (the contract
 * is PROTOCOL.md; the guide is docs/web-client.md). One plain ES module with no
 * dependencies and no build step. It runs in browsers and in Node 20+ (Node 22 has a
 * global WebSocket; on Node 20 pass one, e.g. `import WebSocket from "ws"`, as the
 * `WebSocket` option). Types: gamesocket.d.ts, generated from the server's schemas.
 *
 * This file is the single source: the web page serves a byte-identical copy
 * (socket_server/static/gamesocket.js), checked by the test suite.
 *
 * Usage:
 *
 *   import { guestSignIn, createGame, connect } from "gamesocket-client";
 *
 *   const baseUrl = "http://127.0.0.1:8000"; // on a page served by gamesocket: omit
 *   const { access_token: token } = await guestSignIn({ baseUrl });
 *   const game = await createGame({ baseUrl, token }, {
 *     game_type: "tictactoe",
 *     seats: { x: "me", o: { kind: "ai", level: 3 } },
 *   });
 *   const client = connect({ baseUrl, gameType: "tictactoe", gameId: game.game_id, token });
 *   client.onState((snapshot) => render(snapshot.board.cells, snapshot.turn));
 *   client.onThinking((t) => console.log("AI depth", t.depth, "pv", t.pv));
 *   client.onError((err) => console.warn(err.code, err.message));
 *   try {
 *     await client.move(4, { version: client.version }); // resolves on the server's ack
 *   } catch (err) {
 *     console.warn(err.code); // "illegal_move", "not_your_turn", "stale_version", ...
 *   }
 *
 * The client reconnects by itself (with `since` = the last version it saw, so no update
 * is missed) and resends every request that was not answered yet with the same `id`,
 * which the server never applies twice.
 */

/** Protocol version this module speaks. */
export const PROTOCOL_VERSION = 1;

/** Human text for every error code of the protocol (and the client's own codes). */
export const ERROR_TEXT = {
  bad_message: "The server could not read that message.",
  unknown_type: "The server does not know that kind of message.",
  unauthorized: "You are not signed in, or your session has expired.",
  forbidden: "You are not allowed to do that in this game.",
  not_found: "That game does not exist.",
  not_your_turn: "It is not your turn.",
  illegal_move: "That move is not legal.",
  stale_version: "The game moved on before your move arrived; look again.",
  game_over: "The game is already over.",
  seat_taken: "That seat is already taken.",
  rate_limited: "Too many actions at once; slow down a little.",
  internal: "The server had an internal error.",
  disconnected: "The connection was lost before the server answered.",
  timeout: "The server did not answer in time.",
  closed: "The connection is closed.",
};

/** Human text for every close code of the protocol. */
export const CLOSE_TEXT = {
  1000: "The connection was closed.",
  1001: "The server is restarting; reconnecting…",
  1006: "The connection dropped; reconnecting…",
  1008: "The connection fell too far behind; reconnecting…",
  1009: "A message was too large for the server.",
  1011: "The server had an internal error; reconnecting…",
  1013: "The server is busy; reconnecting more slowly…",
  4401: "Your sign-in is missing or has expired.",
  4403: "This game is private: you may not watch it.",
  4404: "There is no such game.",
  4408: "The connection was idle for too long; reconnecting…",
  4429: "Too many messages were sent; reconnecting more slowly…",
};

/** Timings (milliseconds); each can be overridden per client through its options. */
export const DEFAULTS = Object.freeze({
  pingIntervalMs: 20000, // well inside the server's idle limit (close code 4408)
  callTimeoutMs: 20000,
  aiMoveTimeoutMs: 120000,
  backoffMinMs: 300,
  backoffMaxMs: 8000,
  slowDownMs: 2000, // the least wait after a 4429 or 1013 close
});

// Close codes after which reconnecting cannot help, and those that ask for a slower retry.
const FATAL_CLOSE_CODES = new Set([4403, 4404]);
const SLOW_DOWN_CLOSE_CODES = new Set([1013, 4429]);
const WS_OPEN = 1;

/** An error answered by the server (REST or socket) or raised by the client. */
export class GameSocketError extends Error {
  /**
   * @param {string} code protocol error code (`illegal_move`, ...) or a client code
   * @param {string} [message] the server's message; defaults to a human text for `code`
   * @param {object} [extra] `status` (HTTP status), `ref` (message id), `closeCode`
   */
  constructor(code, message, extra = {}) {
    super(message || ERROR_TEXT[code] || code);
    this.name = "GameSocketError";
    this.code = code;
    Object.assign(this, extra);
  }
}

function defaultBaseUrl() {
  const origin = globalThis.location && globalThis.location.origin;
  if (origin && origin !== "null") return origin;
  throw new TypeError("gamesocket: `baseUrl` is required outside a page served by gamesocket");
}

// ---------------------------------------------------------------------------------
// REST helpers. Each takes a connection `{baseUrl?, token?, fetch?}` first.
// ---------------------------------------------------------------------------------

async function request(conn = {}, method, path, body) {
  const baseUrl = conn.baseUrl || defaultBaseUrl();
  const fetchImpl = conn.fetch || globalThis.fetch;
  const headers = { Accept: "application/json" };
  if (conn.token) headers.Authorization = `Bearer ${conn.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetchImpl(new URL(path, baseUrl), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const code = error.code || (response.status === 401 ? "unauthorized" : response.status === 404 ? "not_found" : "internal");
    throw new GameSocketError(code, error.message, { status: response.status });
  }
  return data;
}

function gamePath(gameId, suffix = "") {
  return `/api/games/${encodeURIComponent(gameId)}${suffix}`;
}

function withQuery(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** `GET /api/config` → `{mode, supabase_url, supabase_anon_key}`. */
export function fetchConfig(conn) {
  return request(conn, "GET", "/api/config");
}

/** Embedded mode only: a new guest account (`name` optional) → `{access_token, user_id, expires_at, name}`. */
export function guestSignIn(conn, { name } = {}) {
  return request(conn, "POST", "/api/auth/guest", name ? { name } : {});
}

/** `POST /api/games` → the snapshot of the new game. Seats map a seat to `"me"` or `{kind: "ai", level}`. */
export function createGame(conn, spec) {
  return request(conn, "POST", "/api/games", spec);
}

/** `GET /api/games` (filters `game_type`, `status`, `limit`) → snapshots. */
export async function listGames(conn, filters = {}) {
  const data = await request(conn, "GET", withQuery("/api/games", filters));
  // A bare list per the protocol; tolerate a `{games: [...]}` envelope as well.
  return Array.isArray(data) ? data : (data && data.games) || [];
}

/** `GET /api/games/{id}` → the snapshot. */
export function getGame(conn, gameId) {
  return request(conn, "GET", gamePath(gameId));
}

/** `GET /api/games/{id}/moves` → `[{version, seat, move, san?, at}]`. */
export function getMoves(conn, gameId) {
  return request(conn, "GET", gamePath(gameId, "/moves"));
}

/** `GET /api/games/{id}/pgn` (chess) → PGN text. */
export function getPgn(conn, gameId) {
  return request(conn, "GET", gamePath(gameId, "/pgn"));
}

/** `POST /api/games/{id}/join` with `{seat?, invite?, id?}` → the snapshot. */
export function joinGame(conn, gameId, body = {}) {
  return request(conn, "POST", gamePath(gameId, "/join"), body);
}

/** `POST /api/games/{id}/moves` with `{move, version?, id?}` → `{version}` (a move without a socket). */
export function playMove(conn, gameId, body) {
  return request(conn, "POST", gamePath(gameId, "/moves"), body);
}

/** `POST /api/games/{id}/claim`: claim the win against an opponent offline for 60 s. */
export function claimVictory(conn, gameId) {
  return request(conn, "POST", gamePath(gameId, "/claim"), {});
}

/** `POST /api/games/{id}/rematch` → `{status: "offered"}` or `{status: "created", game_id}`. */
export function requestRematch(conn, gameId) {
  return request(conn, "POST", gamePath(gameId, "/rematch"), {});
}

/** `GET /api/games/{id}/chat` (`room`, `after`, `limit`) → the stored chat messages. */
export function getChat(conn, gameId, params = {}) {
  return request(conn, "GET", withQuery(gamePath(gameId, "/chat"), params));
}

/** `GET /api/me` → the caller's profile. */
export function getMe(conn) {
  return request(conn, "GET", "/api/me");
}

/** `PATCH /api/me` with `{name}` → the profile. */
export function updateMe(conn, changes) {
  return request(conn, "PATCH", "/api/me", changes);
}

/** `GET /api/users/{id}` → `{user_id, name, ratings}`. */
export function getUser(conn, userId) {
  return request(conn, "GET", `/api/users/${encodeURIComponent(userId)}`);
}

/** `GET /api/users/{id}/games` (`limit`, `before`) → `{games, next_before}`. */
export function getUserGames(conn, userId, params = {}) {
  return request(conn, "GET", withQuery(`/api/users/${encodeURIComponent(userId)}/games`, params));
}

/** `GET /api/leaderboard` (`game_type`, `limit`) → `[{user_id, name, rating, deviation, games}]`. */
export function getLeaderboard(conn, params = {}) {
  return request(conn, "GET", withQuery("/api/leaderboard", params));
}

/** `POST /api/seeks` with `{game_type, clock?, rated?}` → `{seek_id, status, game_id?}`. */
export function createSeek(conn, spec) {
  return request(conn, "POST", "/api/seeks", spec);
}

/** `GET /api/seeks/{id}` → `{seek_id, status, game_id?}`. */
export function getSeek(conn, seekId) {
  return request(conn, "GET", `/api/seeks/${encodeURIComponent(seekId)}`);
}

/** `DELETE /api/seeks/{id}`: withdraw a seek. */
export function cancelSeek(conn, seekId) {
  return request(conn, "DELETE", `/api/seeks/${encodeURIComponent(seekId)}`);
}

// ---------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------

let idCounter = 0;

/** A fresh message id (at most 64 characters, as the protocol asks). */
export function newMessageId() {
  idCounter += 1;
  const random = Math.random().toString(36).slice(2, 10);
  return `c${Date.now().toString(36)}-${random}-${idCounter}`;
}

function frameText(data) {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}

/**
 * What the game and lobby clients share: one socket at a time, reconnecting with
 * back-off, listeners, requests with an `id` settled by `ack` / `error`, and pings.
 *
 * Properties: `state` (`"connecting"`, `"open"`, `"reconnecting"`, `"closed"`), `you`
 * (from the last `hello`, null while offline), `lastClose` (`{code, reason}`).
 */
export class SocketClient {
  constructor(opts = {}) {
    this.baseUrl = opts.baseUrl || defaultBaseUrl();
    this.token = opts.token || null;
    this.refreshToken = opts.refreshToken || null;
    this.autoReconnect = opts.reconnect !== false;
    this.timing = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) {
      if (Number.isFinite(opts[key])) this.timing[key] = opts[key];
    }
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("gamesocket: no WebSocket here; pass one as the `WebSocket` option (Node 20: the ws package)");
    }
    this.state = "connecting";
    this.you = null;
    this.lastClose = null;
    this._listeners = new Map();
    this._pending = new Map(); // id -> {message, resolve, reject, timer}
    this._socket = null;
    this._attempt = 0;
    this._everOpened = false;
    this._retryTimer = null;
    this._pingTimer = null;
    this._closedByUser = false;
    this._refreshedAfter4401 = false;
  }

  // -- events ------------------------------------------------------------------------

  /**
   * Listen to one kind of event; returns a function that removes the listener. Kinds:
   * every server message type (including ones this module does not know), plus
   * `message` (every message), `connection` (state changes) and `fatal`.
   */
  on(kind, callback) {
    if (!this._listeners.has(kind)) this._listeners.set(kind, new Set());
    this._listeners.get(kind).add(callback);
    return () => this._listeners.get(kind).delete(callback);
  }

  /**
   * The next event of `kind` for which `predicate` holds, as a promise (rejected after
   * `timeoutMs`, default the call timeout).
   */
  waitFor(kind, predicate = () => true, { timeoutMs = this.timing.callTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new GameSocketError("timeout", `no "${kind}" event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(kind, (payload) => {
        if (!predicate(payload)) return;
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });
  }

  /** Every `hello`: `{protocol, you, ...}`. */
  onHello(callback) {
    return this.on("hello", callback);
  }

  /**
   * Every error as a `GameSocketError`: `error` messages that no pending call is
   * waiting for, and closes that reconnecting cannot fix (`code` is then
   * `close_<number>` and `closeCode` the close code).
   */
  onError(callback) {
    return this.on("error", callback);
  }

  /** Connection state changes: `{state, code?, reason?, delayMs?}`. */
  onConnection(callback) {
    return this.on("connection", callback);
  }

  _emit(kind, payload) {
    for (const callback of [...(this._listeners.get(kind) || [])]) {
      try {
        callback(payload);
      } catch (err) {
        console.error(`gamesocket: a "${kind}" listener failed`, err);
      }
    }
  }

  _setState(state, details = {}) {
    this.state = state;
    this._emit("connection", { state, ...details });
  }

  // -- requests ----------------------------------------------------------------------

  /**
   * Send any client message with an `id` (a fresh one unless the message has one).
   * Resolves on the `ack` with that `ref`, rejects with a `GameSocketError` on an
   * `error` with that `ref`, on a timeout, or when the client is closed. A request
   * still unanswered when the socket drops is sent again, with the same `id`, once the
   * next connection says `hello`.
   * @returns {Promise<{type: "ack", ref: string, version?: number}>}
   */
  call(message, { timeoutMs = this.timing.callTimeoutMs } = {}) {
    if (this._closedByUser) return Promise.reject(new GameSocketError("closed"));
    const id = message.id || newMessageId();
    const full = { ...message, id };
    return new Promise((resolve, reject) => {
      const entry = { message: full, resolve, reject };
      entry.timer = setTimeout(() => this._settle(id, new GameSocketError("timeout", undefined, { ref: id })), timeoutMs);
      this._pending.set(id, entry);
      this._send(full);
    });
  }

  /** The requests sent or queued that have no answer yet (their messages). */
  get pending() {
    return [...this._pending.values()].map((entry) => entry.message);
  }

  /** Send a message without waiting for an answer; false when offline (then it is dropped). */
  send(message) {
    return this._send(message);
  }

  _send(message) {
    if (!this._socket || this._socket.readyState !== WS_OPEN || this.you === null) return false;
    this._socket.send(JSON.stringify(message));
    return true;
  }

  _settle(id, error, value) {
    const entry = this._pending.get(id);
    if (!entry) return false;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(value);
    return true;
  }

  // -- connection --------------------------------------------------------------------

  /** Reconnect now (cancelling any wait). */
  resume() {
    this._closedByUser = false;
    clearTimeout(this._retryTimer);
    if (this._socket && this._socket.readyState <= WS_OPEN) return;
    this._open();
  }

  /** Drop the socket as a network failure would; the client reconnects by itself. */
  dropConnection() {
    if (this._socket) this._socket.close(4000, "dropped by client");
  }

  /** Close for good; pending calls are rejected with `closed`. */
  close() {
    if (this._closedByUser && this.state === "closed") return;
    this._closedByUser = true;
    clearTimeout(this._retryTimer);
    clearInterval(this._pingTimer);
    if (this._socket && this._socket.readyState <= WS_OPEN) this._socket.close(1000, "bye");
    this._rejectAll(new GameSocketError("closed"));
    this._setState("closed", { code: 1000 });
  }

  _path() {
    throw new Error("subclasses say where to connect");
  }

  _query(_params) {}

  _url() {
    const url = new URL(this._path(), this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.token) url.searchParams.set("token", this.token);
    this._query(url.searchParams);
    return url.toString();
  }

  _open() {
    this._setState(this._everOpened ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new this.WebSocket(this._url());
    } catch (err) {
      this._socket = null;
      this._closed(1006, String((err && err.message) || err));
      return;
    }
    this._socket = socket;
    socket.onmessage = (event) => {
      // Like a browser, read nothing more from a socket once it is closing.
      if (socket === this._socket && socket.readyState === WS_OPEN) this._receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket === this._socket) this._closed(event.code, event.reason);
    };
    // Some implementations (the ws package) throw on an error event nobody listens to;
    // the close event that follows it does the work.
    socket.onerror = () => {};
  }

  _receive(data) {
    let message;
    try {
      message = JSON.parse(frameText(data));
    } catch {
      console.warn("gamesocket: ignoring a frame that is not JSON");
      return;
    }
    if (!message || typeof message !== "object" || Array.isArray(message)) return;
    this._emit("message", message);
    if (message.type === "hello") {
      this._hello(message);
      return;
    }
    if (message.type === "ack") {
      this._settle(message.ref, null, message);
      this._emit("ack", message);
      return;
    }
    if (message.type === "error") {
      const error = new GameSocketError(message.code, message.message, { ref: message.ref });
      if (!message.ref || !this._settle(message.ref, error)) this._emit("error", error);
      return;
    }
    if (!this._handle(message)) this._emit(message.type, message);
  }

  // A subclass's own handling; true when it emitted the message itself.
  _handle(_message) {
    return false;
  }

  _hello(message) {
    if (message.protocol !== PROTOCOL_VERSION) {
      console.warn(`gamesocket: the server speaks protocol ${message.protocol}, this client ${PROTOCOL_VERSION}`);
    }
    this.you = message.you || { user_id: null };
    this._attempt = 0;
    this._everOpened = true;
    this._refreshedAfter4401 = false;
    this._setState("open");
    clearInterval(this._pingTimer);
    if (this.timing.pingIntervalMs > 0) {
      this._pingTimer = setInterval(() => this._send({ type: "ping" }), this.timing.pingIntervalMs);
    }
    this._emit("hello", message);
    // Requests queued while offline, and those whose answer a drop lost, go (again) now,
    // with their first id: the server applies a given id at most once.
    for (const entry of this._pending.values()) this._send(entry.message);
  }

  _closed(code, reason) {
    clearInterval(this._pingTimer);
    this.you = null;
    this.lastClose = { code, reason };
    if (this._closedByUser) return;
    if (code === 4401 && this.refreshToken && !this._refreshedAfter4401) {
      this._refreshedAfter4401 = true;
      this._setState("reconnecting", { code, reason });
      Promise.resolve()
        .then(() => this.refreshToken())
        .then((token) => {
          this.token = token;
          if (!this._closedByUser) this._open();
        })
        .catch((err) => this._fail(4401, String((err && err.message) || err)));
      return;
    }
    if (FATAL_CLOSE_CODES.has(code) || code === 4401 || !this.autoReconnect) {
      this._fail(code, reason);
      return;
    }
    this._attempt += 1;
    const { backoffMinMs, backoffMaxMs, slowDownMs } = this.timing;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** (this._attempt - 1));
    const wait = SLOW_DOWN_CLOSE_CODES.has(code) ? Math.max(base, slowDownMs) : base;
    const delayMs = Math.round(wait * (0.75 + Math.random() * 0.5));
    this._setState("reconnecting", { code, reason, delayMs });
    this._retryTimer = setTimeout(() => this._open(), delayMs);
  }

  _rejectAll(error) {
    for (const id of [...this._pending.keys()]) this._settle(id, error);
  }

  _fail(code, reason) {
    this._closedByUser = true;
    this._rejectAll(new GameSocketError("closed", undefined, { closeCode: code }));
    const error = new GameSocketError(`close_${code}`, CLOSE_TEXT[code] || reason || `closed (${code})`, {
      closeCode: code,
    });
    this._setState("closed", { code, reason });
    this._emit("error", error);
    this._emit("fatal", error);
  }
}

/**
 * A live connection to one game (`/ws/{game_type}/{game_id}`). Create it with `connect()`.
 *
 * Properties, besides `SocketClient`'s: `version` (last version seen, or null),
 * `snapshot` (the latest snapshot), `presence` (the latest `presence` message).
 */
export class GameClient extends SocketClient {
  constructor(opts = {}) {
    super(opts);
    if (!opts.gameType || !opts.gameId) throw new TypeError("gamesocket: connect() needs gameType and gameId");
    this.gameType = opts.gameType;
    this.gameId = opts.gameId;
    this.version = Number.isInteger(opts.since) ? opts.since : null;
    this.snapshot = null;
    this.presence = null;
    this._open();
  }

  // -- events ------------------------------------------------------------------------

  /** Every new snapshot, from `state` or `update`, in version order, never twice. */
  onState(callback) {
    return this.on("snapshot", callback);
  }

  /** Every new `update` message (snapshot fields plus `event`), just before `onState`. */
  onUpdate(callback) {
    return this.on("update", callback);
  }

  /** Every `thinking` message: `{seat, depth, score, pv, nodes}`. */
  onThinking(callback) {
    return this.on("thinking", callback);
  }

  /** Every `presence` message: `{online: {seat: bool}, spectators}`. */
  onPresence(callback) {
    return this.on("presence", callback);
  }

  /** Every `chat` message: `{room, seq, user_id, name, text, at}`. */
  onChat(callback) {
    return this.on("chat", callback);
  }

  /** Every `rematch` message: `{offered_by}` for an offer, `{new_game_id}` once it exists. */
  onRematch(callback) {
    return this.on("rematch", callback);
  }

  /** Every `announcement` message: `{text, at}`. */
  onAnnouncement(callback) {
    return this.on("announcement", callback);
  }

  // -- actions -----------------------------------------------------------------------

  /**
   * Play a move for your seat (chess UCI or SAN, connect4 column, tictactoe cell); with
   * `version`, only if the game is still at that version.
   */
  move(move, { version } = {}) {
    const message = { type: "move", move };
    if (Number.isInteger(version)) message.version = version;
    return this.call(message);
  }

  /** Take a seat (the first free one if omitted). */
  join(seat) {
    return this.call(seat ? { type: "join", seat } : { type: "join" });
  }

  /** The server's AI plays your seat for this one move; the ack comes after its move. */
  aiMove(level) {
    const message = Number.isInteger(level) ? { type: "ai_move", level } : { type: "ai_move" };
    return this.call(message, { timeoutMs: this.timing.aiMoveTimeoutMs });
  }

  /** Resign your seat. */
  resign() {
    return this.call({ type: "resign" });
  }

  /** Draw offers: `action` is `"offer"`, `"accept"` or `"decline"`. */
  draw(action) {
    return this.call({ type: "draw", action });
  }

  /** The creator (or a seated player) aborts a game before its first move. */
  abort() {
    return this.call({ type: "abort" });
  }

  /** Claim the win when every opponent seat has been offline for 60 s. */
  claimVictory() {
    return this.call({ type: "claim_victory" });
  }

  /** Write to the game's chat (`room`: `"players"` or `"spectators"`; default by role). */
  chat(text, { room } = {}) {
    return this.call(room ? { type: "chat", text, room } : { type: "chat", text });
  }

  /** Ask for everything after `since` (default: the last version seen); no promise. */
  sync(since = this.version) {
    return this._send(Number.isInteger(since) ? { type: "sync", since } : { type: "sync" });
  }

  // -- internals ---------------------------------------------------------------------

  _path() {
    return `/ws/${encodeURIComponent(this.gameType)}/${encodeURIComponent(this.gameId)}`;
  }

  _query(params) {
    if (Number.isInteger(this.version)) params.set("since", String(this.version));
  }

  _hello(message) {
    if (!message.you) message = { ...message, you: { user_id: null, seat: null, role: "spectator" } };
    super._hello(message);
  }

  _handle(message) {
    if (message.type === "state" || message.type === "update") {
      this._snapshot(message, message.type === "update");
      return true;
    }
    if (message.type === "presence") this.presence = message;
    return false;
  }

  _snapshot(message, isUpdate) {
    if (Number.isInteger(this.version) && Number.isInteger(message.version)) {
      if (message.version <= this.version && this.snapshot !== null) return; // already seen
      if (isUpdate && this.snapshot !== null && message.version > this.version + 1) {
        // A gap should never happen on one connection; ask for what is missing.
        this.sync(this.version);
        return;
      }
    }
    this.version = message.version;
    const { type: _type, event: _event, ...snapshot } = message;
    this.snapshot = snapshot;
    // The message's own listeners first, so they can note the event before redrawing.
    this._emit(message.type, message);
    this._emit("snapshot", snapshot);
  }
}

/**
 * The lobby socket (`/ws/lobby`): public waiting games and open seeks, kept current.
 *
 * Properties, besides `SocketClient`'s: `games` (a Map game_id → snapshot) and `seeks`
 * (a Map seek_id → seek). Every `lobby` message replaces both; every `lobby_update`
 * adds and removes entries.
 */
export class LobbyClient extends SocketClient {
  constructor(opts = {}) {
    super(opts);
    this.games = new Map();
    this.seeks = new Map();
    this._open();
  }

  /** Every `lobby` message (the full lists, also after each reconnect). */
  onLobby(callback) {
    return this.on("lobby", callback);
  }

  /** Every `lobby_update` message: `{added, removed}`. */
  onLobbyUpdate(callback) {
    return this.on("lobby_update", callback);
  }

  /** `{games: [...], seeks: [...]}` after every `lobby` or `lobby_update`. */
  onChange(callback) {
    return this.on("change", callback);
  }

  /** Your own seek was paired: `{seek_id, game_id, game_type}`. */
  onPaired(callback) {
    return this.on("paired", callback);
  }

  /** Every `announcement` message: `{text, at}`. */
  onAnnouncement(callback) {
    return this.on("announcement", callback);
  }

  _path() {
    return "/ws/lobby";
  }

  _handle(message) {
    if (message.type === "lobby") {
      this.games = new Map((message.games || []).map((game) => [game.game_id, game]));
      this.seeks = new Map((message.seeks || []).map((seek) => [seek.seek_id, seek]));
    } else if (message.type === "lobby_update") {
      for (const id of message.removed || []) {
        this.games.delete(id);
        this.seeks.delete(id);
      }
      for (const item of message.added || []) {
        if (item && item.seek_id) this.seeks.set(item.seek_id, item);
        else if (item && item.game_id) this.games.set(item.game_id, item);
      }
    } else {
      return false;
    }
    this._emit(message.type, message);
    this._emit("change", { games: [...this.games.values()], seeks: [...this.seeks.values()] });
    return true;
  }
}

/**
 * Open a live connection to one game, as a player when `token` holds one of its seats,
 * else as a spectator. Options: `baseUrl`, `gameType`, `gameId`, `token`, `since`,
 * `refreshToken`, `reconnect`, `WebSocket`, and the timings of `DEFAULTS`.
 * @returns {GameClient}
 */
export function connect(opts) {
  return new GameClient(opts);
}

/**
 * Open the lobby socket. Options: `baseUrl`, `token` (optional: needed for `paired`),
 * `refreshToken`, `reconnect`, `WebSocket`, and the timings of `DEFAULTS`.
 * @returns {LobbyClient}
 */
export function connectLobby(opts) {
  return new LobbyClient(opts);
}
