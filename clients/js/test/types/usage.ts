// Compiled (not run) by types.test.js with `tsc --noEmit --strict`: the declarations
// must describe the module as a TypeScript user would call it.
import {
  GameSocketError,
  connect,
  connectLobby,
  createGame,
  guestSignIn,
  type ClientMessage,
  type ServerMessage,
  type Snapshot,
} from "gamesocket-client";

async function play(baseUrl: string): Promise<number | null> {
  const { access_token: token } = await guestSignIn({ baseUrl });
  const game: Snapshot = await createGame({ baseUrl, token }, { game_type: "tictactoe", seats: { x: "me", o: { kind: "ai", level: 3 } } });
  const client = connect({ baseUrl, token, gameType: game.game_type, gameId: game.game_id, backoffMinMs: 100 });
  client.onState((snapshot) => {
    const turn: string | null = snapshot.turn;
    const status: "waiting" | "active" | "finished" | "aborted" = snapshot.status;
    void turn;
    void status;
  });
  client.onUpdate((update) => {
    const kind: string = update.event.kind;
    void kind;
  });
  client.onThinking(({ seat, depth, pv }) => console.log(seat.toUpperCase(), depth.toFixed(0), pv.length));
  client.onPresence(({ online, spectators }) => console.log(Object.keys(online), spectators + 1));
  client.onChat((chat) => console.log(chat.text.trim()));
  client.on("draw_offer", (offer) => console.log(offer.seat));
  client.on("some_extension", (message) => console.log(message.type));
  client.onConnection(({ state, delayMs }) => console.log(state, delayMs ?? 0));
  const hello = await client.waitFor("hello");
  const role: "player" | "spectator" = hello.you.role;
  void role;
  try {
    const ack = await client.move(4, { version: client.version ?? undefined });
    return ack.version;
  } catch (err) {
    if (err instanceof GameSocketError && err.code === "illegal_move") return null;
    throw err;
  } finally {
    client.close();
  }
}

function lobby(baseUrl: string): void {
  const lobbyClient = connectLobby({ baseUrl });
  lobbyClient.onChange(({ games, seeks }) => console.log(games.map((g) => g.game_id), seeks.map((s) => s.seek_id)));
  lobbyClient.onPaired(({ game_id }) => console.log(game_id));
}

const outgoing: ClientMessage = { type: "move", move: "e2e4", id: "a" };
function isState(message: ServerMessage): boolean {
  return message.type === "state" && message.version >= 0;
}

// @ts-expect-error: a draw action must be offer, accept or decline
connect({ baseUrl: "", gameType: "chess", gameId: "x" }).draw("maybe");
// @ts-expect-error: connect() needs a game
connect({ baseUrl: "" });

void play;
void lobby;
void outgoing;
void isState;
