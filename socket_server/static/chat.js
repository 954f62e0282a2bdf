// The chat beside the board (PROTOCOL.md "Chat", docs/protocol-notes.md "Chat").
// Players read and write the `players` room; spectators read both rooms (a tab each)
// and write `spectators`. History comes from GET /api/games/{id}/chat at every
// `hello` (so a reconnect fills any hole), live messages from the socket's `chat`;
// both are kept by `seq`, so nothing shows twice. Muting an author sends the server's
// `mute` (that socket stops getting their messages; sent again after every reconnect,
// since the server forgets it with the socket) and hides their stored messages here.

import { GameSocketError, getChat } from "./gamesocket.js";
import { $, el } from "./dom.js";

const HISTORY_LIMIT = 200;

export function createChat({ rest, showError, myUserId }) {
  const chat = {
    client: null,
    gameId: null,
    player: false, // the viewer holds a seat: the players' room only
    room: "players", // the room shown
    messages: new Map(), // seq -> message
    muted: new Map(), // user_id -> name
  };

  function open(client, gameId) {
    Object.assign(chat, { client, gameId, player: false, room: "players" });
    chat.messages = new Map();
    chat.muted = new Map();
    $("#chat-input").value = "";
    client.onChat(add);
    client.on("hello", (hello) => {
      chat.player = Boolean(hello.you && hello.you.role === "player");
      for (const userId of chat.muted.keys()) client.send({ type: "mute", user_id: userId, muted: true });
      loadHistory(client, gameId);
      render();
    });
    render();
  }

  function close() {
    chat.client = null;
    chat.gameId = null;
  }

  async function loadHistory(client, gameId) {
    const rooms = chat.player ? ["players"] : ["players", "spectators"];
    for (const room of rooms) {
      try {
        const stored = await rest((conn) => getChat(conn, gameId, { room, limit: HISTORY_LIMIT }));
        if (chat.client !== client) return;
        for (const message of stored) add({ ...message, room: message.room || room });
      } catch (err) {
        // A seat taken meanwhile closes the spectators' room: nothing to show there.
        if (!(err instanceof GameSocketError && err.code === "forbidden")) showError(err);
      }
    }
  }

  function add(message) {
    if (!message || !Number.isInteger(message.seq)) return;
    chat.messages.set(message.seq, message);
    render();
  }

  /** Called on every redraw of the game: who the viewer is may have changed (a seat taken). */
  function setPlayer(player) {
    if (player === chat.player) return;
    chat.player = player;
    if (player) chat.room = "players";
    render();
  }

  function writableRoom() {
    if (chat.player) return "players";
    return chat.room === "spectators" ? "spectators" : null;
  }

  function render() {
    $("#chat-tabs").hidden = chat.player;
    for (const tab of document.querySelectorAll("#chat-tabs [data-room]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.room === chat.room));
    }
    const room = chat.player ? "players" : chat.room;
    const log = $("#chat-log");
    const shown = [...chat.messages.values()]
      .filter((m) => m.room === room && !chat.muted.has(m.user_id))
      .sort((a, b) => a.seq - b.seq);
    log.replaceChildren(...shown.map(messageItem));
    log.dataset.room = room;
    log.dataset.count = String(shown.length);
    log.scrollTop = log.scrollHeight;
    const writable = writableRoom();
    $("#chat-form").hidden = !writable;
    $("#chat-readonly").hidden = Boolean(writable);
    $("#chat-muted").replaceChildren(...[...chat.muted].map(([userId, name]) => mutedItem(userId, name)));
  }

  function messageItem(message) {
    const mine = message.user_id === myUserId();
    const item = el(
      "li",
      { class: mine ? "chat-message mine" : "chat-message", "data-seq": message.seq, "data-user-id": message.user_id },
      el("b", { class: "chat-name", text: mine ? "you" : message.name || "player" }),
      " ",
      el("span", { class: "chat-text", text: message.text }),
    );
    if (!mine) {
      item.append(
        el("button", {
          type: "button",
          class: "link chat-mute",
          title: `Hide ${message.name || "this player"}'s messages`,
          text: "Mute",
          onclick: () => mute(message.user_id, message.name, true),
        }),
      );
    }
    return item;
  }

  function mutedItem(userId, name) {
    return el(
      "li",
      { "data-user-id": userId },
      el("span", { class: "muted", text: `Muted: ${name || "player"} ` }),
      el("button", { type: "button", class: "link chat-unmute", text: "Unmute", onclick: () => mute(userId, name, false) }),
    );
  }

  async function mute(userId, name, muted) {
    const client = chat.client;
    if (!client) return;
    try {
      await client.call({ type: "mute", user_id: userId, muted });
    } catch (err) {
      showError(err);
      return;
    }
    if (muted) chat.muted.set(userId, name);
    else chat.muted.delete(userId);
    render();
    // Unmuted: what they said meanwhile was not delivered; the history has it.
    if (!muted && client === chat.client) loadHistory(client, chat.gameId);
  }

  async function send(event) {
    event.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    const room = writableRoom();
    if (!text || !room || !chat.client) return;
    $("#chat-send").disabled = true;
    try {
      await chat.client.chat(text, { room });
      input.value = "";
    } catch (err) {
      showError(err);
    } finally {
      $("#chat-send").disabled = false;
    }
  }

  function toggle() {
    const box = $("#chat");
    const collapsed = box.dataset.collapsed !== "true";
    box.dataset.collapsed = String(collapsed);
    $("#chat-body").hidden = collapsed;
    $("#chat-toggle").textContent = collapsed ? "Show" : "Hide";
    $("#chat-toggle").setAttribute("aria-expanded", String(!collapsed));
  }

  $("#chat-form").addEventListener("submit", send);
  $("#chat-toggle").addEventListener("click", toggle);
  for (const tab of document.querySelectorAll("#chat-tabs [data-room]")) {
    tab.addEventListener("click", () => {
      chat.room = tab.dataset.room;
      render();
    });
  }

  return { open, close, setPlayer, state: chat };
}
