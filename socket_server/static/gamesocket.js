/**
 * gamesocket.js: a small browser client for the gamesocket wire protocol, version 1
 * (docs/web-client.md; the contract itself is PROTOCOL.md). Plain ES module, no build
 * step, no dependencies.
 *
 * Usage (copy and adapt):
 *
 *   import { guestSignIn, createGame, connect } from "/gamesocket.js";
 *
 *   const baseUrl = location.origin;
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
 * is missed) and resends a move that was not acknowledged yet with the same `id`, which
 * the server never applies twice.
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
  4401: "Your sign-in is missing or has expired.",
  4403: "This game is private: you may not watch it.",
  4404: "There is no such game.",
  4408: "The connection was idle for too long; reconnecting…",
  4429: "Too many messages were sent; reconnecting more slowly…",
};

// Close codes after which reconnecting cannot help.
const FATAL_CLOSE_CODES = new Set([4403, 4404]);
const PING_INTERVAL_MS = 20000;
const CALL_TIMEOUT_MS = 20000;
const AI_MOVE_TIMEOUT_MS = 120000;
const BACKOFF_MIN_MS = 300;
const BACKOFF_MAX_MS = 8000;

/** An error answered by the server (REST or socket) or raised by the client. */
export class GameSocketError extends Error {
  /**
   * @param {string} code protocol error code (`illegal_move`, ...) or a client code
   * @param {string} [message] the server's message; defaults to a human text for `code`
   * @param {object} [extra] `status` (HTTP status), `ref` (message id)
   */
  constructor(code, message, extra = {}) {
    super(message || ERROR_TEXT[code] || code);
    this.name = "GameSocketError";
    this.code = code;
    Object.assign(this, extra);
  }
}

// ---------------------------------------------------------------------------------
// REST helpers
// ---------------------------------------------------------------------------------

