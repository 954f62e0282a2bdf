// The bench's Colyseus 0.18 peer: one room type, "connect4", on the ws transport.
//   node server.mjs --port 8766
// The first two clients that join without {spectate: true} take red and yellow; a
// move is {id, column}; the seated mover gets {ref, version} as an "ack" message
// once the state patch carrying it has been broadcast. The state is patched right
// after each move (broadcastPatch) rather than on the default 50 ms patch clock, so
// a spectator's latency is the server's work, not a timer (a turn-based room's
// natural setting). GET /health answers 200 for the bench harness.
import { parseArgs } from 'node:util';
import { Room, Server } from '@colyseus/core';
import { ArraySchema, schema, t } from '@colyseus/schema';
import { WebSocketTransport } from '@colyseus/ws-transport';
import { COLUMNS, ROWS, landingRow, wins } from '../connect4.mjs';

const SEATS = ['red', 'yellow'];

const Connect4State = schema({
  cells: t.array('uint8'),
  turn: t.uint8(),
  version: t.uint32(),
  status: t.string(),
  winner: t.string(),
}, 'Connect4State');

class Connect4Room extends Room {
  onCreate() {
    this.patchRate = null;
    const state = new Connect4State();
    state.cells = new ArraySchema(...new Array(COLUMNS * ROWS).fill(0));
    state.turn = 0;
    state.version = 0;
    state.status = 'active';
    state.winner = '';
    this.setState(state);
    this.seated = [];
    this.onMessage('move', (client, message) => this.move(client, message));
  }

  onJoin(client, options) {
    if (!options?.spectate && this.seated.length < SEATS.length) {
      client.userData = { seat: this.seated.length };
      this.seated.push(client.sessionId);
    }
    client.send('seat', { seat: client.userData ? SEATS[client.userData.seat] : null });
  }

  move(client, message) {
    const state = this.state;
    const refuse = (code) => client.send('error', { ref: message?.id, code });
    if (client.userData?.seat === undefined) return refuse('not_a_player');
    if (state.status !== 'active') return refuse('game_over');
    if (client.userData.seat !== state.turn) return refuse('not_your_turn');
    const column = message?.column;
    const row = landingRow(state.cells, column);
    if (row < 0) return refuse('illegal_move');
    state.cells[row * COLUMNS + column] = state.turn + 1;
    state.version += 1;
    if (wins(state.cells, row, column)) {
      state.status = 'finished';
      state.winner = SEATS[state.turn];
    } else if (state.version === COLUMNS * ROWS) {
      state.status = 'finished';
    }
    state.turn = 1 - state.turn;
    this.broadcastPatch();
    client.send('ack', { ref: message.id, version: state.version });
  }
}

const { values } = parseArgs({ options: { port: { type: 'string', default: '8766' },
  host: { type: 'string', default: '127.0.0.1' } } });
const server = new Server({
  transport: new WebSocketTransport({ pingInterval: 3000, maxPayload: 4096 }),
  greet: false,
  gracefullyShutdown: true,
  express: (app) => app.get('/health', (_req, res) => res.json({ status: 'ok' })),
});
server.define('connect4', Connect4Room);
await server.listen(Number(values.port), values.host, 4096);
