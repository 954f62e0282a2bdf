// The gamesocket web page: a lobby, boards for chess / Connect Four / tic-tac-toe (and a
// generic board for any other game), and live watching. Routes: `#/` (lobby) and
// `#/game/<type>/<id>`. Everything goes through the protocol module gamesocket.js (the
// clients/js package); see docs/web-client.md. Other games get a real drawing through
// `GameSocketPage.registerRenderer(gameType, render)` (below).

import {
  CLOSE_TEXT,
  ERROR_TEXT,
  GameSocketError,
  cancelSeek,
  connect,
  connectLobby,
  createGame,
  createSeek,
  fetchConfig,
  getLeaderboard,
  getMe,
  getMoves,
  getSeek,
  guestSignIn,
  joinGame,
  listGames,
  requestRematch,
  updateMe,
} from "./gamesocket.js";
import { createChat } from "./chat.js";
import { $, el } from "./dom.js";
import { lineToSan } from "./san.js";

const SEATS = { chess: ["white", "black"], connect4: ["red", "yellow"], tictactoe: ["x", "o"] };
const GAME_NAMES = { chess: "Chess", connect4: "Connect Four", tictactoe: "Tic-tac-toe" };
const REASON_TEXT = {
  checkmate: "by checkmate",
  stalemate: "stalemate",
  insufficient_material: "insufficient material",
  threefold_repetition: "threefold repetition",
  fifty_moves: "the fifty-move rule",
  four_in_a_row: "four in a row",
  three_in_a_row: "three in a row",
  board_full: "the board is full",
  resignation: "by resignation",
  draw_agreed: "agreed",
  aborted: "aborted",
  timeout: "on time",
  abandoned: "by forfeit",
  timeout_vs_insufficient_material: "out of time, but the other side cannot checkmate",
};
// The lobby form's time controls: POST /api/games's `clock` (PROTOCOL.md "Clocks").
const TIME_CONTROLS = {
  "1+0": { initial_ms: 60000, increment_ms: 0 },
  "3+2": { initial_ms: 180000, increment_ms: 2000 },
  "5+0": { initial_ms: 300000, increment_ms: 0 },
  "10+5": { initial_ms: 600000, increment_ms: 5000 },
  "5d3": { initial_ms: 300000, delay_ms: 3000 },
  "1day": { per_move_ms: 86400000 },
};
const CLOCK_TICK_MS = 100;
const LOW_TIME_MS = 10000; // a clock under 10 s (or under 10% of its budget) is low
// Solid glyphs for both sides; CSS colours them (white pieces get an outline).
const GLYPHS = { k: "\u265A", q: "\u265B", r: "\u265C", b: "\u265D", n: "\u265E", p: "\u265F\uFE0E" };
const TOKEN_KEY = "gamesocket.guest";
const NAME_ASKED_KEY = "gamesocket.name-asked"; // the lobby asked this browser's guest for a name
const MESSAGE_MS = 6000;

function seatLabel(seat) {
  seat = String(seat);
  return seat.length <= 1 ? seat.toUpperCase() : seat[0].toUpperCase() + seat.slice(1);
}

// The seats of a game in turn order: the built-in games' own order, else the snapshot's.
function seatsOf(gameType, snapshot) {
  return SEATS[gameType] || Object.keys((snapshot && snapshot.seats) || {});
}

function gameName(gameType) {
  const renderer = renderers.get(gameType);
  return (renderer && renderer.name) || GAME_NAMES[gameType] || seatLabel(gameType);
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

let messageTimer = null;

function showMessage(text, { code = "", sticky = false } = {}) {
  const box = $("#message");
  box.textContent = text;
  box.dataset.code = code;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (!sticky) messageTimer = setTimeout(() => (box.hidden = true), MESSAGE_MS);
}

// An administrator's announcement (PROTOCOL.md "Announcements"), on the lobby's or the
// game's socket, stays until the next message.
function showAnnouncement({ text }) {
  showMessage(`Announcement: ${text}`, { code: "announcement", sticky: true });
}

function showError(err) {
  if (err instanceof GameSocketError) {
    const text = ERROR_TEXT[err.code] || err.message;
    // The server's own message often says why (e.g. which move is illegal).
    const detail = err.message && err.message !== text ? ` (${err.message})` : "";
    showMessage(text + detail, { code: err.code, sticky: Boolean(err.closeCode) });
  } else {
    showMessage(String((err && err.message) || err), { code: "client" });
  }
}

// ---------------------------------------------------------------------------------
// Auth: guest tokens in embedded mode, supabase-js in Supabase mode
// ---------------------------------------------------------------------------------

const auth = {
  mode: "embedded",
  token: null,
  userId: null,
  supabase: null,

  name: null, // the display name from GET /api/me (null: the server has no profiles)
  canRate: false, // a signed-in account (not a guest): may play rated games

  async init() {
    const config = await fetchConfig();
    this.mode = config.mode === "supabase" ? "supabase" : "embedded";
    if (this.mode === "supabase") await this.initSupabase(config);
    else await this.initGuest();
    await this.loadProfile();
  },

  async loadProfile() {
    try {
      const profile = await this.call((conn) => getMe(conn));
      this.useProfile(profile);
    } catch (err) {
      // 404: a server without profiles; anything else: the page works on without a name.
      if (!(err instanceof GameSocketError && err.status === 404)) showError(err);
    }
  },

  useProfile(profile) {
    this.name = profile.name;
    $("#me").textContent = profile.name;
    $("#rename").hidden = false;
  },

  async initGuest() {
    const saved = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
    if (saved && saved.access_token && !tokenExpired(saved.expires_at)) this.useGuest(saved);
    else await this.newGuest();
  },

  async newGuest() {
    // A guest whose token was refused keeps the name it had (PROTOCOL.md "Players and names").
    const guest = await guestSignIn(undefined, { name: this.name || undefined });
    localStorage.setItem(TOKEN_KEY, JSON.stringify(guest));
    this.useGuest(guest);
  },

  useGuest(guest) {
    this.token = guest.access_token;
    this.userId = guest.user_id;
    $("#me").textContent = this.name || `guest ${guest.user_id.slice(0, 8)}`;
  },

  async initSupabase(config) {
    await loadScript(new URL("./vendor/supabase.js", import.meta.url).href);
    this.supabase = window.supabase.createClient(config.supabase_url, config.supabase_anon_key);
    this.supabase.auth.onAuthStateChange((_event, session) => this.useSession(session));
    let {
      data: { session },
    } = await this.supabase.auth.getSession();
    if (!session) {
      const { data, error } = await this.supabase.auth.signInAnonymously();
      if (error) {
        showSignIn(error.message);
        throw new Error("sign-in needed");
      }
      session = data.session;
    }
    this.useSession(session);
  },

  useSession(session) {
    if (!session) return;
    this.token = session.access_token;
    this.userId = session.user.id;
    this.canRate = !session.user.is_anonymous; // guests play unrated only
    $("#me").textContent = this.name || session.user.email || `anonymous ${session.user.id.slice(0, 8)}`;
  },

  /** A fresh token after the server refused ours (401 / 4401). */
  async refresh() {
    if (this.mode === "embedded") {
      await this.newGuest();
    } else {
      const { data, error } = await this.supabase.auth.refreshSession();
      if (error || !data.session) throw new GameSocketError("unauthorized", error && error.message);
      this.useSession(data.session);
    }
    return this.token;
  },

  conn() {
    return { baseUrl: location.origin, token: this.token };
  },

  /** Run a REST call; on 401 get a fresh token and try once more. */
  async call(fn) {
    try {
      return await fn(this.conn());
    } catch (err) {
      if (!(err instanceof GameSocketError) || err.status !== 401) throw err;
      await this.refresh();
      return fn(this.conn());
    }
  },
};

function tokenExpired(expiresAt) {
  if (!expiresAt) return false;
  const ms = typeof expiresAt === "number" ? expiresAt * 1000 : Date.parse(expiresAt);
  return Number.isFinite(ms) && ms < Date.now() + 60000;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = el("script", { src });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

function showSignIn(reason) {
  $("#signin").hidden = false;
  $("#signin-status").textContent = reason ? `Anonymous sign-in is not available: ${reason}` : "";
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("#signin-email").value.trim();
  const { error } = await auth.supabase.auth.signInWithOtp({
    email,
    options: { emailRedirectTo: location.href },
  });
  $("#signin-status").textContent = error ? error.message : "Check your email for the sign-in link.";
});

// ---------------------------------------------------------------------------------
// Names (PATCH /api/me) and the leaderboard (GET /api/leaderboard)
// ---------------------------------------------------------------------------------

// The lobby asks a guest once for a name (until saved or "Not now"); "Change name" in
// the top bar shows the same form again.
function showNameCard(focus = false) {
  $("#name-card").hidden = false;
  $("#name-input").value = auth.name || "";
  $("#name-error").hidden = true;
  if (focus) $("#name-input").focus();
}

function hideNameCard() {
  $("#name-card").hidden = true;
  localStorage.setItem(NAME_ASKED_KEY, "1");
}

$("#name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#name-save").disabled = true;
  try {
    const profile = await auth.call((conn) => updateMe(conn, { name: $("#name-input").value }));
    auth.useProfile(profile);
    hideNameCard();
  } catch (err) {
    const box = $("#name-error");
    box.hidden = false;
    box.textContent = err instanceof GameSocketError && err.code === "bad_message" ? `That name cannot be used: ${err.message}` : String(err.message || err);
  } finally {
    $("#name-save").disabled = false;
  }
});
$("#name-skip").addEventListener("click", hideNameCard);
$("#rename").addEventListener("click", () => {
  if (location.hash.startsWith("#/game/") || location.hash.startsWith("#/leaderboard")) location.hash = "#/";
  showNameCard(true);
});