async function request({ baseUrl = location.origin, token } = {}, method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(new URL(path, baseUrl), {
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
    const code = error.code || (response.status === 401 ? "unauthorized" : "internal");
    throw new GameSocketError(code, error.message, { status: response.status });
  }
  return data;
}

/**
 * The server's client configuration (`GET /api/config`).
 * @param {{baseUrl?: string}} [conn]
 * @returns {Promise<{mode: "embedded"|"supabase", supabase_url?: string, supabase_anon_key?: string}>}
 */
export function fetchConfig(conn) {
  return request(conn, "GET", "/api/config");
}

/**
 * Embedded mode only: a new guest account.
 * @param {{baseUrl?: string}} [conn]
 * @returns {Promise<{access_token: string, user_id: string, expires_at: string|number}>}
 */
export function guestSignIn(conn) {
  return request(conn, "POST", "/api/auth/guest", {});
}

/**
 * Create a game. Seats map a seat name to `"me"` or `{kind: "ai", level}`.
 * @param {{baseUrl?: string, token: string}} conn
 * @param {{game_type: string, seats?: object, public?: boolean, options?: object}} spec
 * @returns {Promise<object>} the snapshot of the new game
 */
export function createGame(conn, spec) {
  return request(conn, "POST", "/api/games", spec);
}

/**
 * The games the caller may see.
 * @param {{baseUrl?: string, token?: string}} conn
 * @param {{game_type?: string, status?: string, limit?: number}} [filters]
 * @returns {Promise<object[]>} snapshots
 */
export async function listGames(conn, filters = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const suffix = query.toString() ? `?${query}` : "";
  const data = await request(conn, "GET", `/api/games${suffix}`);
  // A bare list per the protocol; tolerate a `{games: [...]}` envelope as well.
  return Array.isArray(data) ? data : (data && data.games) || [];
}

/**
 * One game's snapshot.
 * @param {{baseUrl?: string, token?: string}} conn
 * @param {string} gameId
 * @returns {Promise<object>}
 */
export function getGame(conn, gameId) {
  return request(conn, "GET", `/api/games/${encodeURIComponent(gameId)}`);
}

/**
 * One game's move log: `[{version, seat, move, san?, at}]`.
 * @param {{baseUrl?: string, token?: string}} conn
 * @param {string} gameId
 * @returns {Promise<object[]>}
 */
export function getMoves(conn, gameId) {
  return request(conn, "GET", `/api/games/${encodeURIComponent(gameId)}/moves`);
}

// ---------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------

let idCounter = 0;

function newMessageId() {
  idCounter += 1;
  const random = Math.random().toString(36).slice(2, 10);
  return `c${Date.now().toString(36)}-${random}-${idCounter}`;
}

/**
 * A live connection to one game. Create it with `connect()`.
 *
 * Read-only properties: `version` (last version seen, or null), `snapshot` (the latest
 * snapshot), `you` (`{user_id, seat, role}` from `hello`), `presence`, `state`
 * (`"connecting"`, `"open"`, `"reconnecting"` or `"closed"`), `lastClose`
 * (`{code, reason}` of the last closed socket).
 */
export class GameClient {
  constructor({ baseUrl = location.origin, gameType, gameId, token, since, refreshToken, reconnect = true }) {
    if (!gameType || !gameId) throw new TypeError("connect() needs gameType and gameId");
    this.baseUrl = baseUrl;
    this.gameType = gameType;
    this.gameId = gameId;
    this.token = token || null;
    this.refreshToken = refreshToken || null;
    this.autoReconnect = reconnect;
    this.version = Number.isInteger(since) ? since : null;
    this.snapshot = null;
    this.you = null;
    this.presence = null;
    this.state = "connecting";
    this.lastClose = null;
    this._listeners = new Map();
    this._pending = new Map(); // id -> {message, resolve, reject, sent, timer}
    this._socket = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._closedByUser = false;
    this._refreshedAfter4401 = false;
    this._open();
  }

  // -- events ------------------------------------------------------------------------

  /**
   * Listen to one kind of event; returns a function that removes the listener.
   * Kinds: every server message type (`hello`, `state`, `update`, `thinking`,
   * `presence`, `ack`, `error`, `pong`, and extension types), plus `snapshot` (every
   * new snapshot), `message` (every message), `connection` (state changes) and
   * `fatal` (the connection closed for good).
   * @param {string} kind
   * @param {(payload: any) => void} callback
   * @returns {() => void}
   */
  on(kind, callback) {
    if (!this._listeners.has(kind)) this._listeners.set(kind, new Set());
    this._listeners.get(kind).add(callback);
    return () => this._listeners.get(kind).delete(callback);
  }

  /** Every new snapshot, from `state` or `update`, in version order. */
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

  /**
   * Every error as a `GameSocketError`: `error` messages that no pending call is
   * waiting for, and connection closes that reconnecting cannot fix (`code` is then
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
    for (const callback of this._listeners.get(kind) || []) {
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

  // -- actions -----------------------------------------------------------------------

  /**
   * Play a move for your seat. Resolves with the `ack` (`{ref, version}`), rejects with a
   * `GameSocketError`. An unacknowledged move is resent with the same id after a
   * reconnect; the server applies it at most once.
   * @param {string|number} move chess UCI or SAN, connect4 column, tictactoe cell
   * @param {{version?: number}} [opts] only play if the game is still at `version`
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

  /**
   * Let the server's AI play your seat for this one move (at `level`, or the server's
   * default). The ack comes once the AI has moved, so the wait is long.
   */
  aiMove(level) {
    const message = Number.isInteger(level) ? { type: "ai_move", level } : { type: "ai_move" };
    return this.call(message, { timeoutMs: AI_MOVE_TIMEOUT_MS });
  }

  /** Resign your seat. */
  resign() {
    return this.call({ type: "resign" });
  }

  /** Draw offers: `action` is `"offer"`, `"accept"` or `"decline"`. */
  draw(action) {
    return this.call({ type: "draw", action });
  }

  /** Extension (docs/protocol-notes.md): the creator aborts a game that has not started. */
  abort() {
    return this.call({ type: "abort" });
  }

  /** Ask for everything after `since` (default: the last version seen). */
  sync(since = this.version) {
    return this._send(Number.isInteger(since) ? { type: "sync", since } : { type: "sync" });
  }

  /**
   * Send any client message with a fresh `id`; resolves on its `ack`, rejects on an
   * `error` with the same `ref`, on a timeout, or when the connection is lost after
   * it was sent (moves excepted: they are resent).
   * @param {object} message with a `type`
   * @param {{timeoutMs?: number}} [opts]
   * @returns {Promise<{ref: string, version?: number}>}
   */
  call(message, { timeoutMs = CALL_TIMEOUT_MS } = {}) {
    if (this._closedByUser) return Promise.reject(new GameSocketError("closed"));
    const id = newMessageId();
    const full = { ...message, id };
    return new Promise((resolve, reject) => {
      const entry = { message: full, resolve, reject, sent: false };
      entry.timer = setTimeout(() => this._settle(id, new GameSocketError("timeout", undefined, { ref: id })), timeoutMs);
      this._pending.set(id, entry);
      if (this._send(full)) entry.sent = true;
    });
  }

  /** Reconnect now (cancelling any wait), resuming from the last version seen. */
  resume() {
    this._closedByUser = false;
    clearTimeout(this._retryTimer);
    if (this._socket && this._socket.readyState <= WebSocket.OPEN) return;
    this._open();
  }

  /**
   * Drop the socket as if the network failed; the client reconnects by itself. Meant
   * for tests and for "reconnect" buttons.
   */
  dropConnection() {
    if (this._socket) this._socket.close(4000, "dropped by client");
  }

  /** Close for good; pending calls are rejected. */
  close() {
    this._closedByUser = true;
    clearTimeout(this._retryTimer);
    clearInterval(this._pingTimer);
    if (this._socket) this._socket.close(1000, "bye");
    for (const id of [...this._pending.keys()]) this._settle(id, new GameSocketError("closed"));
    this._setState("closed", { code: 1000 });
  }

  // -- internals ---------------------------------------------------------------------

  _url() {
    const url = new URL(`/ws/${encodeURIComponent(this.gameType)}/${encodeURIComponent(this.gameId)}`, this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.token) url.searchParams.set("token", this.token);
    if (Number.isInteger(this.version)) url.searchParams.set("since", String(this.version));
    return url.toString();
  }

  _open() {
    this._setState(this._attempt === 0 && this.snapshot === null ? "connecting" : "reconnecting");
    const socket = new WebSocket(this._url());
    this._socket = socket;
    socket.onmessage = (event) => {
      if (socket === this._socket) this._receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket === this._socket) this._closed(event.code, event.reason);
    };
  }

  _send(message) {
    if (!this._socket || this._socket.readyState !== WebSocket.OPEN || this.you === null) return false;
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

  _receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("gamesocket: ignoring a frame that is not JSON");
      return;
    }
    if (!message || typeof message !== "object") return;
    this._emit("message", message);
    switch (message.type) {
      case "hello":
        this._hello(message);
        break;
      case "state":
        this._snapshot(message, false);
        break;
      case "update":
        this._snapshot(message, true);
        break;
      case "presence":
        this.presence = message;
        break;
      case "ack":
        this._settle(message.ref, null, message);
        break;
      case "error": {
        const error = new GameSocketError(message.code, message.message, { ref: message.ref });
        if (!message.ref || !this._settle(message.ref, error)) this._emit("error", error);
        break;
      }
      default:
        break;
    }
    // `state` and `update` are emitted by `_snapshot`, only when they are new.
    if (!["error", "state", "update"].includes(message.type)) this._emit(message.type, message);
  }

  _hello(message) {
    if (message.protocol !== PROTOCOL_VERSION) {
      console.warn(`gamesocket: the server speaks protocol ${message.protocol}, this client ${PROTOCOL_VERSION}`);
    }
    this.you = message.you || { user_id: null, seat: null, role: "spectator" };
    this._attempt = 0;
    this._refreshedAfter4401 = false;
    this._setState("open");
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this._send({ type: "ping" }), PING_INTERVAL_MS);
    // Messages queued while offline, and moves whose ack was lost, go (again) now.
    for (const entry of this._pending.values()) {
      if (this._send(entry.message)) entry.sent = true;
    }
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

  _closed(code, reason) {
    clearInterval(this._pingTimer);
    this.you = null;
    this.lastClose = { code, reason };
    // A call whose outcome is unknown cannot be retried safely, except a move (by id).
    for (const [id, entry] of [...this._pending]) {
      if (entry.sent && entry.message.type !== "move") {
        this._settle(id, new GameSocketError("disconnected", undefined, { ref: id }));
      } else {
        entry.sent = false;
      }
    }
    if (this._closedByUser) return;
    if (code === 4401 && this.refreshToken && !this._refreshedAfter4401) {
      this._refreshedAfter4401 = true;
      this._setState("reconnecting", { code, reason });
      Promise.resolve(this.refreshToken())
        .then((token) => {
          this.token = token;
          if (!this._closedByUser) this._open();
        })
        .catch((err) => this._fail(4401, String(err)));
      return;
    }
    if (FATAL_CLOSE_CODES.has(code) || code === 4401 || !this.autoReconnect) {
      this._fail(code, reason);
      return;
    }
    this._attempt += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this._attempt - 1));
    const delayMs = Math.round((code === 4429 ? Math.max(base, 2000) : base) * (0.75 + Math.random() * 0.5));
    this._setState("reconnecting", { code, reason, delayMs });
    this._retryTimer = setTimeout(() => this._open(), delayMs);
  }

  _fail(code, reason) {
    this._closedByUser = true;
    for (const id of [...this._pending.keys()]) this._settle(id, new GameSocketError("closed"));
    const error = new GameSocketError(`close_${code}`, CLOSE_TEXT[code] || reason || `closed (${code})`, {
      closeCode: code,
    });
    this._setState("closed", { code, reason });
    this._emit("error", error);
    this._emit("fatal", error);
  }
}

/**
 * Open a live connection to one game (as a player when `token` holds one of its seats,
 * else as a spectator).
 * @param {object} opts
 * @param {string} [opts.baseUrl] the server's origin; defaults to this page's
 * @param {string} opts.gameType `chess`, `connect4`, `tictactoe`
 * @param {string} opts.gameId
 * @param {string} [opts.token] access token (required for players and private games)
 * @param {number} [opts.since] last version already known; only later updates are sent
 * @param {() => Promise<string>} [opts.refreshToken] called once after a 4401 close to
 *   get a fresh token before reconnecting
 * @param {boolean} [opts.reconnect=true] reconnect automatically after a drop
 * @returns {GameClient}
 */
export function connect(opts) {
  return new GameClient(opts);
}