async function showLeaderboard() {
  const select = $("#leaderboard-game-type");
  if (!select.options.length) select.replaceChildren(...[...$("#new-game-type").options].map((option) => option.cloneNode(true)));
  const gameType = select.value;
  const body = $("#leaderboard-table tbody");
  try {
    const rows = await auth.call((conn) => getLeaderboard(conn, { game_type: gameType, limit: 50 }));
    if (select.value !== gameType) return;
    body.replaceChildren(
      ...rows.map((row, i) =>
        el(
          "tr",
          { "data-user-id": row.user_id },
          el("td", { text: String(i + 1) }),
          el("td", { class: "leader-name", text: row.name }),
          el("td", { class: "leader-rating", text: String(Math.round(row.rating)) }),
          el("td", { text: String(row.games) }),
        ),
      ),
    );
    $("#leaderboard-empty").hidden = rows.length > 0;
    $("#leaderboard-table").dataset.gameType = gameType;
    $("#leaderboard-table").dataset.count = String(rows.length);
  } catch (err) {
    showError(err);
  }
}

$("#leaderboard-game-type").addEventListener("change", showLeaderboard);

// ---------------------------------------------------------------------------------
// Lobby
// ---------------------------------------------------------------------------------

function updateNewGameForm() {
  const type = $("#new-game-type").value;
  const opponent = $("#new-opponent").value;
  const [first, second] = SEATS[type];
  const side = $("#new-side");
  const index = Math.max(0, side.selectedIndex); // keep "first / second / random" across games
  side.replaceChildren(
    el("option", { value: first, text: seatLabel(first) }),
    el("option", { value: second, text: seatLabel(second) }),
    el("option", { value: "random", text: "Random" }),
  );
  side.selectedIndex = index;
  $("#new-level-label").textContent = opponent === "aivsai" ? `${seatLabel(first)} AI level` : "AI level";
  $("#new-level-2-label").textContent = `${seatLabel(second)} AI level`;
  for (const label of document.querySelectorAll("#new-game [data-for]")) {
    label.hidden = !label.dataset.for.split(" ").includes(opponent) || ("rated" in label.dataset && !auth.canRate);
  }
  $("#new-advanced").hidden = type !== "chess";
}

function aiSeat(input) {
  const level = Math.min(10, Math.max(1, Number.parseInt(input.value, 10) || 3));
  return { kind: "ai", level };
}

$("#new-game-type").addEventListener("change", updateNewGameForm);
$("#new-opponent").addEventListener("change", updateNewGameForm);

$("#new-game").addEventListener("submit", async (event) => {
  event.preventDefault();
  const type = $("#new-game-type").value;
  const opponent = $("#new-opponent").value;
  const [first, second] = SEATS[type];
  let mine = $("#new-side").value;
  if (mine === "random") mine = Math.random() < 0.5 ? first : second;
  const other = mine === first ? second : first;
  const seats = {};
  const options = {};
  if (opponent === "aivsai") {
    seats[first] = aiSeat($("#new-level"));
    seats[second] = aiSeat($("#new-level-2"));
    options.ai_delay_ms = Number($("#new-speed").value);
  } else {
    seats[mine] = "me";
    if (opponent === "ai") seats[other] = aiSeat($("#new-level"));
  }
  const fen = $("#new-fen").value.trim();
  if (type === "chess" && fen) options.fen = fen;
  const spec = { game_type: type, seats, public: $("#new-public").checked };
  if (opponent === "friend" && auth.canRate && $("#new-rated").checked) spec.rated = true;
  if (Object.keys(options).length) spec.options = options;
  const clock = TIME_CONTROLS[$("#new-clock").value];
  if (clock) spec.clock = { ...clock };
  const button = $("#create-game");
  button.disabled = true;
  try {
    const game = await auth.call((conn) => createGame(conn, spec));
    location.hash = `#/game/${type}/${game.game_id}`;
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

function isMe(seat) {
  return Boolean(seat && seat.kind !== "ai" && seat.user_id && seat.user_id === auth.userId);
}

function describeSeat(seat) {
  if (!seat) return "open";
  if (seat.kind === "ai") return `AI ${seat.level ?? ""}`.trim();
  const who = isMe(seat) ? "you" : seat.name || "player";
  return Number.isFinite(seat.rating) ? `${who} (${Math.round(seat.rating)})` : who;
}

// What a lobby row's link does: your own games are "Play" (your move) or "Resume";
// others "Join" (a free seat) or "Watch".
function lobbyAction(game, seatNames) {
  const mine = seatNames.filter((s) => isMe(game.seats?.[s]));
  if (mine.length) {
    const yourMove = game.status === "active" && mine.includes(game.turn);
    return yourMove ? { text: "Play", kind: "play" } : { text: "Resume", kind: "resume" };
  }
  const free = game.status === "waiting" && seatNames.some((s) => !game.seats?.[s]);
  return free ? { text: "Join", kind: "join" } : { text: "Watch", kind: "watch" };
}

// The lobby's games: the REST lists (waiting and active games, read on entering the
// lobby and on Refresh) merged with the lobby socket's public waiting games, which keep
// the list current: a game the socket adds appears at the top, one it removes (joined,
// aborted) goes. `seek` is the viewer's own waiting seek ("Play someone").
const lobby = { rest: new Map(), live: new Map(), socket: null, seek: null, seekTimer: null };
const SEEK_POLL_MS = 3000;

async function refreshGames() {
  try {
    const lists = await auth.call((conn) =>
      Promise.all([listGames(conn, { status: "waiting", limit: 50 }), listGames(conn, { status: "active", limit: 50 })]),
    );
    // A game that starts between the two requests would be in both lists.
    lobby.rest = new Map(lists.flat().map((game) => [game.game_id, game]));
    renderLobbyGames();
  } catch (err) {
    showError(err);
  }
}

function renderLobbyGames() {
  const fresh = [...lobby.live.values()].filter((game) => !lobby.rest.has(game.game_id));
  const listed = [...lobby.rest.values()].map((game) => lobby.live.get(game.game_id) || game);
  renderGames([...fresh, ...listed]);
}

function openLobbySocket() {
  if (lobby.socket) return;
  const socket = connectLobby({ token: auth.token, refreshToken: () => auth.refresh() });
  lobby.socket = socket;
  socket.onLobbyUpdate((message) => {
    for (const id of message.removed || []) lobby.rest.delete(id);
  });
  socket.onChange(({ games, seeks }) => {
    lobby.live = new Map(games.map((game) => [game.game_id, game]));
    renderLobbyGames();
    renderSeeks(seeks);
  });
  socket.onPaired((message) => seekPaired(message.seek_id, message.game_type, message.game_id));
  socket.onAnnouncement(showAnnouncement);
  socket.onConnection(({ state }) => {
    const badge = $("#lobby-live");
    badge.dataset.state = state;
    badge.textContent = state === "open" ? "live" : state === "reconnecting" ? "reconnecting…" : "";
  });
  socket.onError((err) => (err.closeCode ? showError(err) : null));
}

function closeLobbySocket() {
  if (lobby.socket) lobby.socket.close();
  lobby.socket = null;
  lobby.live = new Map();
  $("#lobby-live").dataset.state = "idle";
}

// ---------------------------------------------------------------------------------
// Play someone: seeks (PROTOCOL.md "Seeks")
// ---------------------------------------------------------------------------------

function seekLabel(gameType, clock) {
  return clock ? `${gameName(gameType)} · ${describeTimeControl(clock)}` : gameName(gameType);
}

// Post a seek; a waiting one is watched through the lobby socket's `paired` and, in
// case that socket is down, polled (which also keeps it from lapsing).
async function startSeek(spec) {
  if (lobby.seek) return;
  $("#seek-button").disabled = true;
  try {
    const answer = await auth.call((conn) => createSeek(conn, spec));
    if (answer.status === "paired") {
      enterGame(spec.game_type, answer.game_id);
      return;
    }
    lobby.seek = { id: answer.seek_id, spec };
    lobby.seekTimer = setInterval(pollSeek, SEEK_POLL_MS);
    renderSeekStatus();
    if (lobby.socket) renderSeeks([...lobby.socket.seeks.values()]);
  } catch (err) {
    showError(err);
  } finally {
    $("#seek-button").disabled = Boolean(lobby.seek);
  }
}

async function pollSeek() {
  const current = lobby.seek;
  if (!current) return;
  try {
    const answer = await auth.call((conn) => getSeek(conn, current.id));
    if (lobby.seek !== current) return;
    if (answer.status === "paired") seekPaired(current.id, current.spec.game_type, answer.game_id);
    else if (answer.status !== "waiting") {
      clearSeek();
      showMessage("Nobody came: the search has ended.", { code: `seek_${answer.status}` });
    }
  } catch (err) {
    showError(err);
  }
}

function seekPaired(seekId, gameType, gameId) {
  if (!lobby.seek || lobby.seek.id !== seekId) return;
  clearSeek();
  enterGame(gameType, gameId);
}

function clearSeek() {
  clearInterval(lobby.seekTimer);
  lobby.seekTimer = null;
  lobby.seek = null;
  renderSeekStatus();
}

// Cancel: withdraw the seek (it may have been paired meanwhile: then play).
async function withdrawSeek() {
  const current = lobby.seek;
  if (!current) return;
  clearSeek();
  try {
    const answer = await auth.call((conn) => cancelSeek(conn, current.id));
    if (answer.status === "paired" && !$("#lobby").hidden) enterGame(current.spec.game_type, answer.game_id);
  } catch (err) {
    showError(err);
  }
}

function renderSeekStatus() {
  const current = lobby.seek;
  const box = $("#seek-status");
  box.hidden = !current;
  box.dataset.state = current ? "waiting" : "idle";
  $("#seek-button").disabled = Boolean(current);
  if (current) {
    const rated = current.spec.rated ? " · rated" : "";
    $("#seek-text").textContent = `Looking for an opponent: ${seekLabel(current.spec.game_type, current.spec.clock)}${rated}…`;
  }
}

// The waiting seeks of the lobby socket; another player's gets a button that posts the
// same seek, which pairs with it at once.
function renderSeeks(seeks) {
  const mine = lobby.seek && lobby.seek.id;
  $("#seeks").replaceChildren(
    ...seeks.map((seek) => {
      const spec = { game_type: seek.game_type };
      if (seek.clock) spec.clock = seek.clock;
      if (seek.rated) spec.rated = true;
      const what = `${seekLabel(seek.game_type, seek.clock)}${seek.rated ? " · rated" : ""}`;
      return el(
        "li",
        { "data-seek-id": seek.seek_id, "data-game-type": seek.game_type, "data-mine": String(seek.seek_id === mine) },
        el("b", { class: "seek-name", text: seek.seek_id === mine ? "you" : seek.name || "a player" }),
        " ",
        el("span", { class: "muted", text: what }),
        " ",
        seek.seek_id === mine
          ? ""
          : el("button", { type: "button", class: "seek-accept", text: "Play", onclick: () => startSeek(spec) }),
      );
    }),
  );
  $("#seeks-empty").hidden = seeks.length > 0;
}

function enterGame(gameType, gameId) {
  location.hash = `#/game/${gameType}/${gameId}`;
}

$("#seek-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const spec = { game_type: $("#seek-game-type").value };
  const clock = TIME_CONTROLS[$("#seek-clock").value];
  if (clock) spec.clock = { ...clock };
  if (auth.canRate && $("#seek-rated").checked) spec.rated = true;
  startSeek(spec);
});
$("#seek-cancel").addEventListener("click", withdrawSeek);

// The seek form offers the same games and time controls as the new-game form.
function fillSeekForm() {
  for (const [from, to] of [
    ["#new-game-type", "#seek-game-type"],
    ["#new-clock", "#seek-clock"],
  ]) {
    $(to).replaceChildren(...[...$(from).options].map((option) => option.cloneNode(true)));
  }
}

function renderGames(games) {
  const body = $("#games tbody");
  body.replaceChildren(
    ...games.map((game) => {
      const seatNames = seatsOf(game.game_type, game);
      const players = seatNames.map((s) => `${seatLabel(s)}: ${describeSeat(game.seats?.[s])}`).join(" · ");
      const link = `#/game/${game.game_type}/${game.game_id}`;
      const action = lobbyAction(game, seatNames);
      return el(
        "tr",
        { "data-game-id": game.game_id, "data-game-type": game.game_type, "data-action": action.kind },
        el(
          "td",
          { class: "game-name" },
          gameName(game.game_type),
          game.clock ? el("span", { class: "muted game-clock", text: ` · ${describeTimeControl(game.clock)}` }) : "",
        ),
        el("td", { class: "game-players", text: players }),
        el("td", { class: "game-status", text: game.status }),
        el("td", { class: "game-moves", "data-moves": game.moves ?? 0, text: String(game.moves ?? 0) }),
        el("td", { class: "game-action" }, el("a", { href: link, class: `button ${action.kind}-link`, text: action.text })),
      );
    }),
  );
  $("#games-empty").hidden = games.length > 0;
  $("#games").dataset.count = String(games.length);
}

$("#refresh-games").addEventListener("click", refreshGames);

// ---------------------------------------------------------------------------------
// Game view
// ---------------------------------------------------------------------------------

const view = {
  client: null,
  gameType: null,
  gameId: null,
  snapshot: null,
  selected: null, // chess: the square whose piece is picked up
  busy: false, // a move is on its way
  drawOffered: false,
  failed: null, // the GameSocketError that ended the connection for good
  noAi: false, // the server said this game type has no AI (ai_move refused)
  log: new Map(), // games without a history in the board: version -> {version, seat, move}
  drawn: {}, // part name -> the inputs it was last drawn from (see renderPart)
  clock: null, // the running clocks as last heard (see noteClock)
  serverOffset: null, // the server's time minus performance.now(), in ms (see noteServerTime)
  nextUpdate: null, // the `update` whose snapshot comes next (its event)
  ticker: null, // the interval that redraws the clocks
  offlineSince: {}, // seat -> performance.now() when presence first said it was offline
  invite: null, // a private game's invite code, as the server showed it to this seated player
  rematch: { offers: new Set(), newGameId: null }, // seats that asked; the rematch's id
};

const chat = createChat({
  rest: (fn) => auth.call(fn),
  showError,
  myUserId: () => (view.client && view.client.you && view.client.you.user_id) || auth.userId,
});

function mySeats(snapshot) {
  if (!snapshot) return [];
  const me = (view.client && view.client.you && view.client.you.user_id) || auth.userId;
  return Object.entries(snapshot.seats || {})
    .filter(([, seat]) => seat && seat.kind !== "ai" && seat.user_id === me)
    .map(([name]) => name);
}

function myTurn(snapshot) {
  return snapshot && snapshot.status === "active" && mySeats(snapshot).includes(snapshot.turn);
}

// A person (not the AI, which never answers a draw offer, nor the viewer in another
// seat) holds one of the other seats.
function hasHumanOpponent(snapshot) {
  const mine = mySeats(snapshot);
  return seatsOf(snapshot.game_type, snapshot).some((name) => {
    const seat = snapshot.seats?.[name];
    return !mine.includes(name) && seat && seat.kind !== "ai";
  });
}

function openGame(gameType, gameId) {
  if (view.client && view.gameId === gameId) return;
  closeGame();
  Object.assign(view, { gameType, gameId, snapshot: null, selected: null, busy: false, drawOffered: false, failed: null, noAi: false });
  view.log = new Map();
  view.drawn = {};
  Object.assign(view, { clock: null, serverOffset: null, nextUpdate: null, offlineSince: {}, invite: null });
  view.rematch = { offers: new Set(), newGameId: null };
  clearInterval(view.ticker);
  view.ticker = setInterval(tick, CLOCK_TICK_MS);
  $("#game-title").textContent = gameName(gameType);
  // Nothing of the previous game may linger: tests and styles read these attributes.
  for (const id of ["#board", "#moves", "#status", "#thinking", "#presence"]) {
    const node = $(id);
    for (const key of Object.keys(node.dataset)) delete node.dataset[key];
  }
  $("#board").replaceChildren();
  for (const id of ["#clock-top", "#clock-bottom"]) {
    $(id).replaceChildren();
    $(id).hidden = true;
  }
  $("#time-control").hidden = true;
  $("#claim").hidden = true;
  $("#moves").replaceChildren();
  $("#players").replaceChildren();
  $("#presence").textContent = "";
  $("#status").textContent = "Connecting…";
  $("#message").hidden = true;
  $("#game-error").hidden = true;
  $("#game-layout").hidden = false;
  $("#after-game").hidden = true;
  hideThinking();
  const client = connect({
    gameType,
    gameId,
    token: auth.token,
    refreshToken: () => auth.refresh(),
  });
  view.client = client;
  window.gamesocketApp.client = client;
  client.onState((snapshot) => {
    const update = view.nextUpdate && view.nextUpdate.version === snapshot.version ? view.nextUpdate : null;
    view.nextUpdate = null;
    noteClock(snapshot, update);
    view.snapshot = snapshot;
    // Only a `state` addressed to this player carries the code; updates never do.
    if (snapshot.invite) view.invite = snapshot.invite;
    view.busy = false;
    if (view.drawOffered && snapshot.status !== "active") view.drawOffered = false;
    render();
  });
  client.onUpdate((update) => {
    view.nextUpdate = update;
    if (update.event && update.event.kind !== "draw") hideThinking(true);
    if (update.event && update.event.kind === "move") {
      view.drawOffered = false;
      recordMove({ version: update.version, ...update.event });
    }
  });
  client.onThinking(showThinking);
  client.onPresence(renderPresence);
  // A close that ends the connection gets the error view instead of a passing message.
  client.onError((err) => (err.closeCode ? null : showError(err)));
  client.on("fatal", showGameError);
  client.onConnection(renderConnection);
  client.on("hello", () => render());
  client.on("message", handleExtensionMessage);
  client.onRematch(handleRematch);
  client.onAnnouncement(showAnnouncement);
  chat.open(client, gameId);
  // A `state` (first connect, or a resume the server could not replay) carries no
  // events: fetch the move log again so the list has no holes.
  if (gameType !== "chess") client.on("state", () => loadMoveLog(gameId));
}

function closeGame() {
  clearInterval(view.ticker);
  view.ticker = null;
  if (view.client) view.client.close();
  chat.close();
  view.client = null;
  view.gameId = null;
  window.gamesocketApp.client = null;
  $("#connection").dataset.state = "idle";
  $("#connection").textContent = "";
}

// The game cannot be shown (no such game, a private game, no sign-in): the reason
// alone, and the way back.
function showGameError(err) {
  view.failed = err;
  $("#game-layout").hidden = true;
  const box = $("#game-error");
  box.hidden = false;
  box.dataset.closeCode = String(err.closeCode || "");
  $("#game-error-text").textContent = CLOSE_TEXT[err.closeCode] || err.message;
}

// Draw offers change no state, so the server reports them with extension messages
// `draw_offer` and `draw_declined` ({seat}: who acted; docs/protocol-notes.md).
function handleExtensionMessage(message) {
  if (message.type !== "draw_offer" && message.type !== "draw_declined") return;
  const fromMe = mySeats(view.snapshot).includes(message.seat);
  if (message.type === "draw_offer") {
    if (!fromMe) view.drawOffered = true;
  } else {
    view.drawOffered = false;
    if (!fromMe) showMessage("Your draw offer was declined.", { code: "draw_declined" });
  }
  render();
}

function renderConnection({ state, code, delayMs }) {
  const box = $("#connection");
  box.dataset.state = state;
  if (code !== undefined) box.dataset.closeCode = String(code);
  const texts = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", closed: "Disconnected" };
  let text = texts[state] || state;
  if (state === "reconnecting" && delayMs) text = `Reconnecting… (${CLOSE_TEXT[code] || `code ${code}`})`;
  if (state === "closed" && code !== 1000) text = `Disconnected: ${CLOSE_TEXT[code] || `code ${code}`}`;
  box.textContent = text;
}

function renderPresence(presence) {
  // When this page first heard that each seat went offline (for the claim's text).
  for (const [seat, online] of Object.entries(presence.online || {})) {
    if (online) delete view.offlineSince[seat];
    else if (!(seat in view.offlineSince)) view.offlineSince[seat] = performance.now();
  }
  const n = presence.spectators || 0;
  const presenceBox = $("#presence");
  presenceBox.dataset.spectators = String(n);
  presenceBox.textContent = `${n} ${n === 1 ? "spectator" : "spectators"} watching`;
  render();
}

function render() {
  const snapshot = view.snapshot;
  if (!snapshot || view.failed) return;
  renderStatus(snapshot);
  renderControls(snapshot);
  renderClaim(snapshot);
  renderAfterGame(snapshot);
  renderShare(snapshot);
  const mine = mySeats(snapshot);
  chat.setPlayer(mine.length > 0);
  const online = (view.client && view.client.presence && view.client.presence.online) || {};
  renderPart("players", [snapshot.version, mine, online], () => renderPlayers(snapshot));
  const board = $("#board");
  board.dataset.gameType = snapshot.game_type;
  board.dataset.version = String(snapshot.version);
  board.dataset.myTurn = String(myTurn(snapshot));
  const renderer = renderers.get(snapshot.game_type);
  board.dataset.renderer = renderer ? renderer.id : "generic";
  renderPart("board", [snapshot.version, mine, view.selected, board.dataset.renderer, view.busy], () => {
    const context = renderContext(snapshot);
    try {
      (renderer ? renderer.render : renderGeneric)(board, snapshot, context);
    } catch (err) {
      console.error(`gamesocket: the ${snapshot.game_type} renderer failed; showing the generic board`, err);
      board.dataset.renderer = "generic";
      renderGeneric(board, snapshot, context);
    }
  });
  renderPart("moves", [snapshot.version, view.log.size, board.dataset.renderer], () => renderMoves(snapshot));
  renderPart("clocks", [snapshot.game_id, Boolean(snapshot.clock), clockSides(snapshot)], () => renderClocks(snapshot));
  tick();
}

// What a renderer gets besides the container and the snapshot.
function renderContext(snapshot) {
  const mine = mySeats(snapshot);
  const yours = myTurn(snapshot);
  return {
    mySeats: mine,
    myTurn: yours,
    busy: view.busy,
    legalMoves: yours ? snapshot.legal_moves || [] : [],
    play: (move) => sendMove(move),
    seatLabel,
    describeMove: (move, seat) => describeMove(snapshot.game_type, move, seat),
  };
}

// A part is rebuilt only when what it shows changed: an element replaced between a
// press and its release would swallow the click.
function renderPart(name, inputs, draw) {
  const key = JSON.stringify(inputs);
  if (view.drawn[name] === key) return;
  view.drawn[name] = key;
  draw();
}

// The end of a game from the viewer's side: `win`, `loss`, `draw`, or `over` for a
// spectator (and for a player holding every seat), `aborted`.
function outcome(snapshot) {
  if (snapshot.status === "aborted") return "aborted";
  if (snapshot.status !== "finished" || !snapshot.result) return "";
  const mine = mySeats(snapshot);
  const { winner } = snapshot.result;
  if (!winner) return "draw";
  if (mine.length === 0 || mine.length === seatsOf(snapshot.game_type, snapshot).length) return "over";
  return mine.includes(winner) ? "win" : "loss";
}

function statusText(snapshot) {
  const mine = mySeats(snapshot);
  if (snapshot.status === "finished" && snapshot.result) {
    const { winner, reason } = snapshot.result;
    const how = REASON_TEXT[reason] || reason;
    if (reason === "abandoned" && winner) return abandonedText(snapshot, winner);
    if (reason === "timeout_vs_insufficient_material") return insufficientText(snapshot);
    if (!winner) return `Draw: ${how}.`;
    if (mine.length === 1) return mine[0] === winner ? `You win ${how}!` : `You lose: ${seatLabel(winner)} wins ${how}.`;
    return `${seatLabel(winner)} wins ${how}.`;
  }
  if (snapshot.status === "aborted") return "The game was aborted.";
  if (snapshot.status === "waiting") {
    return mine.length ? "Waiting for an opponent: share the link below." : "Waiting for players: take a seat to play.";
  }
  const turn = snapshot.turn;
  const seat = snapshot.seats?.[turn];
  if (mine.includes(turn)) return mine.length > 1 ? `${seatLabel(turn)} to move (you).` : `Your move (${turn}).`;
  if (seat && seat.kind === "ai") return `${seatLabel(turn)} (AI level ${seat.level}) is thinking…`;
  return `${seatLabel(turn)} to move.`;
}

function renderStatus(snapshot) {
  const box = $("#status");
  box.dataset.status = snapshot.status;
  box.dataset.turn = snapshot.turn || "";
  box.dataset.winner = snapshot.result ? snapshot.result.winner || "draw" : "";
  box.dataset.reason = snapshot.result ? snapshot.result.reason : "";
  box.dataset.outcome = outcome(snapshot);
  box.textContent = statusText(snapshot);
}

function renderPlayers(snapshot) {
  const online = (view.client && view.client.presence && view.client.presence.online) || {};
  const mine = mySeats(snapshot);
  const seatNames = seatsOf(snapshot.game_type, snapshot);
  $("#players").replaceChildren(
    ...seatNames.map((name) => {
      const seat = snapshot.seats?.[name];
      const item = el("li", { "data-seat": name, class: snapshot.turn === name ? "to-move" : "" });
      item.append(el("span", { class: `seat-mark seat-${name}` }), el("b", { text: seatLabel(name) }), " ");
      if (!seat) {
        item.append(
          el("span", { class: "muted", text: "open seat " }),
          el("button", {
            type: "button",
            class: "join-seat",
            "data-seat": name,
            text: "Take this seat",
            onclick: () => joinSeat(name),
          }),
        );
      } else if (seat.kind === "ai") {
        item.append(el("span", { text: `AI, level ${seat.level}` }));
      } else {
        const who = mine.includes(name) ? "you" : seat.name || `player ${String(seat.user_id).slice(0, 8)}`;
        item.append(el("span", { class: "seat-name", text: who }));
        if (Number.isFinite(seat.rating)) item.append(" ", el("span", { class: "muted seat-rating", text: `(${Math.round(seat.rating)})` }));
        if (name in online) item.append(el("span", { class: `dot ${online[name] ? "online" : "offline"}`, title: online[name] ? "online" : "offline" }));
      }
      return item;
    }),
  );
}

function renderControls(snapshot) {
  const seated = mySeats(snapshot).length > 0;
  const playing = seated && snapshot.status === "active";
  // The server allows an abort until the first move.
  $("#abort").hidden = !(seated && ["waiting", "active"].includes(snapshot.status) && snapshot.moves === 0);
  $("#resign").hidden = !playing;
  // Only a person can answer a draw offer: none against the AI (nor yourself).
  $("#offer-draw").hidden = !playing || !hasHumanOpponent(snapshot);
  $("#ai-move").hidden = !(playing && myTurn(snapshot)) || view.noAi;
  $("#draw-offer").hidden = !(playing && view.drawOffered);
}

// After the end: a new game like this one (for its players, or for an AI-only game),
// and the way back to the lobby.
function renderAfterGame(snapshot) {
  const over = snapshot.status === "finished" || snapshot.status === "aborted";
  $("#after-game").hidden = !over;
  if (!over) return;
  const seats = Object.values(snapshot.seats || {});
  const canRepeat = mySeats(snapshot).length > 0 || (seats.length > 0 && seats.every((seat) => seat && seat.kind === "ai"));
  $("#new-game-again").hidden = !canRepeat;
  renderRematch(snapshot);
}

// A private game waiting for a player: its seated player shares the invite link
// (anyone who opens it takes the free seat); any other game: its plain link.
function renderShare(snapshot) {
  const plain = `${location.origin}${location.pathname}#/game/${snapshot.game_type}/${snapshot.game_id}`;
  const invite = snapshot.status === "waiting" && mySeats(snapshot).length > 0 ? view.invite : null;
  const box = $("#share-link");
  box.value = invite ? `${plain}?invite=${invite}` : plain;
  box.dataset.invite = String(Boolean(invite));
  $("#share-label").textContent = invite ? "Invite link: whoever opens it takes the free seat" : "Link to this game";
}

// Rematch (PROTOCOL.md "Rematch"): a seated player of a finished game asks; once every
// person has asked (at once against the AI) the server creates the game, seats swapped,
// and every page of the old game hears its id: its players go there, a spectator gets
// a link.
function renderRematch(snapshot) {
  const mine = mySeats(snapshot);
  const { offers, newGameId } = view.rematch;
  const finished = snapshot.status === "finished";
  const asked = mine.length > 0 && mine.every((seat) => offers.has(seat));
  const theyAsked = [...offers].some((seat) => !mine.includes(seat));
  const button = $("#rematch");
  button.hidden = !(finished && mine.length > 0 && !newGameId);
  button.disabled = asked;
  button.textContent = theyAsked && !asked ? "Accept the rematch" : asked ? "Rematch offered" : "Rematch";
  const text = $("#rematch-text");
  text.hidden = !(finished && (asked || theyAsked) && !newGameId);
  text.textContent = asked ? "Waiting for your opponent to accept." : mine.length ? "Your opponent wants a rematch." : "A player wants a rematch.";
  text.dataset.offers = [...offers].join(" ");
  const watch = $("#rematch-watch");
  watch.hidden = !(newGameId && mine.length === 0);
  if (newGameId) watch.href = `#/game/${snapshot.game_type}/${newGameId}`;
}

function handleRematch(message) {
  if (message.offered_by) view.rematch.offers.add(message.offered_by);
  if (message.new_game_id) {
    view.rematch.newGameId = message.new_game_id;
    if (mySeats(view.snapshot).length > 0) enterGame(view.gameType, message.new_game_id);
  }
  render();
}

$("#rematch").addEventListener("click", async () => {
  const snapshot = view.snapshot;
  if (!snapshot) return;
  const button = $("#rematch");
  button.disabled = true;
  try {
    const answer = await auth.call((conn) => requestRematch(conn, snapshot.game_id));
    if (answer.status === "created") enterGame(snapshot.game_type, answer.game_id);
    else for (const seat of mySeats(snapshot)) view.rematch.offers.add(seat);
  } catch (err) {
    showError(err);
  }
  if (view.gameId === snapshot.game_id) render();
});

// The same game type, seats and visibility: your seats stay yours, AI seats keep their
// level, other players' seats are left open for a new opponent.
function repeatSpec(snapshot) {
  const mine = mySeats(snapshot);
  const seats = {};
  for (const [name, seat] of Object.entries(snapshot.seats || {})) {
    if (seat && seat.kind === "ai") seats[name] = { kind: "ai", level: seat.level };
    else if (mine.includes(name)) seats[name] = "me";
  }
  const spec = { game_type: snapshot.game_type, seats, public: snapshot.public !== false };
  const clock = clockSpec(snapshot.clock);
  if (clock) spec.clock = clock;
  return spec;
}

$("#new-game-again").addEventListener("click", async () => {
  const snapshot = view.snapshot;
  if (!snapshot) return;
  const button = $("#new-game-again");
  button.disabled = true;
  try {
    const game = await auth.call((conn) => createGame(conn, repeatSpec(snapshot)));
    location.hash = `#/game/${game.game_type}/${game.game_id}`;
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

// Run one client action; errors become a message. True when the server acknowledged.
async function send(action) {
  if (!view.client) return false;
  try {
    await action(view.client);
    return true;
  } catch (err) {
    showError(err);
    return false;
  }
}

async function joinSeat(seat) {
  await send((client) => client.join(seat));
}

async function sendMove(move) {
  if (view.busy || !view.client) return;
  view.busy = true;
  try {
    await view.client.move(move, { version: view.snapshot.version });
  } catch (err) {
    view.busy = false;
    showError(err);
    render();
  }
}

$("#resign").addEventListener("click", () => {
  if (confirm("Resign this game?")) send((client) => client.resign());
});
$("#abort").addEventListener("click", () => {
  if (confirm("Cancel this game?")) send((client) => client.abort());
});
$("#offer-draw").addEventListener("click", async () => {
  if (await send((client) => client.draw("offer"))) showMessage("Draw offered.", { code: "draw_offered" });
});
$("#claim-victory").addEventListener("click", async () => {
  if (!view.client) return;
  const button = $("#claim-victory");
  button.disabled = true;
  try {
    await view.client.claimVictory();
  } catch (err) {
    // Too early (or the opponent came back): the server says why.
    if (err instanceof GameSocketError && err.code === "forbidden") {
      showMessage(`You cannot claim the win yet: ${err.message}.`, { code: "forbidden" });
    } else {
      showError(err);
    }
  } finally {
    button.disabled = false;
  }
});
$("#accept-draw").addEventListener("click", () => send((client) => client.draw("accept")));
$("#decline-draw").addEventListener("click", async () => {
  view.drawOffered = false;
  render();
  await send((client) => client.draw("decline"));
});
$("#ai-move").addEventListener("click", async () => {
  if (view.busy || !view.client) return;
  view.busy = true;
  $("#ai-move").disabled = true;
  try {
    await view.client.aiMove();
  } catch (err) {
    view.busy = false;
    // A game added without an AI: the server refuses, and the button goes.
    if (err instanceof GameSocketError && err.code === "bad_message") view.noAi = true;
    showError(err);
    render();
  }
  $("#ai-move").disabled = false;
});
$("#copy-link").addEventListener("click", async () => {
  $("#share-link").select();
  try {
    await navigator.clipboard.writeText($("#share-link").value);
    showMessage("Link copied.", { code: "copied" });
  } catch {
    document.execCommand("copy");
  }
});

// ---------------------------------------------------------------------------------
// Thinking
// ---------------------------------------------------------------------------------

// Score to a 0..1 share for the first seat (white / red / x); `score` is from the
// mover's view. Chess scores are centipawns; the grid games use small solver scores.
function evalShare(gameType, seat, score) {
  const first = seatsOf(gameType, view.snapshot)[0];
  const fromFirst = seat === first ? score : -score;
  const scale = gameType === "chess" ? 400 : 6;
  return 1 / (1 + Math.exp(-fromFirst / scale));
}

function formatScore(gameType, seat, score) {
  if (gameType === "chess") {
    const white = seat === "white" ? score : -score;
    if (Math.abs(white) >= 10000) return white > 0 ? "white mates" : "black mates";
    return `${white >= 0 ? "+" : ""}${(white / 100).toFixed(2)}`;
  }
  if (score === 0) return "0 (even)";
  const name = seatLabel(seat);
  // Solver scores this large mean a forced result, not a margin.
  if (Math.abs(score) >= 1000) return `${name} ${score > 0 ? "wins" : "loses"} by force`;
  return `${score > 0 ? "+" : ""}${score} (${name} ${score > 0 ? "ahead" : "behind"})`;
}

// The principal variation in the move list's notation: chess SAN numbered from the
// current position ("12... Nf6 13. Bg5"), the other games "Red: column 4 → …".
function formatPv(gameType, seat, pv) {
  const snapshot = view.snapshot;
  if (!pv.length) return "";
  if (gameType === "chess") {
    if (snapshot && snapshot.board && snapshot.board.fen && snapshot.turn === seat) return lineToSan(snapshot.board.fen, pv).text;
    return pv.join(" ");
  }
  const order = seatsOf(gameType, snapshot);
  const start = Math.max(0, order.indexOf(seat));
  return pv.map((move, i) => `${seatLabel(order[(start + i) % order.length] || seat)}: ${describeMove(gameType, move)}`).join(" → ");
}

function showThinking(info) {
  const type = view.gameType;
  const box = $("#thinking");
  box.hidden = false;
  box.dataset.active = "true";
  box.dataset.seat = info.seat;
  box.dataset.depth = String(info.depth);
  box.dataset.count = String(Number(box.dataset.count || 0) + 1);
  $("#thinking-title").textContent = `${seatLabel(info.seat)} (AI) is thinking`;
  $("#thinking-depth").textContent = String(info.depth);
  $("#thinking-score").textContent = formatScore(type, info.seat, info.score);
  $("#thinking-nodes").textContent = Number(info.nodes || 0).toLocaleString("en");
  $("#thinking-pv").textContent = formatPv(type, info.seat, info.pv || []);
  $("#eval-bar").style.width = `${(evalShare(type, info.seat, info.score) * 100).toFixed(1)}%`;
  $("#eval-bar").className = `eval-fill eval-${seatsOf(type, view.snapshot)[0]}`;
}

// After the AI's move the last search stays visible (greyed) until the next one.
function hideThinking(keepLast = false) {
  const box = $("#thinking");
  box.dataset.active = "false";
  if (!keepLast) box.hidden = true;
  else $("#thinking-title").textContent = `${seatLabel(box.dataset.seat || "AI")} (AI): last search`;
}

// ---------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------

// The server's time now, from the browser's monotonic clock and the offset between the
// two. Every snapshot's `server_time_ms` was the server's time when it was built, a
// little before it arrived, so `server_time_ms - performance.now()` at receipt never
// exceeds the true offset: the largest such sample is the best estimate. (A replayed
// update carries its old time and counts for nothing.) The browser's own wall clock
// (Date.now) is never used, so a browser set to the wrong time shows the right clocks.
function noteServerTime(serverMs) {
  const sample = serverMs - performance.now();
  if (view.serverOffset === null || sample > view.serverOffset) view.serverOffset = sample;
}

function serverNow() {
  return performance.now() + (view.serverOffset ?? 0);
}

// What the clocks show, from the latest snapshot: each seat's time exact at `at`
// (server time), the running seat losing time from then on. In delay mode the running
// seat's time stands for the first `delay` ms of its turn, so the page needs the
// turn's start (`turnStart`, server time): an update whose change started the turn was
// built at that very moment; a `state` in the middle of a turn finds it in the move
// log (the turn's move's `at`), or in `created_at` for a game still at version 0.
// Unknown (null): the delay counts as spent, and the next update corrects it.
function noteClock(snapshot, update) {
  const clock = snapshot.clock;
  if (!clock) {
    view.clock = null;
    return;
  }
  noteServerTime(clock.server_time_ms);
  const prev = view.clock;
  const running = snapshot.status === "active" ? clock.running : null;
  let turnStart = null;
  let lookUp = false;
  if (running && clock.delay_ms) {
    const sameTurn = prev && prev.running === running && prev.turnStart !== null;
    if (update) {
      const started = (update.event && update.event.kind === "move") || !prev || prev.running !== running;
      turnStart = started ? clock.server_time_ms : sameTurn ? prev.turnStart : null;
    } else if (sameTurn && prev.version === snapshot.version) {
      turnStart = prev.turnStart;
    } else if (snapshot.version === 0 && snapshot.created_at) {
      turnStart = Date.parse(snapshot.created_at);
    } else if (snapshot.moves > 0) {
      lookUp = true;
    }
  }
  view.clock = {
    version: snapshot.version,
    remaining: { ...clock.remaining_ms },
    running,
    at: clock.server_time_ms,
    delay: clock.delay_ms || 0,
    budget: clock.per_move_ms || clock.initial_ms || 0,
    turnStart: Number.isFinite(turnStart) ? turnStart : null,
  };
  if (lookUp) lookUpTurnStart(snapshot);
}

async function lookUpTurnStart(snapshot) {
  const gameId = snapshot.game_id;
  try {
    const log = await auth.call((conn) => getMoves(conn, gameId));
    const last = log[log.length - 1];
    const model = view.clock;
    if (!model || view.gameId !== gameId || model.version !== snapshot.version) return;
    if (last && last.version === snapshot.version && last.at) {
      const at = Date.parse(last.at);
      if (Number.isFinite(at)) model.turnStart = at;
      tick();
    }
  } catch {
    // Without the move log the delay counts as spent until the next update.
  }
}

// A seat's time at server time `now`.
function clockRemaining(model, seat, now) {
  const base = model.remaining[seat] ?? 0;
  if (seat !== model.running) return base;
  let used = now - model.at;
  if (model.delay && model.turnStart !== null) {
    const spent = (t) => Math.max(0, t - model.turnStart - model.delay);
    used = spent(now) - spent(model.at);
  }
  return Math.max(0, base - Math.max(0, used));
}

// What is left of the running seat's delay at server time `now` (0: none, or spent).
function delayLeft(model, now) {
  if (!model.delay || !model.running || model.turnStart === null) return 0;
  return Math.max(0, model.turnStart + model.delay - now);
}

function isLowTime(model, ms) {
  return ms < LOW_TIME_MS || (model.budget > 0 && ms < model.budget / 10);
}

const pad2 = (n) => String(n).padStart(2, "0");

// mm:ss, with tenths under 10 s ("00:09.4"), hours from an hour on ("1:05:00"), days
// from a day on ("1d 00:00:00"). Always rounded down: 00:00.0 is a fallen flag.
function formatClock(ms) {
  ms = Math.max(0, Math.floor(ms));
  if (ms < 10000) return `00:0${Math.floor(ms / 1000)}.${Math.floor(ms / 100) % 10}`;
  const total = Math.floor(ms / 1000);
  const seconds = total % 60;
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  if (hours >= 24) return `${Math.floor(hours / 24)}d ${pad2(hours % 24)}:${pad2(minutes)}:${pad2(seconds)}`;
  if (hours) return `${hours}:${pad2(minutes)}:${pad2(seconds)}`;
  return `${pad2(minutes)}:${pad2(seconds)}`;
}

function formatDuration(ms) {
  const units = [
    [86400000, "day", "days"],
    [3600000, "h", "h"],
    [60000, "min", "min"],
    [1000, "s", "s"],
  ];
  for (const [size, one, many] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${ms === size ? one : many}`;
  }
  return `${Number((ms / 1000).toFixed(1))} s`;
}

// A time control in words: short for the lobby ("3+2", "5 min, 3 s delay", "1 day per
// move"), long for the game ("3 min + 2 s per move").
function describeTimeControl(clock, { long = false } = {}) {
  if (!clock) return "";
  if (clock.per_move_ms) return `${formatDuration(clock.per_move_ms)} per move`;
  if (clock.delay_ms) return `${formatDuration(clock.initial_ms)}, ${formatDuration(clock.delay_ms)} delay`;
  if (long) {
    const base = `${formatDuration(clock.initial_ms)}`;
    return clock.increment_ms ? `${base} + ${formatDuration(clock.increment_ms)} per move` : `${base} for the game`;
  }
  return `${Number((clock.initial_ms / 60000).toFixed(2))}+${Number((clock.increment_ms / 1000).toFixed(2))}`;
}

// The create request's `clock` for a game like one with this snapshot clock.
function clockSpec(clock) {
  if (!clock) return null;
  if (clock.per_move_ms) return { per_move_ms: clock.per_move_ms };
  if (clock.delay_ms) return { initial_ms: clock.initial_ms, delay_ms: clock.delay_ms };
  return { initial_ms: clock.initial_ms, increment_ms: clock.increment_ms || 0 };
}

// The viewer's clock under the board (the first seat's when the viewer holds none or
// every seat, as the chess board's orientation), the others above it.
function clockSides(snapshot) {
  const seats = seatsOf(snapshot.game_type, snapshot);
  const mine = mySeats(snapshot);
  const bottom = mine.length === 1 ? mine[0] : seats[0];
  return { top: seats.filter((seat) => seat !== bottom), bottom: [bottom] };
}

function renderClocks(snapshot) {
  const sides = clockSides(snapshot);
  for (const [id, seats] of [
    ["#clock-top", sides.top],
    ["#clock-bottom", sides.bottom],
  ]) {
    const row = $(id);
    row.hidden = !snapshot.clock;
    row.replaceChildren(...(snapshot.clock ? seats.map(clockElement) : []));
  }
  const control = $("#time-control");
  control.hidden = !snapshot.clock;
  control.textContent = snapshot.clock ? `Time control: ${describeTimeControl(snapshot.clock, { long: true })}` : "";
}

function clockElement(seat) {
  return el(
    "div",
    { class: "clock", "data-seat": seat },
    el("span", { class: `seat-mark seat-${seat}` }),
    el("span", { class: "clock-name", text: seatLabel(seat) }),
    el("span", { class: "clock-delay", hidden: true }),
    el("span", { class: "clock-time", role: "timer" }),
  );
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// Every CLOCK_TICK_MS while a game is open (and after every snapshot): the clocks from
// the model, and the claim's waiting time.
function tick() {
  const model = view.clock;
  if (model) {
    const now = serverNow();
    for (const node of document.querySelectorAll("#game .clock[data-seat]")) {
      const seat = node.dataset.seat;
      const ms = clockRemaining(model, seat, now);
      const running = model.running === seat;
      const delay = running ? delayLeft(model, now) : 0;
      setText(node.querySelector(".clock-time"), formatClock(ms));
      node.dataset.ms = String(Math.floor(ms));
      node.dataset.running = String(running);
      node.dataset.low = String(isLowTime(model, ms));
      node.dataset.delay = String(delay > 0);
      const delayNode = node.querySelector(".clock-delay");
      delayNode.hidden = delay <= 0;
      if (delay > 0) setText(delayNode, `delay ${(Math.ceil(delay / 100) / 10).toFixed(1)} s`);
    }
  }
  if (!$("#claim").hidden) renderClaimText();
}

// ---------------------------------------------------------------------------------
// Abandoned games: claiming the win
// ---------------------------------------------------------------------------------

// The opponent seats of a seated player when every one of them is a person whose seat
// has no socket (presence), else [].
function opponentsGone(snapshot) {
  if (!snapshot || snapshot.status !== "active") return [];
  const mine = mySeats(snapshot);
  const online = view.client && view.client.presence && view.client.presence.online;
  if (!mine.length || !online) return [];
  const others = seatsOf(snapshot.game_type, snapshot).filter((seat) => !mine.includes(seat));
  if (!others.length) return [];
  const people = others.every((seat) => snapshot.seats?.[seat] && snapshot.seats[seat].kind !== "ai");
  if (!people || others.some((seat) => online[seat] !== false)) return [];
  return others;
}

// Shown as soon as every opponent is offline: the server decides whether they have
// been away long enough (else `forbidden`, whose message the page shows).
function renderClaim(snapshot) {
  const gone = opponentsGone(snapshot);
  const box = $("#claim");
  box.hidden = gone.length === 0;
  box.dataset.seats = gone.join(" ");
  if (gone.length) renderClaimText();
}

function renderClaimText() {
  const gone = ($("#claim").dataset.seats || "").split(" ").filter(Boolean);
  const since = Math.min(...gone.map((seat) => view.offlineSince[seat] ?? performance.now()));
  const away = Math.max(0, Math.floor((performance.now() - since) / 1000));
  const who = gone.length > 1 ? "Your opponents have" : "Your opponent has";
  const time = away < 60 ? `${away} s` : `${Math.floor(away / 60)} min ${pad2(away % 60)} s`;
  setText($("#claim-text"), `${who} been offline for ${time}. If they do not come back, you may claim the win.`);
}

function abandonedText(snapshot, winner) {
  const mine = mySeats(snapshot);
  const losers = seatsOf(snapshot.game_type, snapshot).filter((seat) => seat !== winner);
  if (mine.length === 1 && mine[0] === winner) {
    return `You win: your ${losers.length > 1 ? "opponents" : "opponent"} left the game.`;
  }
  if (mine.length === 1) return `You lose: you left the game and ${seatLabel(winner)} claimed the win.`;
  return `${seatLabel(winner)} wins: ${losers.map(seatLabel).join(" and ")} left the game.`;
}

// A draw on time: the seat whose clock reached zero (it stands at 0) is out of time,
// and nobody else has the material to checkmate.
function insufficientText(snapshot) {
  const remaining = (snapshot.clock && snapshot.clock.remaining_ms) || {};
  const flagged = Object.keys(remaining).find((seat) => remaining[seat] <= 0);
  if (!flagged) return "Draw: time ran out, but the other side cannot checkmate.";
  const mine = mySeats(snapshot);
  const others = seatsOf(snapshot.game_type, snapshot).filter((seat) => seat !== flagged);
  if (mine.length === 1 && mine[0] === flagged) {
    return `Draw: you ran out of time, but ${others.map(seatLabel).join(" and ")} cannot checkmate.`;
  }
  if (mine.length === 1) return `Draw: ${seatLabel(flagged)} ran out of time, but you cannot checkmate.`;
  return `Draw: ${seatLabel(flagged)} ran out of time, but ${others.map(seatLabel).join(" and ")} cannot checkmate.`;
}

// ---------------------------------------------------------------------------------
// Move list
// ---------------------------------------------------------------------------------

// Numbered rows in move order: chess "1. e4 e5" (a row per move of both sides), the
// other games one row per move ("1. Red: column 4").
function renderMoves(snapshot) {
  const list = $("#moves");
  if (snapshot.game_type === "chess") {
    const san = snapshot.board.san || [];
    const [, active, , , , fullmove] = snapshot.board.fen.split(" ");
    const ply = (Number(fullmove) - 1) * 2 + (active === "b" ? 1 : 0) - san.length;
    const rows = [];
    san.forEach((move, i) => {
      const p = ply + i;
      if (i === 0 || p % 2 === 0) {
        const number = Math.floor(p / 2) + 1;
        rows.push(el("li", { "data-move-number": number }, el("span", { class: "move-number", text: `${number}.` })));
        if (p % 2) rows.at(-1).append(" ", el("span", { class: "ply", text: "…" }));
      }
      rows.at(-1).append(" ", el("span", { class: "ply", "data-ply": i, text: move }));
    });
    list.replaceChildren(...rows);
    list.dataset.count = String(san.length);
  } else {
    const moves = [...view.log.values()].sort((a, b) => a.version - b.version);
    list.replaceChildren(
      ...moves.map((entry, i) =>
        el(
          "li",
          { "data-move-number": i + 1 },
          el("span", { class: "move-number", text: `${i + 1}.` }),
          " ",
          el("span", { class: "ply", "data-ply": entry.version, text: `${seatLabel(entry.seat)}: ${describeMove(snapshot.game_type, entry.move)}` }),
        ),
      ),
    );
    list.dataset.count = String(snapshot.moves ?? moves.length);
  }
  list.scrollTop = list.scrollHeight;
}

// A move in words, 1-based like the boards' own labels: "column 4", "row 2, column 2";
// another game's renderer may say (registerRenderer's `describeMove`), else the move.
function describeMove(gameType, move, seat) {
  const renderer = renderers.get(gameType);
  if (renderer && renderer.describeMove) return String(renderer.describeMove(move, seat));
  if (gameType === "connect4") return `column ${Number(move) + 1}`;
  if (gameType === "tictactoe") return `row ${Math.floor(Number(move) / 3) + 1}, column ${(Number(move) % 3) + 1}`;
  return typeof move === "string" ? move : JSON.stringify(move);
}

// Snapshots other than chess hold no history: the move log (REST) plus the move events
// of later updates, keyed by version so the two never count a move twice.
function recordMove(entry) {
  if (entry.move === undefined || entry.move === null || !entry.seat) return;
  view.log.set(entry.version, entry);
}

async function loadMoveLog(gameId) {
  try {
    const log = await auth.call((conn) => getMoves(conn, gameId));
    if (view.gameId !== gameId) return;
    for (const entry of log) recordMove(entry);
    render();
  } catch (err) {
    if (!(err instanceof GameSocketError && ["forbidden", "not_found"].includes(err.code))) showError(err);
  }
}

// ---------------------------------------------------------------------------------
// Renderers: the built-in boards, the generic board, and the registry for others
// ---------------------------------------------------------------------------------

const renderers = new Map(); // game type -> {id, render, name?, describeMove?}
let rendererCount = 0;

/**
 * Draw `gameType`'s boards with `render(container, snapshot, context)` instead of the
 * generic board. `render` replaces the container's content; it is called again whenever
 * the version, the viewer's seats or the selection change. `context`: `{mySeats,
 * myTurn, busy, legalMoves (the snapshot's when it is your turn, else []), play(move),
 * seatLabel(seat), describeMove(move, seat)}`. Options: `name` (the game's title),
 * `describeMove(move, seat)` (words for the move list and the AI's line).
 */
export function registerRenderer(gameType, draw, { name, describeMove: describe } = {}) {
  if (typeof draw !== "function") throw new TypeError("registerRenderer needs a render function");
  rendererCount += 1;
  renderers.set(gameType, { id: `${gameType}#${rendererCount}`, render: draw, name, describeMove: describe });
  if (view.gameType === gameType) {
    $("#game-title").textContent = gameName(gameType);
    if (view.snapshot) render(); // the board's key names the renderer: it is drawn anew
  }
}

// Any game: the board object shown as it is (a grid for `cells` or `rows`, the other
// fields as a list), and the legal moves as buttons.
function renderGeneric(container, snapshot, context) {
  const board = snapshot.board && typeof snapshot.board === "object" ? snapshot.board : {};
  const gridKey = ["cells", "rows", "grid"].find((key) => Array.isArray(board[key]));
  const parts = [el("p", { class: "muted generic-note", text: `A plain view of this ${gameName(snapshot.game_type)} board.` })];
  if (gridKey) parts.push(genericGrid(gridRows(board[gridKey])));
  const fields = Object.entries(board).filter(([key]) => key !== gridKey);
  if (fields.length) {
    parts.push(
      el(
        "dl",
        { class: "generic-fields" },
        ...fields.flatMap(([key, value]) => [el("dt", { text: key }), el("dd", { "data-field": key, text: formatValue(value) })]),
      ),
    );
  }
  const moves = el("div", { class: "generic-moves" });
  if (context.legalMoves.length) {
    moves.append(
      el("span", { class: "muted", text: "Your move: " }),
      ...context.legalMoves.map((move) =>
        el("button", {
          type: "button",
          class: "generic-move",
          "data-move": JSON.stringify(move),
          disabled: context.busy,
          text: context.describeMove(move),
          onclick: () => context.play(move),
        }),
      ),
    );
  } else if (snapshot.status === "active") {
    moves.append(el("span", { class: "muted", text: `${seatLabel(snapshot.turn || "")} to move.` }));
  }
  parts.push(moves);
  container.replaceChildren(el("div", { class: "generic-board", "data-game-type": snapshot.game_type }, ...parts));
}

// Rows of a grid: an array of arrays as it is; a flat array as a square when it is one
// (9 cells: 3 by 3), else one row.
function gridRows(value) {
  if (value.every(Array.isArray)) return value;
  const side = Math.round(Math.sqrt(value.length));
  if (side > 1 && side * side === value.length) {
    return Array.from({ length: side }, (_, r) => value.slice(r * side, (r + 1) * side));
  }
  return [value];
}

function genericGrid(rows) {
  const table = el("table", { class: "generic-grid" });
  rows.forEach((row, r) => {
    table.append(
      el(
        "tr",
        {},
        ...row.map((cell, c) =>
          el("td", { "data-row": r, "data-col": c, "data-value": cell === null ? "" : formatValue(cell), text: cell === null ? "" : formatValue(cell) }),
        ),
      ),
    );
  });
  return table;
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------
// Chess
// ---------------------------------------------------------------------------------

const FILES = "abcdefgh";

function parseFen(fen) {
  const [placement, active] = fen.split(" ");
  const pieces = new Map();
  placement.split("/").forEach((row, r) => {
    let file = 0;
    for (const ch of row) {
      if (/\d/.test(ch)) {
        file += Number(ch);
      } else {
        pieces.set(`${FILES[file]}${8 - r}`, { color: ch === ch.toUpperCase() ? "w" : "b", type: ch.toLowerCase() });
        file += 1;
      }
    }
  });
  return { pieces, active };
}

function chessTargets(snapshot, from) {
  if (!myTurn(snapshot)) return [];
  return (snapshot.legal_moves || []).filter((m) => m.slice(0, 2) === from).map((m) => m.slice(2, 4));
}

function renderChess(container, snapshot) {
  const { pieces, active } = parseFen(snapshot.board.fen);
  const mine = mySeats(snapshot);
  const flipped = mine.length === 1 && mine[0] === "black";
  const last = snapshot.last_move ? String(snapshot.last_move.move) : "";
  const targets = new Set(view.selected ? chessTargets(snapshot, view.selected) : []);
  const grid = el("div", { class: `chess-board${flipped ? " flipped" : ""}`, "data-orientation": flipped ? "black" : "white" });
  for (let row = 0; row < 8; row += 1) {
    for (let col = 0; col < 8; col += 1) {
      const file = flipped ? 7 - col : col;
      const rank = flipped ? row + 1 : 8 - row;
      const name = `${FILES[file]}${rank}`;
      const piece = pieces.get(name);
      const classes = ["square", (file + rank) % 2 === 1 ? "dark" : "light"]; // a1 is dark
      if (last && (last.slice(0, 2) === name || last.slice(2, 4) === name)) classes.push("last");
      if (view.selected === name) classes.push("selected");
      if (targets.has(name)) classes.push(piece ? "target capture" : "target");
      if (snapshot.board.check && piece && piece.type === "k" && piece.color === active) classes.push("check");
      const square = el("div", { class: classes.join(" "), "data-square": name });
      if (piece) {
        square.dataset.piece = piece.color + piece.type.toUpperCase();
        square.append(el("span", { class: `piece ${piece.color === "w" ? "white" : "black"}`, text: GLYPHS[piece.type] }));
      }
      if (col === 0) square.append(el("span", { class: "coord rank", text: String(rank) }));
      if (row === 7) square.append(el("span", { class: "coord file", text: FILES[file] }));
      grid.append(square);
    }
  }
  grid.addEventListener("pointerdown", chessPointerDown);
  container.replaceChildren(grid);
}

// Click-to-move and drag-to-move share these handlers: a press on a movable piece picks
// it up; a release (or a later press) on one of its target squares plays the move.
let drag = null;

function squareAt(x, y) {
  const node = document.elementFromPoint(x, y);
  const square = node && node.closest("[data-square]");
  return square ? square.dataset.square : null;
}

function chessPointerDown(event) {
  const square = event.target.closest("[data-square]");
  const snapshot = view.snapshot;
  if (!square || !snapshot || view.busy) return;
  const name = square.dataset.square;
  if (view.selected && chessTargets(snapshot, view.selected).includes(name)) {
    playChess(view.selected, name);
    return;
  }
  if (chessTargets(snapshot, name).length === 0) {
    if (view.selected) {
      view.selected = null;
      render();
    }
    return;
  }
  event.preventDefault();
  view.selected = name;
  render();
  const piece = document.querySelector(`[data-square="${name}"] .piece`);
  drag = { from: name, x: event.clientX, y: event.clientY, ghost: null, piece };
  window.addEventListener("pointermove", chessPointerMove);
  window.addEventListener("pointerup", chessPointerUp, { once: true });
}

function chessPointerMove(event) {
  if (!drag) return;
  if (!drag.ghost) {
    if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 4 || !drag.piece) return;
    drag.ghost = drag.piece.cloneNode(true);
    drag.ghost.classList.add("ghost");
    drag.ghost.style.fontSize = getComputedStyle(drag.piece).fontSize;
    document.body.append(drag.ghost);
    drag.piece.classList.add("lifted");
  }
  drag.ghost.style.left = `${event.clientX}px`;
  drag.ghost.style.top = `${event.clientY}px`;
}

function chessPointerUp(event) {
  window.removeEventListener("pointermove", chessPointerMove);
  const current = drag;
  drag = null;
  if (!current || !current.ghost) return; // a click: the piece stays selected
  current.ghost.remove();
  current.piece.classList.remove("lifted");
  const to = squareAt(event.clientX, event.clientY);
  if (to && to !== current.from && chessTargets(view.snapshot, current.from).includes(to)) playChess(current.from, to);
}

async function playChess(from, to) {
  const candidates = (view.snapshot.legal_moves || []).filter((m) => m.slice(0, 4) === from + to);
  let move = candidates[0];
  if (candidates.length > 1) {
    const piece = await choosePromotion(view.snapshot.turn === "white" ? "w" : "b");
    if (!piece) return;
    move = from + to + piece;
  }
  view.selected = null;
  await sendMove(move);
}

function choosePromotion(color) {
  const dialog = $("#promotion");
  for (const button of dialog.querySelectorAll("[data-piece]")) {
    button.replaceChildren(el("span", { class: `piece ${color === "w" ? "white" : "black"}`, text: GLYPHS[button.dataset.piece] }));
  }
  return new Promise((resolve) => {
    const finish = (piece) => {
      dialog.removeEventListener("click", onClick);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(piece);
    };
    const onClick = (event) => {
      const button = event.target.closest("button");
      if (button) finish(button.dataset.piece || null);
    };
    const onCancel = () => finish(null);
    dialog.addEventListener("click", onClick);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------------
// Connect Four and tic-tac-toe
// ---------------------------------------------------------------------------------

// Every cell of every line of `length` equal non-empty cells in a grid (rows of
// `cells`), as "row,col" keys.
function winningCells(cells, length) {
  const rows = cells.length;
  const cols = cells[0].length;
  const found = new Set();
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < cols; c += 1) {
      const who = cells[r][c];
      if (!who) continue;
      for (const [dr, dc] of [[0, 1], [1, 0], [1, 1], [1, -1]]) {
        const line = Array.from({ length }, (_, i) => [r + dr * i, c + dc * i]);
        if (line.every(([y, x]) => y < rows && x >= 0 && x < cols && cells[y][x] === who)) {
          for (const [y, x] of line) found.add(`${y},${x}`);
        }
      }
    }
  }
  return found;
}

function renderConnect4(container, snapshot) {
  const { cells, rows, columns } = snapshot.board;
  const winners = winningCells(cells, 4);
  const playable = new Set(myTurn(snapshot) ? snapshot.legal_moves || [] : []);
  const last = snapshot.last_move ? Number(snapshot.last_move.move) : null;
  const grid = el("div", { class: `c4-board${playable.size ? " playable" : ""}` });
  for (let c = 0; c < columns; c += 1) {
    const column = el("div", {
      class: `c4-col${playable.has(c) ? " open" : ""}`,
      "data-column": c,
      role: "button",
      tabindex: playable.has(c) ? 0 : -1,
      "aria-label": `column ${c + 1}`,
      onclick: () => playable.has(c) && !view.busy && sendMove(c),
      onkeydown: (event) => {
        if ((event.key === "Enter" || event.key === " ") && playable.has(c) && !view.busy) sendMove(c);
      },
    });
    const topmost = cells.findIndex((row) => row[c] !== null);
    for (let r = 0; r < rows; r += 1) {
      const who = cells[r][c];
      const classes = ["c4-cell"];
      if (who) classes.push(who);
      if (winners.has(`${r},${c}`)) classes.push("win");
      if (c === last && r === topmost) classes.push("last");
      column.append(el("div", { class: classes.join(" "), "data-row": r, "data-col": c }));
    }
    grid.append(column);
  }
  container.replaceChildren(grid);
}

function renderTicTacToe(container, snapshot) {
  const cells = snapshot.board.cells;
  const rows = [cells.slice(0, 3), cells.slice(3, 6), cells.slice(6, 9)];
  const winners = winningCells(rows, 3);
  const playable = new Set(myTurn(snapshot) ? snapshot.legal_moves || [] : []);
  const last = snapshot.last_move ? Number(snapshot.last_move.move) : null;
  const grid = el("div", { class: "ttt-board" });
  cells.forEach((who, i) => {
    const classes = ["ttt-cell"];
    if (who) classes.push(who);
    if (winners.has(`${Math.floor(i / 3)},${i % 3}`)) classes.push("win");
    if (i === last) classes.push("last");
    grid.append(
      el("button", {
        type: "button",
        class: classes.join(" "),
        "data-cell": i,
        "data-mark": who || "",
        disabled: !playable.has(i),
        text: who ? who.toUpperCase() : "",
        onclick: () => !view.busy && sendMove(i),
      }),
    );
  });
  container.replaceChildren(grid);
}

// The built-in games use the same registry as any other.
registerRenderer("chess", renderChess, { name: GAME_NAMES.chess });
registerRenderer("connect4", renderConnect4, { name: GAME_NAMES.connect4 });
registerRenderer("tictactoe", renderTicTacToe, { name: GAME_NAMES.tictactoe });

// ---------------------------------------------------------------------------------
// Routing and start-up
// ---------------------------------------------------------------------------------

// `#/game/<type>/<id>` (with `?invite=<code>`: take the private game's free seat
// first), `#/leaderboard`, and the lobby for anything else.
function route() {
  const match = /^#\/game\/([\w-]+)\/([\w-]+)(?:\?invite=([\w-]+))?/.exec(location.hash);
  const page = match ? "game" : location.hash.startsWith("#/leaderboard") ? "leaderboard" : "lobby";
  for (const name of ["game", "lobby", "leaderboard"]) $(`#${name}`).hidden = name !== page;
  if (page !== "lobby") leaveLobby();
  if (page !== "game") {
    closeGame();
    $("#message").hidden = true;
  }
  if (page === "game" && match[3]) acceptInvite(match[1], match[2], match[3]);
  else if (page === "game") openGame(match[1], match[2]);
  else if (page === "leaderboard") showLeaderboard();
  else {
    if (auth.name !== null && auth.mode === "embedded" && !localStorage.getItem(NAME_ASKED_KEY)) showNameCard();
    openLobbySocket();
    refreshGames();
  }
}

function leaveLobby() {
  if (lobby.seek) withdrawSeek();
  closeLobbySocket();
}

// An invite link: join with the code over REST, then open the game as its player. A
// refused code (void once the seat is taken) opens the game as anyone else, whose
// error view then says why.
async function acceptInvite(gameType, gameId, code) {
  closeGame();
  $("#status").textContent = "Joining…";
  try {
    await auth.call((conn) => joinGame(conn, gameId, { invite: code }));
  } catch (err) {
    if (!(err instanceof GameSocketError && err.code === "forbidden")) showError(err);
  }
  history.replaceState(null, "", `#/game/${gameType}/${gameId}`);
  if (location.hash === `#/game/${gameType}/${gameId}`) openGame(gameType, gameId);
}

// For tests and the browser console: the live client of the open game.
window.gamesocketApp = { client: null, view };
// For other scripts on the page (docs/web-client.md, "Drawing another game").
window.GameSocketPage = { registerRenderer, renderers };

async function start() {
  fillSeekForm();
  try {
    await auth.init();
  } catch (err) {
    if (err.message !== "sign-in needed") showError(err);
    return;
  }
  updateNewGameForm();
  $("#seek-form [data-rated]").hidden = !auth.canRate;
  window.addEventListener("hashchange", route);
  route();
  document.body.dataset.ready = "true";
}

start();
